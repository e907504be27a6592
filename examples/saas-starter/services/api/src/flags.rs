//! `GET /api/flags`: every feature flag as it is for the signed-in user, `{"flags": {"<key>":
//! true, ...}}`. The flags are managed in the admin service; the rule that decides each one is in
//! `saas_starter_core::flags`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use saas_starter_core::ApiError;
use saas_starter_core::auth::CurrentUser;
use saas_starter_core::db::Database;
use saas_starter_core::flags::values_for;

use crate::state::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/flags", get(flags))
        .with_state(state)
}

#[derive(Serialize)]
struct Flags {
    flags: BTreeMap<String, bool>,
}

/// For the user the request is authenticated as (401 without credentials), including a customer
/// being impersonated: staff then see what the customer sees.
async fn flags(State(db): State<Database>, current: CurrentUser) -> Result<Json<Flags>, ApiError> {
    let flags = values_for(&db, &current.user.id).await?;
    Ok(Json(Flags { flags }))
}
