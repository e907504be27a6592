//! The operations API: the event log, an event's attempts, and replays. Never open: callers
//! present the internal API key (`WEBHOOKS_OPERATIONS_API_KEY`) or a staff token (from the admin
//! service's `POST /api/admin/auth/token`; the api's access tokens are refused with 403
//! `staff_token_required`, a staff member's included) as `Authorization: Bearer ...`. Support
//! staff may read; replays need an admin or the key.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use shared::ApiError;
use shared::auth::{Auth, Role};
use shared::webhooks::{
    BulkReplayQuery, BulkReplayed, EventDetail, LogFilter, LogPage, LogQuery, Replayed, Webhooks,
};

#[derive(Clone)]
struct Operations {
    webhooks: Webhooks,
    auth: Auth,
}

pub fn routes(webhooks: Webhooks, auth: Auth) -> Router {
    Router::new()
        .route("/api/webhooks/logs", get(logs))
        .route("/api/webhooks/events/{id}", get(event))
        .route("/api/webhooks/replay/{id}", post(replay))
        .route("/api/webhooks/replay", post(replay_all))
        .with_state(Operations {
            webhooks,
            auth: auth.for_staff(),
        })
}

async fn logs(
    _: Operator,
    State(ops): State<Operations>,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let filter = LogFilter::from_query(&query)?;
    Ok(Json(ops.webhooks.logs(&filter).await?))
}

async fn event(
    _: Operator,
    State(ops): State<Operations>,
    Path(id): Path<String>,
) -> Result<Json<EventDetail>, ApiError> {
    Ok(Json(ops.webhooks.event(&id).await?))
}

async fn replay(
    operator: Operator,
    State(ops): State<Operations>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let name = operator.allowed_to_replay()?;
    let replays = ops.webhooks.replay(&id, &name).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed::queued(replays))))
}

/// `POST /api/webhooks/replay?status=dead_letter`: the only bulk replay, so that a typo cannot
/// re-run every processed event.
async fn replay_all(
    operator: Operator,
    State(ops): State<Operations>,
    Query(query): Query<BulkReplayQuery>,
) -> Result<(StatusCode, Json<BulkReplayed>), ApiError> {
    let name = operator.allowed_to_replay()?;
    let status = query.dead_letter()?;
    let queued = ops.webhooks.replay_all(status, &name).await?;
    Ok((StatusCode::ACCEPTED, Json(BulkReplayed { queued })))
}

/// Who calls an operations endpoint: the internal API key or a staff member. As an extractor it
/// answers 401 without credentials and 403 for customers.
enum Operator {
    ApiKey,
    Staff {
        user_id: String,
        email: String,
        role: Role,
    },
}

impl Operator {
    /// The name replays are recorded under, when this operator may replay.
    fn allowed_to_replay(&self) -> Result<String, ApiError> {
        match self {
            Self::ApiKey => Ok("internal API key".to_owned()),
            Self::Staff {
                user_id,
                email,
                role: Role::Admin,
            } => Ok(format!("{email} ({user_id})")),
            Self::Staff { .. } => Err(ApiError::Forbidden),
        }
    }
}

impl FromRequestParts<Operations> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ops: &Operations,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if bearer.is_some_and(|token| ops.webhooks.is_operations_api_key(token)) {
            return Ok(Self::ApiKey);
        }
        let current = ops
            .auth
            .authenticate(&parts.method, &parts.headers)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let user = current.user;
        if !user.role.is_staff() {
            return Err(ApiError::Forbidden);
        }
        Ok(Self::Staff {
            user_id: user.id,
            email: user.email,
            role: user.role,
        })
    }
}
