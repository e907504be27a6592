//! Feature flags as JSON under `/api/admin/flags`, for a staff member's Bearer token or the
//! panel's session cookie: support staff read them, admins change them (see
//! [`Permission::Manage`]). Every change is audited by `saas_starter_core::flags`.
//!
//! - `GET /api/admin/flags`: every flag, by key;
//! - `POST /api/admin/flags` `{"key", "description"?, "enabled"?, "rollout_percent"?}`: 201;
//! - `GET /api/admin/flags/{key}`: the flag and its overrides;
//! - `PUT /api/admin/flags/{key}` `{"description"?, "enabled"?, "rollout_percent"?}`: a field
//!   left out keeps its value;
//! - `DELETE /api/admin/flags/{key}`: 204, with its overrides;
//! - `PUT /api/admin/flags/{key}/overrides/{user_id}` `{"enabled": true|false}`;
//! - `DELETE /api/admin/flags/{key}/overrides/{user_id}`: 204.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use saas_starter_core::ApiError;
use saas_starter_core::admin::{Permission, Staff};
use saas_starter_core::auth::now;
use saas_starter_core::db::Database;
use saas_starter_core::flags::{self, Flag, FlagDetail, FlagUpdate, NewFlag, Override};
use saas_starter_core::http::JsonBody;

use crate::state::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/admin/flags", get(list).post(create))
        .route(
            "/api/admin/flags/{key}",
            get(show).put(update).delete(delete),
        )
        .route(
            "/api/admin/flags/{key}/overrides/{user_id}",
            put(set_override).delete(remove_override),
        )
        .with_state(state)
}

#[derive(Serialize)]
struct FlagList {
    /// By key.
    flags: Vec<Flag>,
}

async fn list(staff: Staff, State(db): State<Database>) -> Result<Json<FlagList>, ApiError> {
    staff.require(Permission::View)?;
    let flags = flags::list(&db).await?;
    Ok(Json(FlagList { flags }))
}

async fn create(
    staff: Staff,
    State(db): State<Database>,
    JsonBody(new): JsonBody<NewFlag>,
) -> Result<(StatusCode, Json<FlagDetail>), ApiError> {
    staff.require(Permission::Manage)?;
    let flag = flags::create(&db, staff.actor(), new, now()).await?;
    Ok((StatusCode::CREATED, Json(flag)))
}

async fn show(
    staff: Staff,
    State(db): State<Database>,
    Path(key): Path<String>,
) -> Result<Json<FlagDetail>, ApiError> {
    staff.require(Permission::View)?;
    Ok(Json(flags::get(&db, &key).await?))
}

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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    enabled: bool,
}

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

async fn remove_override(
    staff: Staff,
    State(db): State<Database>,
    Path((key, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    staff.require(Permission::Manage)?;
    flags::remove_override(&db, staff.actor(), &key, &user_id, now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
