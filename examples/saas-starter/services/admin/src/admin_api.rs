//! The back office as JSON under `/api/admin`: the panel's operations for programs and
//! scripts. Callers present a staff token (`Authorization: Bearer`, from
//! `POST /api/admin/auth/token` with a staff member's email and password) or the panel's session
//! cookie; 401 without credentials, 403 `staff_token_required` for the api's access tokens (a
//! staff member's included: they are customer-facing), 403 when the role does not allow the
//! operation (see [`Permission`]).

use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use saas_starter_core::ApiError;
use saas_starter_core::admin::audit::{self, Actor, Entry};
use saas_starter_core::admin::customers::{self, Customer, Search, SessionView};
use saas_starter_core::admin::impersonation::{self, Started};
use saas_starter_core::admin::metrics::Metric;
use saas_starter_core::admin::{Page, Permission, Staff};
use saas_starter_core::auth::{Auth, SessionToken, User, now};
use saas_starter_core::db::Database;
use saas_starter_core::http::{JsonBody, client_ip};

use crate::state::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/admin/auth/token", post(staff_token))
        .route("/api/admin/metrics", get(metrics))
        .route("/api/admin/users", get(users))
        .route("/api/admin/users/{id}", get(user))
        .route("/api/admin/users/{id}/disable", post(disable))
        .route("/api/admin/users/{id}/enable", post(enable))
        .route(
            "/api/admin/users/{id}/revoke-sessions",
            post(revoke_sessions),
        )
        .route("/api/admin/users/{id}/impersonate", post(impersonate))
        .route(
            "/api/admin/impersonations/{id}/end",
            post(end_impersonation),
        )
        .route("/api/admin/audit", get(audit_log))
        .route("/api/admin/audit.csv", get(audit_csv))
        .with_state(state)
}

/// `{"email": "...", "password": "..."}` of a staff member.
#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

/// A staff token and whose it is.
#[derive(Serialize)]
struct StaffToken {
    user: User,
    #[serde(flatten)]
    token: SessionToken,
}

/// `POST /api/admin/auth/token`: a staff token for programs, in a staff session of its own (the
/// staff timeouts), without a refresh token: sign in again when it expires. Rate limited like
/// the panel's sign-in (module `security/rate-limiting`) and audited as `staff.sign_in`. One
/// answer, 401 `invalid_credentials`, for a wrong password, an unknown or disabled account and
/// a customer's, so that it does not tell which accounts are staff.
async fn staff_token(
    State(db): State<Database>,
    State(auth): State<Auth>,
    parts: Parts,
    JsonBody(credentials): JsonBody<Credentials>,
) -> Result<(StatusCode, Json<StaffToken>), ApiError> {
    let user = auth
        .check_credentials(&credentials.email, credentials.password)
        .await?;
    if !user.role.is_staff() {
        tracing::info!(user = %user.id, "staff token refused: not staff");
        return Err(ApiError::InvalidCredentials);
    }
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let token = auth.start_token_session(&user, user_agent).await?;
    let actor = Actor {
        user_id: &user.id,
        email: &user.email,
        client_ip: client_ip(&parts),
    };
    audit::record_session(&db, actor, "staff.sign_in", &token.session_id, now()).await?;
    tracing::info!(user = %user.id, session = %token.session_id, "staff token issued");
    Ok((StatusCode::CREATED, Json(StaffToken { user, token })))
}

#[derive(Serialize)]
struct Metrics {
    metrics: Vec<Metric>,
}

async fn metrics(staff: Staff, State(db): State<Database>) -> Result<Json<Metrics>, ApiError> {
    staff.require(Permission::View)?;
    let metrics = crate::metrics::collect(&db).await?;
    Ok(Json(Metrics { metrics }))
}

async fn users(
    staff: Staff,
    State(db): State<Database>,
    Query(search): Query<Search>,
) -> Result<Json<Page<Customer>>, ApiError> {
    staff.require(Permission::View)?;
    Ok(Json(customers::search(&db, &search).await?))
}

#[derive(Serialize)]
struct UserDetail {
    user: Customer,
    sessions: Vec<SessionView>,
}

async fn user(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<String>,
) -> Result<Json<UserDetail>, ApiError> {
    staff.require(Permission::View)?;
    let user = customers::find(&db, &id).await?;
    let sessions = customers::sessions(&db, &id, now()).await?;
    Ok(Json(UserDetail { user, sessions }))
}

/// `{"reason": "..."}`; the reason is optional.
#[derive(Deserialize)]
struct ReasonBody {
    reason: Option<String>,
}

impl ReasonBody {
    fn reason(&self) -> Option<&str> {
        self.reason
            .as_deref()
            .map(str::trim)
            .filter(|reason| !reason.is_empty())
    }
}

async fn disable(
    staff: Staff,
    state: State<Database>,
    id: Path<String>,
    body: JsonBody<ReasonBody>,
) -> Result<Json<Customer>, ApiError> {
    set_disabled(staff, state, id, body, true).await
}

async fn enable(
    staff: Staff,
    state: State<Database>,
    id: Path<String>,
    body: JsonBody<ReasonBody>,
) -> Result<Json<Customer>, ApiError> {
    set_disabled(staff, state, id, body, false).await
}

async fn set_disabled(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReasonBody>,
    disabled: bool,
) -> Result<Json<Customer>, ApiError> {
    staff.require(Permission::Manage)?;
    let customer =
        customers::set_disabled(&db, staff.actor(), &id, disabled, body.reason(), now()).await?;
    Ok(Json(customer))
}

/// `{"session_id": "..."}` ends one session; `{}` ends all of them.
#[derive(Deserialize)]
struct SessionBody {
    session_id: Option<String>,
}

#[derive(Serialize)]
struct Ended {
    sessions_ended: u64,
}

async fn revoke_sessions(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SessionBody>,
) -> Result<Json<Ended>, ApiError> {
    staff.require(Permission::Manage)?;
    let sessions_ended =
        customers::revoke_sessions(&db, staff.actor(), &id, body.session_id.as_deref(), now())
            .await?;
    Ok(Json(Ended { sessions_ended }))
}

async fn impersonate(
    staff: Staff,
    State(db): State<Database>,
    State(auth): State<Auth>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<impersonation::Request>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    staff.require(Permission::Impersonate)?;
    let started = impersonation::start(&db, &auth, staff.actor(), &id, &body.reason).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

async fn end_impersonation(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    staff.require(Permission::Impersonate)?;
    let any_staff = staff.may(Permission::Manage);
    impersonation::end(&db, staff.actor(), &id, any_staff, now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn audit_log(
    staff: Staff,
    State(db): State<Database>,
    Query(filter): Query<audit::Filter>,
) -> Result<Json<Page<Entry>>, ApiError> {
    staff.require(Permission::View)?;
    Ok(Json(audit::list(&db, &filter.normalized()?).await?))
}

async fn audit_csv(
    staff: Staff,
    State(db): State<Database>,
    Query(filter): Query<audit::Filter>,
) -> Result<Response, ApiError> {
    staff.require(Permission::View)?;
    let csv = audit::csv(&db, &filter.normalized()?).await?;
    Ok(csv_download(csv))
}

/// The audit log's CSV ([`audit::csv`]) as a download: `text/csv`, named `audit-log.csv`,
/// never cached. The panel's export answers the same.
pub fn csv_download(csv: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit-log.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        csv,
    )
        .into_response()
}
