//! Feature flags as JSON under `/api/admin/flags`, for a staff member's Bearer token or the
//! panel's session cookie: support staff read them, admins change them (see
//! [`Permission::Manage`]). Every change is audited by `saas_starter_core::flags`.
//!
//! - `GET /api/admin/flags`: every flag, by key;
//! - `POST /api/admin/flags` `{"key", "description"?, "enabled"?, "rollout_percent"?,
//!   "rollout_by"?}`: 201;
//! - `GET /api/admin/flags/{key}`: the flag and its overrides;
//! - `PUT /api/admin/flags/{key}` `{"description"?, "enabled"?, "rollout_percent"?,
//!   "rollout_by"?}`: a field
//!   left out keeps its value;
//! - `DELETE /api/admin/flags/{key}`: 204, with its overrides;
//! - `PUT /api/admin/flags/{key}/overrides/{user_id}` `{"enabled": true|false}`;
//! - `DELETE /api/admin/flags/{key}/overrides/{user_id}`: 204;
//! - `PUT /api/admin/flags/{key}/org-overrides/{org_id}` `{"enabled": true|false}`;
//! - `DELETE /api/admin/flags/{key}/org-overrides/{org_id}`: 204.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saas_starter_core::ApiError;
use saas_starter_core::admin::{Permission, Staff};
use saas_starter_core::auth::now;
use saas_starter_core::db::Database;
use saas_starter_core::flags::{self, Flag, FlagDetail, FlagUpdate, NewFlag};
use saas_starter_core::flags::{OrgOverride, Override};
use saas_starter_core::http::openapi::ErrorBody;
use saas_starter_core::http::{JsonBody, Path};

use crate::state::AppState;

pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(set_override, remove_override))
        .routes(routes!(set_org_override, remove_org_override))
        .with_state(state)
}

#[derive(Serialize, ToSchema)]
struct FlagList {
    /// By key.
    flags: Vec<Flag>,
}

/// Every flag, by key.
#[utoipa::path(get, path = "/api/admin/flags", tag = "flags", operation_id = "list_flags",
    security(("bearer" = []), ("staff_session" = [])),
    responses(
        (status = 200, description = "The flags", body = FlagList),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
    ),
)]
async fn list(staff: Staff, State(db): State<Database>) -> Result<Json<FlagList>, ApiError> {
    staff.require(Permission::View)?;
    let flags = flags::list(&db).await?;
    Ok(Json(FlagList { flags }))
}

/// Creates a flag: disabled, and on for everyone once enabled unless told otherwise.
#[utoipa::path(post, path = "/api/admin/flags", tag = "flags",
    security(("bearer" = []), ("staff_session" = [])),
    request_body = NewFlag,
    responses(
        (status = 201, description = "The flag", body = FlagDetail),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 409, description = "`conflict`: a flag has this key", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
async fn create(
    staff: Staff,
    State(db): State<Database>,
    JsonBody(new): JsonBody<NewFlag>,
) -> Result<(StatusCode, Json<FlagDetail>), ApiError> {
    staff.require(Permission::Manage)?;
    let flag = flags::create(&db, staff.actor(), new, now()).await?;
    Ok((StatusCode::CREATED, Json(flag)))
}

/// A flag and its overrides.
#[utoipa::path(get, path = "/api/admin/flags/{key}", tag = "flags",
    security(("bearer" = []), ("staff_session" = [])),
    params(("key" = String, Path, description = "The flag's key")),
    responses(
        (status = 200, description = "The flag", body = FlagDetail),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such flag", body = ErrorBody),
    ),
)]
async fn show(
    staff: Staff,
    State(db): State<Database>,
    Path(key): Path<String>,
) -> Result<Json<FlagDetail>, ApiError> {
    staff.require(Permission::View)?;
    Ok(Json(flags::get(&db, &key).await?))
}

/// Changes a flag: a field left out keeps its value.
#[utoipa::path(put, path = "/api/admin/flags/{key}", tag = "flags",
    security(("bearer" = []), ("staff_session" = [])),
    params(("key" = String, Path, description = "The flag's key")),
    request_body = FlagUpdate,
    responses(
        (status = 200, description = "The flag", body = FlagDetail),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such flag", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
async fn update(
    staff: Staff,
    State(db): State<Database>,
    Path(key): Path<String>,
    JsonBody(update): JsonBody<FlagUpdate>,
) -> Result<Json<FlagDetail>, ApiError> {
    staff.require(Permission::Manage)?;
    let flag = flags::update(&db, staff.actor(), &key, update, now()).await?;
    Ok(Json(flag))
}

/// Deletes a flag with its overrides.
#[utoipa::path(delete, path = "/api/admin/flags/{key}", tag = "flags",
    security(("bearer" = []), ("staff_session" = [])),
    params(("key" = String, Path, description = "The flag's key")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such flag", body = ErrorBody),
    ),
)]
async fn delete(
    staff: Staff,
    State(db): State<Database>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    staff.require(Permission::Manage)?;
    flags::delete(&db, staff.actor(), &key, now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"enabled": true}` forces the flag on for the user, `false` off.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true}))]
struct OverrideBody {
    enabled: bool,
}

/// Forces the flag on or off for one user.
#[utoipa::path(put, path = "/api/admin/flags/{key}/overrides/{user_id}", tag = "flags",
    security(("bearer" = []), ("staff_session" = [])),
    params(("key" = String, Path, description = "The flag's key"), ("user_id" = String, Path, description = "The user's id")),
    request_body = OverrideBody,
    responses(
        (status = 200, description = "The override", body = Override),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such flag or user", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
async fn set_override(
    staff: Staff,
    State(db): State<Database>,
    Path((key, user_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<OverrideBody>,
) -> Result<Json<Override>, ApiError> {
    staff.require(Permission::Manage)?;
    let saved =
        flags::set_override(&db, staff.actor(), &key, &user_id, body.enabled, now()).await?;
    Ok(Json(saved))
}

/// Removes a user's override: the flag's rule applies to them again.
#[utoipa::path(delete, path = "/api/admin/flags/{key}/overrides/{user_id}", tag = "flags",
    security(("bearer" = []), ("staff_session" = [])),
    params(("key" = String, Path, description = "The flag's key"), ("user_id" = String, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such flag, user or override", body = ErrorBody),
    ),
)]
async fn remove_override(
    staff: Staff,
    State(db): State<Database>,
    Path((key, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    staff.require(Permission::Manage)?;
    flags::remove_override(&db, staff.actor(), &key, &user_id, now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forces the flag on or off for the members of one organization, in requests for it (an access
/// token switched to it); a user's own override still wins.
#[utoipa::path(put, path = "/api/admin/flags/{key}/org-overrides/{org_id}", tag = "flags",
    security(("bearer" = []), ("staff_session" = [])),
    params(("key" = String, Path, description = "The flag's key"), ("org_id" = String, Path, description = "The organization's id")),
    request_body = OverrideBody,
    responses(
        (status = 200, description = "The organization's override", body = OrgOverride),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such flag", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `org_id` is not an organization's id", body = ErrorBody),
    ),
)]
async fn set_org_override(
    staff: Staff,
    State(db): State<Database>,
    Path((key, org_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<OverrideBody>,
) -> Result<Json<OrgOverride>, ApiError> {
    staff.require(Permission::Manage)?;
    let saved =
        flags::set_org_override(&db, staff.actor(), &key, &org_id, body.enabled, now()).await?;
    Ok(Json(saved))
}

/// Removes an organization's override: the flag's rule applies to its members again.
#[utoipa::path(delete, path = "/api/admin/flags/{key}/org-overrides/{org_id}", tag = "flags",
    security(("bearer" = []), ("staff_session" = [])),
    params(("key" = String, Path, description = "The flag's key"), ("org_id" = String, Path, description = "The organization's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such flag, or the organization has no override of it", body = ErrorBody),
    ),
)]
async fn remove_org_override(
    staff: Staff,
    State(db): State<Database>,
    Path((key, org_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    staff.require(Permission::Manage)?;
    flags::remove_org_override(&db, staff.actor(), &key, &org_id, now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
