//! `/api/users/profile`: the signed-in user reads and edits their profile. The rules live in
//! `saaskit_core::profile`.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saaskit_core::ApiError;
use saaskit_core::auth::{CurrentUser, now};
use saaskit_core::db::Database;
use saaskit_core::http::JsonBody;
use saaskit_core::http::openapi::ErrorBody;
use saaskit_core::profile::{self, Profile, ProfileUpdate};

use crate::state::AppState;

pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(show, update))
        .with_state(state)
}

/// The signed-in user's profile.
#[utoipa::path(get, path = "/api/users/profile", tag = "users",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 404, description = "`not_found`: the account is gone", body = ErrorBody),
    ),
)]
async fn show(State(db): State<Database>, current: CurrentUser) -> Result<Json<Profile>, ApiError> {
    let profile = profile::load(&db, &current.user.id).await?;
    Ok(Json(profile))
}

/// Replaces the editable fields: a field left out of the body is cleared.
#[utoipa::path(put, path = "/api/users/profile", tag = "users",
    security(("bearer" = []), ("session" = [])),
    request_body = ProfileUpdate,
    responses(
        (status = 200, description = "The profile as saved", body = Profile),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: the account is gone", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
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
