//! The operations API: the event log, an event's attempts, and replays. Never open: callers
//! present the internal API key (`WEBHOOKS_OPERATIONS_API_KEY`) or a staff token (from the admin
//! service's `POST /api/admin/auth/token`; the api's access tokens are refused with 403
//! `staff_token_required`, a staff member's included) as `Authorization: Bearer ...`. Support
//! staff may read; replays need an admin or the key. Replays land in the audit log, naming the
//! admin or the key (`WEBHOOKS_OPERATIONS_API_KEY_NAME`), as the back office's do.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saaskit_core::ApiError;
use saaskit_core::audit::Actor;
use saaskit_core::auth::{Auth, Role};
use saaskit_core::http::openapi::ErrorBody;
use saaskit_core::http::{Path, Query, client_ip};
use saaskit_core::webhooks::{
    BulkReplayQuery, BulkReplayed, EventDetail, LogFilter, LogPage, LogQuery, Replayed, Webhooks,
};

use crate::state::AppState;

#[derive(Clone)]
struct Operations {
    webhooks: Webhooks,
    auth: Auth,
}

pub fn routes(webhooks: Webhooks, state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(logs))
        .routes(routes!(event))
        .routes(routes!(replay))
        .routes(routes!(replay_all))
        .with_state(Operations {
            webhooks,
            auth: state.auth.for_staff(),
        })
}

/// The event log, newest first, a page at a time.
#[utoipa::path(get, path = "/api/webhooks/logs", tag = "webhooks",
    security(("operations_key" = [])),
    params(LogQuery),
    responses(
        (status = 200, description = "A page of events", body = LogPage),
        (status = 400, description = "`bad_request`: a parameter is not of its type", body = ErrorBody),
        (status = 401, description = "`unauthorized`: neither the operations key nor a staff token", body = ErrorBody),
        (status = 403, description = "`forbidden`: not staff; `staff_token_required`: an api access token", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `status`, `limit` or `cursor` is invalid", body = ErrorBody),
    ),
)]
async fn logs(
    _: Operator,
    State(ops): State<Operations>,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let filter = LogFilter::from_query(&query)?;
    Ok(Json(ops.webhooks.logs(&filter).await?))
}

/// An event with its payload, attempts and replays.
#[utoipa::path(get, path = "/api/webhooks/events/{id}", tag = "webhooks",
    security(("operations_key" = [])),
    params(("id" = String, Path, description = "The Stripe event id, `evt_...`")),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: neither the operations key nor a staff token", body = ErrorBody),
        (status = 403, description = "`forbidden`: not staff; `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such event", body = ErrorBody),
    ),
)]
async fn event(
    _: Operator,
    State(ops): State<Operations>,
    Path(id): Path<String>,
) -> Result<Json<EventDetail>, ApiError> {
    Ok(Json(ops.webhooks.event(&id).await?))
}

/// Queues the event to be processed again.
#[utoipa::path(post, path = "/api/webhooks/replay/{id}", tag = "webhooks",
    security(("operations_key" = [])),
    params(("id" = String, Path, description = "The Stripe event id, `evt_...`")),
    responses(
        (status = 202, description = "Queued", body = Replayed),
        (status = 400, description = "`bad_request`: not an event id", body = ErrorBody),
        (status = 401, description = "`unauthorized`: neither the operations key nor a staff token", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin nor the key; `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such event", body = ErrorBody),
        (status = 409, description = "`conflict`: the event is queued already", body = ErrorBody),
    ),
)]
async fn replay(
    operator: Operator,
    State(ops): State<Operations>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let actor = operator.allowed_to_replay(&ops.webhooks)?;
    let replays = ops.webhooks.replay(&id, actor).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed::queued(replays))))
}

/// `POST /api/webhooks/replay?status=dead_letter`: the only bulk replay, so that a typo cannot
/// re-run every processed event.
#[utoipa::path(post, path = "/api/webhooks/replay", tag = "webhooks",
    security(("operations_key" = [])),
    params(BulkReplayQuery),
    responses(
        (status = 202, description = "How many events were queued", body = BulkReplayed),
        (status = 400, description = "`bad_request`: a parameter is not of its type", body = ErrorBody),
        (status = 401, description = "`unauthorized`: neither the operations key nor a staff token", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin nor the key; `staff_token_required`: an api access token", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `status` is not `dead_letter`", body = ErrorBody),
    ),
)]
async fn replay_all(
    operator: Operator,
    State(ops): State<Operations>,
    Query(query): Query<BulkReplayQuery>,
) -> Result<(StatusCode, Json<BulkReplayed>), ApiError> {
    let actor = operator.allowed_to_replay(&ops.webhooks)?;
    let status = query.dead_letter()?;
    let queued = ops.webhooks.replay_all(status, actor).await?;
    Ok((StatusCode::ACCEPTED, Json(BulkReplayed { queued })))
}

/// Who calls an operations endpoint, and from where: the internal API key or a staff member.
/// As an extractor it answers 401 without credentials and 403 for customers.
struct Operator {
    kind: OperatorKind,
    client_ip: Option<IpAddr>,
}

enum OperatorKind {
    ApiKey,
    Staff {
        user_id: String,
        email: String,
        role: Role,
    },
}

impl Operator {
    /// Who the audit log names for a replay, when this operator may replay.
    fn allowed_to_replay<'a>(&'a self, webhooks: &'a Webhooks) -> Result<Actor<'a>, ApiError> {
        match &self.kind {
            OperatorKind::ApiKey => Ok(webhooks.operations_api_key_actor(self.client_ip)),
            OperatorKind::Staff {
                user_id,
                email,
                role: Role::Admin,
            } => Ok(Actor {
                user_id,
                email,
                client_ip: self.client_ip,
            }),
            OperatorKind::Staff { .. } => Err(ApiError::Forbidden),
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
        let client_ip = client_ip(parts);
        if bearer.is_some_and(|token| ops.webhooks.is_operations_api_key(token)) {
            return Ok(Self {
                kind: OperatorKind::ApiKey,
                client_ip,
            });
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
        Ok(Self {
            kind: OperatorKind::Staff {
                user_id: user.id,
                email: user.email,
                role: user.role,
            },
            client_ip,
        })
    }
}
