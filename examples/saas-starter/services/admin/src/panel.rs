//! The admin panel: server-rendered HTML pages under `/admin`, usable without JavaScript.
//!
//! Every page needs a signed-in staff member ([`Viewer`]): without one it answers 401 with the
//! sign-in form, and 403 when the role does not allow the page. Every form that changes
//! something carries a CSRF token ([`PanelForm`]) derived from the session, on top of the
//! Origin / Fetch-Metadata check every cookie-authenticated request passes. Pages are askama
//! templates (`templates/`), compiled into the binary and escaped by default; they set a
//! Content-Security-Policy that allows no script at all.
//!
//! Modules add their pages as routers of their own (merged in `main.rs`), their links to the
//! navigation ([`nav`]), their figures to the dashboard and their sections to the customer
//! page, each after an `inject` marker.

mod audit;
// Its list and trail helpers serve the modules' pages too.
pub(crate) mod customers;
mod dashboard;
mod sign_in;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;

use saas_starter_core::ApiError;
use saas_starter_core::admin::{Permission, Staff, impersonation};
use saas_starter_core::auth::{Auth, CurrentUser, csrf, now};
use saas_starter_core::db::Database;
use saas_starter_core::http::client_ip;

use crate::state::AppState;

/// The panel's policy: its own stylesheet, its own forms, nothing else (no script, no frames).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The stylesheet of every page, compiled in like the templates.
const STYLESHEET: &str = include_str!("../templates/panel.css");

/// The core pages: sign-in, dashboard, customers, impersonation and the audit log.
pub fn routes(state: AppState) -> OpenApiRouter {
    // HTML pages, not JSON operations: they stay out of the OpenAPI document.
    OpenApiRouter::from(
        Router::new()
            .route("/admin/static/panel.css", get(stylesheet))
            .merge(sign_in::routes())
            .merge(dashboard::routes())
            .merge(customers::routes())
            .merge(audit::routes())
            .with_state(state),
    )
}

/// The links of the navigation bar, in order.
fn nav() -> Vec<NavLink> {
    let links = vec![
        NavLink::new("Dashboard", "/admin"),
        NavLink::new("Customers", "/admin/customers"),
        NavLink::new("Audit log", "/admin/audit"),
    ];
    // <<<inject:nav>>>
    // <<<begin:admin/feature-flags@nav>>>
    let links: Vec<NavLink> = links
        .into_iter()
        .chain([NavLink::new("Feature flags", "/admin/flags")])
        .collect();
    // <<<end:admin/feature-flags@nav>>>
    // <<<begin:admin/jobs@nav>>>
    let links: Vec<NavLink> = links
        .into_iter()
        .chain([NavLink::new("Jobs", "/admin/jobs")])
        .collect();
    // <<<end:admin/jobs@nav>>>
    // <<<begin:admin/orgs@nav>>>
    let links: Vec<NavLink> = links
        .into_iter()
        .chain([NavLink::new("Organizations", "/admin/orgs")])
        .collect();
    // <<<end:admin/orgs@nav>>>
    // <<<begin:admin/outbox@nav>>>
    let links: Vec<NavLink> = links
        .into_iter()
        .chain([NavLink::new("Outbox", "/admin/outbox")])
        .collect();
    // <<<end:admin/outbox@nav>>>
    // <<<begin:admin/webhooks@nav>>>
    let links: Vec<NavLink> = links
        .into_iter()
        .chain([NavLink::new("Webhooks", "/admin/webhooks")])
        .collect();
    // <<<end:admin/webhooks@nav>>>
    links
}

/// A link of the navigation bar.
pub struct NavLink {
    pub label: &'static str,
    pub href: &'static str,
    /// Whether the page shown is this link's (or below it).
    pub active: bool,
}

impl NavLink {
    pub fn new(label: &'static str, href: &'static str) -> Self {
        Self {
            label,
            href,
            active: false,
        }
    }
}

/// What every page shows around its content: who is signed in, the navigation, the banner of
/// impersonations in force, a notice about the last action, and the CSRF token of its forms.
pub struct Frame {
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
    pub nav: Vec<NavLink>,
    pub impersonations: Vec<Banner>,
    pub notice: Option<&'static str>,
}

/// One impersonation in force, in the banner.
pub struct Banner {
    pub id: String,
    pub user_id: String,
    pub user_email: String,
    pub until: String,
}

/// The staff member a page is for, and its [`Frame`]. As an extractor it answers 401 with the
/// sign-in form when nobody is signed in (or the session cookie is stale), and 403 for anyone
/// who is not staff.
pub struct Viewer {
    pub staff: Staff,
    pub frame: Frame,
}

impl Viewer {
    /// 403 (as a page) unless the viewer's role allows `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), PanelError> {
        Ok(self.staff.require(permission)?)
    }
}

impl<S> FromRequestParts<S> for Viewer
where
    Auth: FromRef<S>,
    Database: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_ref(state);
        let current = match CurrentUser::from_request_parts(parts, state).await {
            Ok(current) => current,
            Err(ApiError::Unauthorized) => {
                let next = parts.uri.path_and_query().map(|path| path.as_str());
                return Err(sign_in::form(&auth, StatusCode::UNAUTHORIZED, next, None));
            }
            Err(error) => return Err(PanelError(error).into_response()),
        };
        let staff = Staff::from_current(current, client_ip(parts))
            .map_err(|error| PanelError::from(error).into_response())?;
        let db = Database::from_ref(state);
        let banner = impersonation::active(&db, &staff.user.id, now())
            .await
            .map_err(|error| PanelError(error.into()).into_response())?;
        let path = parts.uri.path();
        let mut nav = nav();
        let active = nav
            .iter()
            .enumerate()
            .filter(|(_, link)| path == link.href || path.starts_with(&format!("{}/", link.href)))
            .max_by_key(|(_, link)| link.href.len())
            .map(|(index, _)| index);
        if let Some(index) = active {
            nav[index].active = true;
        }
        let frame = Frame {
            email: staff.user.email.clone(),
            role: staff.user.role.as_str(),
            csrf: auth
                .session_token(&parts.headers)
                .map(csrf::form_token)
                .unwrap_or_default(),
            nav,
            impersonations: banner
                .into_iter()
                .map(|item| Banner {
                    id: item.id,
                    user_id: item.user_id,
                    user_email: item.user_email,
                    until: when(item.expires_at),
                })
                .collect(),
            notice: notice(parts.uri.query()),
        };
        Ok(Self { staff, frame })
    }
}

/// The notice `?notice=<name>` names: fixed texts, so that a link cannot make the panel say
/// anything else.
fn notice(query: Option<&str>) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct Query {
        notice: Option<String>,
    }
    let name = serde_urlencoded::from_str::<Query>(query?).ok()?.notice?;
    NOTICES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, text)| *text)
}

/// The notices of [`done`], as `(name, text)`.
const NOTICES: &[(&str, &str)] = &[
    (
        "disabled",
        "The account is disabled and every session of it has ended.",
    ),
    ("enabled", "The account is enabled."),
    ("sessions-revoked", "The sessions have ended."),
    (
        "impersonation-ended",
        "The impersonation has ended; its token no longer works.",
    ),
    ("saved", "Saved."),
    ("deleted", "Deleted."),
    ("queued", "Queued for processing."),
    (
        "member-removed",
        "The member is removed from the organization.",
    ),
    (
        "invitation-revoked",
        "The invitation is revoked; its link no longer works.",
    ),
];

/// A form body whose `csrf` field is the token of the request's session: anything else is
/// refused with 403 before the handler runs. `T` is deserialized from the same body, so it
/// does not declare `csrf` itself.
pub struct PanelForm<T>(pub T);

impl<S, T> FromRequest<S> for PanelForm<T>
where
    Auth: FromRef<S>,
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_ref(state);
        let session_token = auth.session_token(request.headers()).map(str::to_owned);
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| PanelError(ApiError::BadRequest("the form is malformed".into())))
            .map_err(IntoResponse::into_response)?;
        let submitted = fields
            .iter()
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.as_str());
        let valid = matches!(
            (session_token.as_deref(), submitted),
            (Some(session), Some(token)) if csrf::form_token_matches(session, token)
        );
        if !valid {
            tracing::warn!("panel form refused: missing or wrong CSRF token");
            let error = ApiError::Rejected {
                code: "csrf_token_invalid",
                message: "This form is out of date or was not sent from the panel. Go back, \
                          reload the page and try again."
                    .into(),
            };
            return Err(error_page(StatusCode::FORBIDDEN, &error));
        }
        let form = serde_urlencoded::from_bytes(&body).map_err(|error| {
            PanelError(ApiError::BadRequest(format!(
                "the form is incomplete: {error}"
            )))
            .into_response()
        })?;
        Ok(Self(form))
    }
}

/// The fields of a form that has nothing but its CSRF token.
#[derive(Deserialize)]
pub struct NoFields {}

/// An error of a panel handler, answered as an HTML page with the error's status.
#[derive(Debug)]
pub struct PanelError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PanelError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self.0 {
            tracing::error!(error = %cause, "panel request failed");
        }
        error_page(self.0.status(), &self.0)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
    fields: Vec<(String, String)>,
}

fn error_page(status: StatusCode, error: &ApiError) -> Response {
    let message = match error {
        // The cause is in the log; the page says only that something failed.
        ApiError::Internal(_) => "Something went wrong on our side. Try again in a moment.".into(),
        ApiError::Forbidden => "Your role does not allow this.".into(),
        other => other.to_string(),
    };
    let fields = match error {
        ApiError::Validation(fields) => fields.clone().into_iter().collect(),
        _ => Vec::new(),
    };
    let page = ErrorPage {
        status: status.as_u16(),
        title: status.canonical_reason().unwrap_or("Error"),
        message,
        fields,
    };
    (status, html(&page)).into_response()
}

/// A page: the rendered template with the panel's headers.
pub fn html(template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "a panel template failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// After a form: back to `to` with a notice, so that reloading does not post again.
pub fn done(to: &str, notice: &str) -> Redirect {
    Redirect::to(&format!("{to}?notice={notice}"))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

/// Unix seconds as `2026-11-24 14:05 UTC`. By hand (Howard Hinnant's days-to-civil algorithm):
/// `time` or `chrono` would add crates for this one format.
pub fn when(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs_of_day / 3_600,
        secs_of_day % 3_600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(when(1_795_528_800), "2026-11-24 14:00 UTC");
        assert_eq!(when(-60), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn notices_are_fixed_texts() {
        assert_eq!(
            notice(Some("notice=enabled")),
            Some("The account is enabled.")
        );
        assert_eq!(notice(Some("notice=saved&x=1")), Some("Saved."));
        assert_eq!(notice(Some("notice=%3Cscript%3E")), None);
        assert_eq!(notice(None), None);
    }
}
