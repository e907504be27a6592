//! Customers: the searchable list, a customer's page, and the actions on a customer (disable,
//! enable, end sessions, impersonate), each a form that comes back to the customer's page.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use saas_starter_core::admin::audit::{self, Entry};
use saas_starter_core::admin::customers::{self, Customer, Search, SessionView};
use saas_starter_core::admin::impersonation::{self, Started};
use saas_starter_core::admin::{Page, Permission};
use saas_starter_core::auth::{Auth, now};
use saas_starter_core::db::Database;

use super::{Banner, Frame, NoFields, PanelError, PanelForm, Viewer, done, html, when};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/customers", get(list))
        .route("/admin/customers/{id}", get(show))
        .route("/admin/customers/{id}/disable", post(disable))
        .route("/admin/customers/{id}/enable", post(enable))
        .route(
            "/admin/customers/{id}/revoke-sessions",
            post(revoke_sessions),
        )
        .route("/admin/customers/{id}/impersonate", post(impersonate))
        .route("/admin/impersonations/{id}/end", post(end_impersonation))
}

/// A customer as the list and the page show it.
struct CustomerRow {
    id: String,
    email: String,
    full_name: String,
    role: &'static str,
    created: String,
    disabled: Option<String>,
}

impl From<Customer> for CustomerRow {
    fn from(customer: Customer) -> Self {
        Self {
            id: customer.user.id,
            email: customer.user.email,
            full_name: customer.user.full_name.unwrap_or_default(),
            role: customer.user.role.as_str(),
            created: when(customer.user.created_at),
            disabled: customer.disabled_at.map(when),
        }
    }
}

#[derive(Template)]
#[template(path = "customers.html")]
struct ListPage {
    frame: Frame,
    q: String,
    customers: Vec<CustomerRow>,
    previous: Option<String>,
    next: Option<String>,
}

async fn list(
    State(db): State<Database>,
    viewer: Viewer,
    Query(search): Query<Search>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let page = customers::search(&db, &search).await?;
    let q = search.q.unwrap_or_default();
    let (previous, next) = search_links(&page, "/admin/customers", &q);
    Ok(html(&ListPage {
        frame: viewer.frame,
        customers: page.items.into_iter().map(CustomerRow::from).collect(),
        q,
        previous,
        next,
    }))
}

/// The links to the previous and the next page of `page` of the list at `path` searched for
/// `q`.
pub fn search_links<T>(page: &Page<T>, path: &str, q: &str) -> (Option<String>, Option<String>) {
    page_links(page, |page: u32| {
        let query = serde_urlencoded::to_string([("q", q), ("page", &page.to_string())])
            .unwrap_or_default();
        format!("{path}?{query}")
    })
}

/// The links to the previous and the next page of `page`, made by `link`.
pub fn page_links<T>(
    page: &Page<T>,
    link: impl Fn(u32) -> String,
) -> (Option<String>, Option<String>) {
    (
        (page.page > 1).then(|| link(page.page - 1)),
        page.has_more.then(|| link(page.page + 1)),
    )
}

/// A section a module adds to the customer page: a title and its HTML, rendered by the
/// module's own (escaping) template.
pub struct Section {
    pub title: &'static str,
    pub html: String,
}

struct SessionRow {
    id: String,
    user_agent: String,
    created: String,
    last_seen: String,
    expires: String,
}

impl From<SessionView> for SessionRow {
    fn from(session: SessionView) -> Self {
        Self {
            id: session.id,
            user_agent: session.user_agent.unwrap_or_default(),
            created: when(session.created_at),
            last_seen: when(session.last_seen_at),
            expires: when(session.expires_at),
        }
    }
}

/// An audit entry as the pages show it.
pub struct EntryRow {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub reason: String,
    pub client_ip: String,
}

impl From<Entry> for EntryRow {
    fn from(entry: Entry) -> Self {
        Self {
            when: when(entry.created_at),
            actor: entry.actor_email,
            action: entry.action,
            target_type: entry.target_type,
            target_id: entry.target_id,
            reason: entry.reason.unwrap_or_default(),
            client_ip: entry.client_ip.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    frame: Frame,
    customer: CustomerRow,
    is_staff: bool,
    may_manage: bool,
    may_impersonate: bool,
    sessions: Vec<SessionRow>,
    trail: Vec<EntryRow>,
    sections: Vec<Section>,
}

async fn show(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let customer = customers::find(&db, &id).await?;
    let sessions = customers::sessions(&db, &id, now()).await?;
    let trail = audit::list(
        &db,
        &audit::Filter {
            target: Some(id.clone()),
            ..audit::Filter::default()
        },
    )
    .await?;
    let sections: Vec<Section> = Vec::new();
    // <<<inject:customer-sections>>>
    // <<<begin:admin/billing@customer-sections>>>
    let billing_section = Section {
        title: "Subscription",
        html: crate::admin_billing::customer_section(&db, &id).await?,
    };
    let sections: Vec<Section> = sections.into_iter().chain([billing_section]).collect();
    // <<<end:admin/billing@customer-sections>>>
    // <<<begin:admin/feature-flags@customer-sections>>>
    let flags_section = Section {
        title: "Feature flags",
        html: crate::flags_panel::customer_section(&db, &id).await?,
    };
    let sections: Vec<Section> = sections.into_iter().chain([flags_section]).collect();
    // <<<end:admin/feature-flags@customer-sections>>>
    Ok(html(&CustomerPage {
        is_staff: customer.user.role.is_staff(),
        may_manage: viewer.staff.may(Permission::Manage),
        may_impersonate: viewer.staff.may(Permission::Impersonate),
        customer: CustomerRow::from(customer),
        sessions: sessions.into_iter().map(SessionRow::from).collect(),
        trail: trail.items.into_iter().map(EntryRow::from).collect(),
        sections,
        frame: viewer.frame,
    }))
}

/// A form whose only field is a reason (optional unless the action says otherwise).
#[derive(Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    pub reason: String,
}

impl ReasonForm {
    /// The reason, if one was written.
    pub fn reason(&self) -> Option<&str> {
        Some(self.reason.trim()).filter(|reason| !reason.is_empty())
    }
}

async fn disable(
    state: State<Database>,
    viewer: Viewer,
    id: Path<String>,
    form: PanelForm<ReasonForm>,
) -> Result<Response, PanelError> {
    set_disabled(state, viewer, id, form, true).await
}

async fn enable(
    state: State<Database>,
    viewer: Viewer,
    id: Path<String>,
    form: PanelForm<ReasonForm>,
) -> Result<Response, PanelError> {
    set_disabled(state, viewer, id, form, false).await
}

async fn set_disabled(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<String>,
    PanelForm(form): PanelForm<ReasonForm>,
    disabled: bool,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Manage)?;
    let actor = viewer.staff.actor();
    customers::set_disabled(&db, actor, &id, disabled, form.reason(), now()).await?;
    let notice = if disabled { "disabled" } else { "enabled" };
    Ok(done(&format!("/admin/customers/{id}"), notice).into_response())
}

#[derive(Deserialize)]
struct SessionForm {
    /// One session to end; all of them when absent.
    session_id: Option<String>,
}

async fn revoke_sessions(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<String>,
    PanelForm(form): PanelForm<SessionForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Manage)?;
    let actor = viewer.staff.actor();
    let session_id = form.session_id.as_deref().filter(|id| !id.is_empty());
    customers::revoke_sessions(&db, actor, &id, session_id, now()).await?;
    Ok(done(&format!("/admin/customers/{id}"), "sessions-revoked").into_response())
}

#[derive(Template)]
#[template(path = "impersonation.html")]
struct ImpersonationPage {
    frame: Frame,
    started: Started,
    until: String,
}

async fn impersonate(
    State(db): State<Database>,
    State(auth): State<Auth>,
    viewer: Viewer,
    Path(id): Path<String>,
    PanelForm(form): PanelForm<ReasonForm>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Impersonate)?;
    let started = impersonation::start(&db, &auth, viewer.staff.actor(), &id, &form.reason).await?;
    let mut frame = viewer.frame;
    frame.impersonations.insert(
        0,
        Banner {
            id: started.impersonation.id.clone(),
            user_id: started.impersonation.user_id.clone(),
            user_email: started.impersonation.user_email.clone(),
            until: when(started.impersonation.expires_at),
        },
    );
    Ok(html(&ImpersonationPage {
        frame,
        until: when(started.impersonation.expires_at),
        started,
    }))
}

async fn end_impersonation(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<String>,
    PanelForm(NoFields {}): PanelForm<NoFields>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::Impersonate)?;
    let any_staff = viewer.staff.may(Permission::Manage);
    impersonation::end(&db, viewer.staff.actor(), &id, any_staff, now()).await?;
    Ok(done("/admin", "impersonation-ended").into_response())
}
