//! The webhook operations as JSON under `/api/admin/webhooks`, with the shapes of the webhooks
//! service's operations API (`/api/webhooks/...`), for staff presenting an access token or the
//! panel's session cookie: 401 without credentials, 403 when the role does not allow it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saaskit_core::ApiError;
use saaskit_core::admin::{Permission, Staff};
use saaskit_core::admin_webhooks;
use saaskit_core::db::Database;
use saaskit_core::http::openapi::ErrorBody;
use saaskit_core::http::{Path, Query};
use saaskit_core::webhooks::{
    BulkReplayQuery, BulkReplayed, EventDetail, LogFilter, LogPage, LogQuery, Replayed, store,
};

use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(event))
        .routes(routes!(replay))
        .routes(routes!(replay_all))
}

/// `?status=&type=&limit=&cursor=`: newest first, `next_cursor` for the next page.
#[utoipa::path(get, path = "/api/admin/webhooks/events", tag = "webhooks",
    security(("bearer" = []), ("staff_session" = [])),
    params(LogQuery),
    responses(
        (status = 200, description = "A page of events", body = LogPage),
        (status = 400, description = "`bad_request`: a parameter is not of its type", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid parameter is named in `fields`", body = ErrorBody),
    ),
)]
async fn events(
    staff: Staff,
    State(db): State<Database>,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    staff.require(Permission::View)?;
    let filter = LogFilter::from_query(&query)?;
    Ok(Json(store::logs(&db, &filter).await?))
}

/// An event with its payload, attempts and replays.
#[utoipa::path(get, path = "/api/admin/webhooks/events/{id}", tag = "webhooks",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The Stripe event id, `evt_...`")),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such event", body = ErrorBody),
    ),
)]
async fn event(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<String>,
) -> Result<Json<EventDetail>, ApiError> {
    staff.require(Permission::View)?;
    let event = store::event(&db, &id).await?;
    Ok(Json(event.ok_or(ApiError::NotFound("event"))?))
}

/// Queues the event to be processed again.
#[utoipa::path(post, path = "/api/admin/webhooks/events/{id}/replay", tag = "webhooks",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The Stripe event id, `evt_...`")),
    responses(
        (status = 202, description = "Queued", body = Replayed),
        (status = 400, description = "`bad_request`: not an event id", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such event", body = ErrorBody),
        (status = 409, description = "`conflict`: the event is queued already", body = ErrorBody),
    ),
)]
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
#[utoipa::path(post, path = "/api/admin/webhooks/replay", tag = "webhooks",
    security(("bearer" = []), ("staff_session" = [])),
    params(BulkReplayQuery),
    responses(
        (status = 202, description = "How many events were queued", body = BulkReplayed),
        (status = 400, description = "`bad_request`: a parameter is not of its type", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `status` is not `dead_letter`", body = ErrorBody),
    ),
)]
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
