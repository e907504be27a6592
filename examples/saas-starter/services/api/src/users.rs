//! `/api/users/profile`: the signed-in user reads and edits their profile. The rules live in
//! `saas_starter_core::profile`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use saas_starter_core::ApiError;
use saas_starter_core::auth::{CurrentUser, now};
use saas_starter_core::db::Database;
use saas_starter_core::http::JsonBody;
use saas_starter_core::profile::{self, Profile, ProfileUpdate};

use crate::state::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/users/profile", get(show).put(update))
        .with_state(state)
}

async fn show(State(db): State<Database>, current: CurrentUser) -> Result<Json<Profile>, ApiError> {
    let profile = profile::load(&db, &current.user.id).await?;
    Ok(Json(profile))
}

/// Replaces the editable fields: a field left out of the body is cleared.
async fn update(
    State(db): State<Database>,
    current: CurrentUser,
    JsonBody(update): JsonBody<ProfileUpdate>,
) -> Result<Json<Profile>, ApiError> {
    let update = update.validate().map_err(ApiError::Validation)?;
    profile::save(&db, &current.user.id, &update, now()).await?;
    let profile = profile::load(&db, &current.user.id).await?;
    Ok(Json(profile))
}
