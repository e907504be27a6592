//! The back office as JSON under `/api/admin`: the panel's operations for programs and
//! scripts. Callers present a staff token (`Authorization: Bearer`, from
//! `POST /api/admin/auth/token` with a staff member's email and password) or the panel's session
//! cookie; 401 without credentials, 403 `staff_token_required` for the api's access tokens (a
//! staff member's included: they are customer-facing), 403 when the role does not allow the
//! operation (see [`Permission`]).

use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saas_starter_core::ApiError;
use saas_starter_core::admin::audit::{self, Actor, Entry};
use saas_starter_core::admin::customers::{self, Customer, Search, SessionView};
use saas_starter_core::admin::impersonation::{self, Started};
use saas_starter_core::admin::metrics::Metric;
use saas_starter_core::admin::{Page, Permission, Staff};
use saas_starter_core::auth::{Auth, SessionToken, User, now};
use saas_starter_core::db::Database;
use saas_starter_core::http::openapi::ErrorBody;
use saas_starter_core::http::{JsonBody, Path, Query, client_ip};

use crate::state::AppState;

pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(staff_token))
        .routes(routes!(metrics))
        .routes(routes!(users))
        .routes(routes!(user))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(revoke_sessions))
        .routes(routes!(impersonate))
        .routes(routes!(end_impersonation))
        .routes(routes!(audit_log))
        .routes(routes!(audit_csv))
        .with_state(state)
}

/// `{"email": "...", "password": "..."}` of a staff member.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ops@example.com", "password": "correct horse battery staple"}))]
struct Credentials {
    email: String,
    password: String,
}

/// A staff token and whose it is.
#[derive(Serialize, ToSchema)]
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
#[utoipa::path(post, path = "/api/admin/auth/token", tag = "admin", request_body = Credentials,
    responses(
        (status = 201, description = "A staff token, in a staff session of its own", body = StaffToken),
        (status = 400, description = "`bad_request`: the body or a parameter is not of its shape", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: wrong password, unknown, disabled or customer account alike", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "`overloaded`: too many passwords are being hashed; retry after `Retry-After` seconds", body = ErrorBody),
    ),
)]
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

#[derive(Serialize, ToSchema)]
struct Metrics {
    metrics: Vec<Metric>,
}

/// The dashboard's figures.
#[utoipa::path(get, path = "/api/admin/metrics", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    responses(
        (status = 200, description = "Every figure", body = Metrics),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
    ),
)]
async fn metrics(staff: Staff, State(db): State<Database>) -> Result<Json<Metrics>, ApiError> {
    staff.require(Permission::View)?;
    let metrics = crate::metrics::collect(&db).await?;
    Ok(Json(Metrics { metrics }))
}

/// Customers, searched by email or name, a page at a time.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(Search),
    responses(
        (status = 200, description = "A page of customers", body = Page<Customer>),
        (status = 400, description = "`bad_request`: the body or a parameter is not of its shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
async fn users(
    staff: Staff,
    State(db): State<Database>,
    Query(search): Query<Search>,
) -> Result<Json<Page<Customer>>, ApiError> {
    staff.require(Permission::View)?;
    Ok(Json(customers::search(&db, &search).await?))
}

#[derive(Serialize, ToSchema)]
struct UserDetail {
    user: Customer,
    sessions: Vec<SessionView>,
}

/// A customer and their sessions in force.
#[utoipa::path(get, path = "/api/admin/users/{id}", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The customer's user id")),
    responses(
        (status = 200, description = "The customer", body = UserDetail),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such customer", body = ErrorBody),
    ),
)]
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
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"reason": "chargeback fraud"}))]
pub struct ReasonBody {
    pub reason: Option<String>,
}

impl ReasonBody {
    pub fn reason(&self) -> Option<&str> {
        self.reason
            .as_deref()
            .map(str::trim)
            .filter(|reason| !reason.is_empty())
    }
}

/// Disables the account: its sessions end and it cannot sign in.
#[utoipa::path(post, path = "/api/admin/users/{id}/disable", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The customer's user id")),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "The customer, disabled", body = Customer),
        (status = 400, description = "`bad_request`: the body or a parameter is not of its shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such customer", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
async fn disable(
    staff: Staff,
    state: State<Database>,
    id: Path<String>,
    body: JsonBody<ReasonBody>,
) -> Result<Json<Customer>, ApiError> {
    set_disabled(staff, state, id, body, true).await
}

/// Enables a disabled account again.
#[utoipa::path(post, path = "/api/admin/users/{id}/enable", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The customer's user id")),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "The customer, enabled", body = Customer),
        (status = 400, description = "`bad_request`: the body or a parameter is not of its shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such customer", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
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
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"session_id": "0193b3c4-0000-7000-8000-000000000000"}))]
struct SessionBody {
    session_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Ended {
    sessions_ended: u64,
}

/// Ends one of the customer's sessions, or all of them.
#[utoipa::path(post, path = "/api/admin/users/{id}/revoke-sessions", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The customer's user id")),
    request_body = SessionBody,
    responses(
        (status = 200, description = "How many sessions ended", body = Ended),
        (status = 400, description = "`bad_request`: the body or a parameter is not of its shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such customer", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
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

/// Starts acting as the customer: one access token for the api, audited with the reason.
#[utoipa::path(post, path = "/api/admin/users/{id}/impersonate", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The customer's user id")),
    request_body = saas_starter_core::admin::impersonation::Request,
    responses(
        (status = 201, description = "The impersonation and its token, shown once", body = Started),
        (status = 400, description = "`bad_request`: the body or a parameter is not of its shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not impersonate, or the target is staff (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such customer", body = ErrorBody),
        (status = 409, description = "`conflict`: the account is disabled", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
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

/// Ends an impersonation: its token stops working.
#[utoipa::path(post, path = "/api/admin/impersonations/{id}/end", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The impersonation's id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not impersonate, or end another's (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such impersonation", body = ErrorBody),
    ),
)]
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

/// The audit log, newest first, filtered, a page at a time.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(audit::Filter),
    responses(
        (status = 200, description = "A page of entries", body = Page<Entry>),
        (status = 400, description = "`bad_request`: the body or a parameter is not of its shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
async fn audit_log(
    staff: Staff,
    State(db): State<Database>,
    Query(filter): Query<audit::Filter>,
) -> Result<Json<Page<Entry>>, ApiError> {
    staff.require(Permission::View)?;
    Ok(Json(audit::list(&db, &filter.normalized()?).await?))
}

/// The audit log as CSV, filtered like `/api/admin/audit`.
#[utoipa::path(get, path = "/api/admin/audit.csv", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(audit::Filter),
    responses(
        (status = 200, description = "A CSV download, `audit-log.csv`", content_type = "text/csv", body = String),
        (status = 400, description = "`bad_request`: the body or a parameter is not of its shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
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
