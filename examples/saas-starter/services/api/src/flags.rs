//! `GET /api/flags`: every feature flag as it is for the signed-in user, in the organization the
//! access token is switched to if they are still a member of it, `{"flags": {"<key>": true,
//! ...}}`. The flags are managed in the admin service; the rule that decides each one is in
//! `saas_starter_core::flags`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saas_starter_core::ApiError;
use saas_starter_core::auth::{Auth, CurrentUser};
use saas_starter_core::db::Database;
use saas_starter_core::flags::{Target, values_for};
use saas_starter_core::http::openapi::ErrorBody;

use crate::state::AppState;

pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(flags))
        .with_state(state)
}

/// Each flag's key and whether it is on for the user.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"flags": {"new-dashboard": true}}))]
struct Flags {
    flags: BTreeMap<String, bool>,
}

/// For the user the request is authenticated as (401 without credentials), including a customer
/// being impersonated: staff then see what the customer sees. With an access token switched to
/// an organization (`POST /api/orgs/{org}/switch`), the organization's overrides and rollout
/// apply too, while the user is a member of it: the membership is checked on each request (a
/// removed member gets the flags of no organization at once, not when the token expires).
#[utoipa::path(get, path = "/api/flags", tag = "flags",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Every flag, on or off for this user", body = Flags),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
    ),
)]
async fn flags(
    State(db): State<Database>,
    State(auth): State<Auth>,
    current: CurrentUser,
) -> Result<Json<Flags>, ApiError> {
    let target = Target {
        user_id: &current.user.id,
        org_id: auth
            .active_organization(&current)
            .await
            .map_err(ApiError::internal)?,
    };
    let flags = values_for(&db, target).await?;
    Ok(Json(Flags { flags }))
}
