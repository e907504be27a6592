//! `/api/users/profile`: the signed-in user reads and edits their profile. The rules live in
//! `shared::profile`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use shared::ApiError;
use shared::auth::CurrentUser;
use shared::db::Database;
use shared::http::JsonBody;
use shared::profile::{self, Profile, ProfileUpdate};

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
    profile::save(&db, &current.user.id, &update, shared::auth::now()).await?;
    let profile = profile::load(&db, &current.user.id).await?;
    Ok(Json(profile))
}
