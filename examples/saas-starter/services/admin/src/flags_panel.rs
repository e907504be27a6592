//! The panel's feature flags: the list with a form for a new flag (`/admin/flags`), a flag's
//! page with its rule, its overrides (of users and of organizations) and its history
//! (`/admin/flags/{key}`), and a section of
//! the customer page showing each flag as it is for that customer.
//!
//! Support staff see everything; only admins see and submit the forms (every form is a
//! [`PanelForm`] that comes back with a notice). The rules and the audit entries are in
//! `saas_starter_core::flags`.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;

use saas_starter_core::ApiError;
use saas_starter_core::admin::Permission;
use saas_starter_core::admin::audit::{self, Entry};
use saas_starter_core::auth::now;
use saas_starter_core::db::Database;
use saas_starter_core::error::FieldErrors;
use saas_starter_core::flags::{self, Flag, FlagUpdate, NewFlag, Override};
use saas_starter_core::flags::{OrgOverride, RolloutBy, Target};

use crate::panel::{Frame, NoFields, PanelError, PanelForm, Viewer, done, html, when};
use crate::state::AppState;

pub fn routes(state: AppState) -> OpenApiRouter {
    // HTML pages, not JSON operations: they stay out of the OpenAPI document.
    OpenApiRouter::from(
        Router::new()
            .route("/admin/flags", get(list).post(create))
            .route("/admin/flags/{key}", get(show).post(update))
            .route("/admin/flags/{key}/delete", post(delete))
            .route("/admin/flags/{key}/overrides", post(set_override))
            .route(
                "/admin/flags/{key}/overrides/{user_id}/delete",
                post(remove_override),
            )
            .route("/admin/flags/{key}/org-overrides", post(set_org_override))
            .route(
                "/admin/flags/{key}/org-overrides/{org_id}/delete",
                post(remove_org_override),
            )
            .with_state(state),
    )
}

/// A flag as the pages show it.
struct FlagRow {
    key: String,
    description: String,
    enabled: bool,
    rollout_percent: u8,
    /// `user` or `org`: what the rollout splits.
    rollout_by: &'static str,
    created: String,
    updated: String,
    /// How many users have an override.
    overrides: i64,
}

impl FlagRow {
    fn new(flag: Flag, overrides: i64) -> Self {
        Self {
            key: flag.key,
            description: flag.description,
            enabled: flag.enabled,
            rollout_percent: flag.rollout_percent,
            rollout_by: flag.rollout_by.as_str(),
            created: when(flag.created_at),
            updated: when(flag.updated_at),
            overrides,
        }
    }
}

#[derive(Template)]
#[template(path = "flags.html")]
struct ListPage {
    frame: Frame,
    flags: Vec<FlagRow>,
    may_manage: bool,
}

async fn list(State(db): State<Database>, viewer: Viewer) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let counts = flags::override_counts(&db).await?;
    let rows = flags::list(&db)
        .await?
        .into_iter()
        .map(|flag| {
            let overrides = counts.get(&flag.key).copied().unwrap_or(0);
            FlagRow::new(flag, overrides)
        })
        .collect();
    Ok(html(&ListPage {
        may_manage: viewer.staff.may(Permission::Manage),
        flags: rows,
        frame: viewer.frame,
    }))
}

/// The fields of the forms that create and edit a flag. A checkbox sends its field only when
/// it is ticked; the percentage comes as text.
#[derive(Deserialize)]
struct RuleForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    description: String,
    enabled: Option<String>,
    #[serde(default)]
    rollout_percent: String,
    /// `user` or `org`; a form without the field keeps what the flag has (a new one: `user`).
    #[serde(default)]
    rollout_by: String,
}

impl RuleForm {
    /// The percentage; text that is no number becomes one out of range, refused as such.
    fn percent(&self) -> i64 {
        self.rollout_percent.trim().parse().unwrap_or(-1)
    }

    /// What the rollout splits, if the form says; 422 for anything but `user` and `org`.
    fn rollout_by(&self) -> Result<Option<RolloutBy>, PanelError> {
        match self.rollout_by.trim() {
            "" => Ok(None),
            text => RolloutBy::parse(text).map(Some).ok_or_else(|| {
                let fields = FieldErrors::from([(
                    "rollout_by".to_owned(),
                    "must be user or org".to_owned(),
                )]);
                PanelError(ApiError::Validation(fields))
            }),
        }
    }
}

async fn create(
    State(db): State<Database>,
    viewer: Viewer,
    PanelForm(form): PanelForm<RuleForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Manage)?;
    let new = NewFlag {
        key: form.key.trim().to_owned(),
        description: form.description.clone(),
        enabled: form.enabled.is_some(),
        rollout_percent: form.percent(),
        rollout_by: form.rollout_by()?.unwrap_or_default(),
    };
    let flag = flags::create(&db, viewer.staff.actor(), new, now()).await?;
    Ok(done(&format!("/admin/flags/{}", flag.flag.key), "saved").into_response())
}

/// An override as the flag's page shows it.
struct OverrideRow {
    user_id: String,
    email: String,
    enabled: bool,
    updated: String,
}

impl From<Override> for OverrideRow {
    fn from(item: Override) -> Self {
        Self {
            user_id: item.user_id,
            email: item.email,
            enabled: item.enabled,
            updated: when(item.updated_at),
        }
    }
}

/// An entry of the flag's history.
struct HistoryRow {
    when: String,
    actor: String,
    action: String,
    details: String,
}

impl From<Entry> for HistoryRow {
    fn from(entry: Entry) -> Self {
        Self {
            when: when(entry.created_at),
            actor: entry.actor_email,
            action: entry.action,
            details: entry.details.unwrap_or_default(),
        }
    }
}

/// An organization's override as the flag's page shows it.
struct OrgOverrideRow {
    org_id: String,
    enabled: bool,
    updated: String,
}

impl From<OrgOverride> for OrgOverrideRow {
    fn from(item: OrgOverride) -> Self {
        Self {
            org_id: item.org_id,
            enabled: item.enabled,
            updated: when(item.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "flag.html")]
struct FlagPage {
    frame: Frame,
    flag: FlagRow,
    overrides: Vec<OverrideRow>,
    org_overrides: Vec<OrgOverrideRow>,
    history: Vec<HistoryRow>,
    may_manage: bool,
}

async fn show(
    State(db): State<Database>,
    viewer: Viewer,
    Path(key): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let detail = flags::get(&db, &key).await?;
    let history = audit::list(
        &db,
        &audit::Filter {
            action: Some("flag.".into()),
            target: Some(key),
            ..audit::Filter::default()
        },
    )
    .await?;
    let overrides = i64::try_from(detail.overrides.len()).unwrap_or(i64::MAX);
    Ok(html(&FlagPage {
        flag: FlagRow::new(detail.flag, overrides),
        overrides: detail
            .overrides
            .into_iter()
            .map(OverrideRow::from)
            .collect(),
        org_overrides: detail
            .org_overrides
            .into_iter()
            .map(OrgOverrideRow::from)
            .collect(),
        history: history.items.into_iter().map(HistoryRow::from).collect(),
        may_manage: viewer.staff.may(Permission::Manage),
        frame: viewer.frame,
    }))
}

async fn update(
    State(db): State<Database>,
    viewer: Viewer,
    Path(key): Path<String>,
    PanelForm(form): PanelForm<RuleForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Manage)?;
    let update = FlagUpdate {
        description: Some(form.description.clone()),
        enabled: Some(form.enabled.is_some()),
        rollout_percent: Some(form.percent()),
        rollout_by: form.rollout_by()?,
    };
    flags::update(&db, viewer.staff.actor(), &key, update, now()).await?;
    Ok(done(&format!("/admin/flags/{key}"), "saved").into_response())
}

async fn delete(
    State(db): State<Database>,
    viewer: Viewer,
    Path(key): Path<String>,
    PanelForm(NoFields {}): PanelForm<NoFields>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Manage)?;
    flags::delete(&db, viewer.staff.actor(), &key, now()).await?;
    Ok(done("/admin/flags", "deleted").into_response())
}

/// The form that adds (or replaces) an override: the user by email or id, and `on` or `off`.
#[derive(Deserialize)]
struct OverrideForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    enabled: String,
}

async fn set_override(
    State(db): State<Database>,
    viewer: Viewer,
    Path(key): Path<String>,
    PanelForm(form): PanelForm<OverrideForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Manage)?;
    let mut fields = FieldErrors::new();
    let enabled = forced(&form.enabled, &mut fields);
    let user = flags::find_user(&db, &form.user).await?;
    if user.is_none() {
        fields.insert("user".into(), "no account has this email or id".to_owned());
    }
    let (Some((user_id, _)), Some(enabled)) = (user, enabled) else {
        return Err(PanelError(ApiError::Validation(fields)));
    };
    flags::set_override(&db, viewer.staff.actor(), &key, &user_id, enabled, now()).await?;
    Ok(done(&format!("/admin/flags/{key}"), "saved").into_response())
}

/// The `on` or `off` of an override form; `None`, noted in `fields`, for anything else.
fn forced(text: &str, fields: &mut FieldErrors) -> Option<bool> {
    match text {
        "on" => Some(true),
        "off" => Some(false),
        _ => {
            fields.insert("enabled".into(), "must be on or off".into());
            None
        }
    }
}

/// The form that adds (or replaces) an organization's override: its id, and `on` or `off`.
#[derive(Deserialize)]
struct OrgOverrideForm {
    #[serde(default)]
    org_id: String,
    #[serde(default)]
    enabled: String,
}

async fn set_org_override(
    State(db): State<Database>,
    viewer: Viewer,
    Path(key): Path<String>,
    PanelForm(form): PanelForm<OrgOverrideForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Manage)?;
    let mut fields = FieldErrors::new();
    let Some(enabled) = forced(&form.enabled, &mut fields) else {
        return Err(PanelError(ApiError::Validation(fields)));
    };
    let actor = viewer.staff.actor();
    flags::set_org_override(&db, actor, &key, &form.org_id, enabled, now()).await?;
    Ok(done(&format!("/admin/flags/{key}"), "saved").into_response())
}

async fn remove_org_override(
    State(db): State<Database>,
    viewer: Viewer,
    Path((key, org_id)): Path<(String, String)>,
    PanelForm(NoFields {}): PanelForm<NoFields>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Manage)?;
    flags::remove_org_override(&db, viewer.staff.actor(), &key, &org_id, now()).await?;
    Ok(done(&format!("/admin/flags/{key}"), "deleted").into_response())
}

async fn remove_override(
    State(db): State<Database>,
    viewer: Viewer,
    Path((key, user_id)): Path<(String, String)>,
    PanelForm(NoFields {}): PanelForm<NoFields>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Manage)?;
    flags::remove_override(&db, viewer.staff.actor(), &key, &user_id, now()).await?;
    Ok(done(&format!("/admin/flags/{key}"), "deleted").into_response())
}

/// A flag as it is for one customer.
struct CustomerFlagRow {
    key: String,
    on: bool,
    why: String,
}

#[derive(Template)]
#[template(path = "flags_customer.html")]
struct CustomerSection {
    flags: Vec<CustomerFlagRow>,
}

/// The HTML of the customer page's "Feature flags" section for `user_id`: each flag, whether it
/// is on for them outside any organization, and why.
pub async fn customer_section(db: &Database, user_id: &str) -> Result<String, ApiError> {
    let target = Target {
        user_id,
        org_id: None,
    };
    let flags = flags::evaluate_for(db, target)
        .await?
        .into_iter()
        .map(|evaluation| CustomerFlagRow {
            on: evaluation.decision.is_on(),
            why: evaluation.decision.explain(),
            key: evaluation.key,
        })
        .collect();
    CustomerSection { flags }
        .render()
        .map_err(ApiError::internal)
}
