//! `POST /api/webhooks/stripe`: where Stripe delivers events. The rules (signatures, storage,
//! processing) live in `saaskit_core::webhooks`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saaskit_core::ApiError;
use saaskit_core::http::openapi::ErrorBody;
use saaskit_core::webhooks::{Ingested, Webhooks};

pub fn routes(webhooks: Webhooks) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(receive))
        .with_state(webhooks)
}

#[derive(Serialize, ToSchema)]
struct Receipt {
    /// `received`, or `duplicate` for an event id seen before.
    #[schema(example = "received")]
    status: &'static str,
}

/// Answers 200 only once the event and its job are committed: Stripe retries anything else, so
/// nothing is lost if the service or the database fails half-way.
#[utoipa::path(post, path = "/api/webhooks/stripe", tag = "webhooks",
    security(("stripe_signature" = [])),
    request_body(content = Object, description = "A Stripe event, exactly as Stripe sent it (the signature covers the raw bytes)",
        example = json!({"id": "evt_1", "type": "customer.subscription.updated", "created": 1767225600,
            "livemode": false, "data": {"object": {}}})),
    responses(
        (status = 200, description = "The event is stored, or was before", body = Receipt),
        (status = 400, description = "`signature_header_missing`, `signature_timestamp_missing`, `signature_v1_missing`, `signature_mismatch`, `signature_expired`, `signature_from_the_future`; or `bad_request`: not an event", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
    ),
)]
async fn receive(
    State(webhooks): State<Webhooks>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Receipt>, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => ApiError::BadRequest(rejection.body_text()),
    })?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok());
    webhooks
        .verify(signature, &body)
        .map_err(|error| ApiError::Rejected {
            code: error.code(),
            message: error.to_string(),
        })?;
    let status = match webhooks.ingest(&body).await? {
        Ingested::Stored => "received",
        Ingested::Duplicate => "duplicate",
    };
    Ok(Json(Receipt { status }))
}
