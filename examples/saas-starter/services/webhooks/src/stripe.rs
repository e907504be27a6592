//! `POST /api/webhooks/stripe`: where Stripe delivers events. The rules (signatures, storage,
//! processing) live in `saas_starter_core::webhooks`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use saas_starter_core::ApiError;
use saas_starter_core::webhooks::{Ingested, Webhooks};

pub fn routes(webhooks: Webhooks) -> Router {
    Router::new()
        .route("/api/webhooks/stripe", post(receive))
        .with_state(webhooks)
}

#[derive(Serialize)]
struct Receipt {
    /// `received`, or `duplicate` for an event id seen before.
    status: &'static str,
}

/// Answers 200 only once the event and its job are committed: Stripe retries anything else, so
/// nothing is lost if the service or the database fails half-way.
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
