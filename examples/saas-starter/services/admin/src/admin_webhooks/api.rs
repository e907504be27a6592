//! The webhook operations as JSON under `/api/admin/webhooks`, with the shapes of the webhooks
//! service's operations API (`/api/webhooks/...`), for staff presenting an access token or the
//! panel's session cookie: 401 without credentials, 403 when the role does not allow it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use saas_starter_core::ApiError;
use saas_starter_core::admin::{Permission, Staff};
use saas_starter_core::admin_webhooks;
use saas_starter_core::db::Database;
use saas_starter_core::webhooks::{
    BulkReplayQuery, BulkReplayed, EventDetail, LogFilter, LogPage, LogQuery, Replayed, store,
};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/webhooks/events", get(events))
        .route("/api/admin/webhooks/events/{id}", get(event))
        .route("/api/admin/webhooks/events/{id}/replay", post(replay))
        .route("/api/admin/webhooks/replay", post(replay_all))
}

/// `?status=&type=&limit=&cursor=`: newest first, `next_cursor` for the next page.
async fn events(
    staff: Staff,
    State(db): State<Database>,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    staff.require(Permission::View)?;
    let filter = LogFilter::from_query(&query)?;
    Ok(Json(store::logs(&db, &filter).await?))
}

async fn event(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<String>,
) -> Result<Json<EventDetail>, ApiError> {
    staff.require(Permission::View)?;
    let event = store::event(&db, &id).await?;
    Ok(Json(event.ok_or(ApiError::NotFound("event"))?))
}

async fn replay(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let replays = admin_webhooks::replay(&db, &staff, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed::queued(replays))))
}

/// `POST /api/admin/webhooks/replay?status=dead_letter`: the only bulk replay, so that a typo
/// cannot run every processed event again.
async fn replay_all(
    staff: Staff,
    State(db): State<Database>,
    Query(query): Query<BulkReplayQuery>,
) -> Result<(StatusCode, Json<BulkReplayed>), ApiError> {
    staff.require(Permission::Manage)?;
    query.dead_letter()?;
    let queued = admin_webhooks::replay_dead_letter(&db, &staff).await?;
    Ok((StatusCode::ACCEPTED, Json(BulkReplayed { queued })))
}
