//! The error type of HTTP handlers, and the JSON body clients receive for it.
//!
//! Every error response of every service has the same shape:
//!
//! ```json
//! {"error": {"code": "validation_failed", "message": "the request has invalid fields",
//!            "fields": {"email": "is not an email address"}}}
//! ```
//!
//! `code` is stable and meant for programs; `message` is meant for people and may change;
//! `fields` is present only when specific inputs (or, for 503, dependencies) are at fault.
//! Internal errors are logged with their cause, and clients only learn that something failed.
//!
//! This is the services' edge: domain code returns its own errors (`AuthError`, `FlagsError`...),
//! which name what happened, not how HTTP says it; the submodules below map each to an
//! [`ApiError`], so that handlers use `?` on domain calls and every response keeps its `code`.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

// saaskit declares the modules it adds after the next line: keep it.
// <<<inject:mods>>>
// <<<begin:auth@mods>>>
mod auth;
// <<<end:auth@mods>>>
// <<<begin:admin/core@mods>>>
mod admin;
// <<<end:admin/core@mods>>>
// <<<begin:billing/stripe-webhooks@mods>>>
mod webhooks;
// <<<end:billing/stripe-webhooks@mods>>>
// <<<begin:admin/feature-flags@mods>>>
mod flags;
// <<<end:admin/feature-flags@mods>>>
// <<<begin:admin/jobs@mods>>>
mod admin_jobs;
// <<<end:admin/jobs@mods>>>
// <<<begin:orgs@mods>>>
mod orgs;
// <<<end:orgs@mods>>>
// <<<begin:admin/orgs@mods>>>
mod admin_orgs;
// <<<end:admin/orgs@mods>>>
// <<<begin:admin/webhooks@mods>>>
mod admin_webhooks;
// <<<end:admin/webhooks@mods>>>
// <<<begin:users@mods>>>
mod profile;
// <<<end:users@mods>>>

/// Any error, boxed: the cause carried by [`ApiError::Internal`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What is wrong with each field (or dependency), by name.
pub type FieldErrors = BTreeMap<String, String>;

/// An error a handler returns; it becomes a JSON error response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request is refused for a reason clients tell apart by its own `code`, such as
    /// `signature_expired` (400).
    #[error("{message}")]
    Rejected { code: &'static str, message: String },
    /// Some inputs are invalid, each explained in the map (422).
    #[error("the request has invalid fields")]
    Validation(FieldErrors),
    /// No valid credentials came with the request (401).
    #[error("authentication is required")]
    Unauthorized,
    /// A sign-in failed. One answer for an unknown account, a wrong password and a disabled
    /// account, so that the response does not tell which accounts exist (401).
    #[error("the email or password is incorrect")]
    InvalidCredentials,
    /// The caller is known but not allowed to do this (403).
    #[error("permission denied")]
    Forbidden,
    /// Refused for a reason clients tell apart by its own `code`, such as
    /// `staff_token_required` for a genuine credential issued for another use (403).
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    /// The named resource does not exist, e.g. `NotFound("user")` (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state, e.g. a duplicate email (409).
    #[error("{0}")]
    Conflict(String),
    /// The request body is larger than the configured limit (413).
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The request took longer than the configured timeout (408).
    #[error("the request took too long")]
    Timeout,
    /// The client sent too many requests; it may retry after the given number of seconds (429).
    #[error("too many requests; retry after {0} s")]
    TooManyRequests(u64),
    /// A dependency the service needs is down, each named in the map (503).
    #[error("the service is not ready")]
    Unavailable(FieldErrors),
    /// The service has more of this work than it can queue; it may retry after the given number
    /// of seconds (503).
    #[error("the service is busy; retry after {0} s")]
    Overloaded(u64),
    /// Anything else: a bug or an infrastructure failure (500). The cause is logged, not sent.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    /// An internal error caused by `error`.
    pub fn internal(error: impl Into<BoxError>) -> Self {
        Self::Internal(error.into())
    }

    /// A validation error (422) about one field of the input.
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::from([(field.to_owned(), problem.into())]))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Rejected { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::Denied { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable `code` of the response body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Rejected { code, .. } => code,
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden => "forbidden",
            Self::Denied { code, .. } => code,
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Timeout => "timeout",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::Unavailable(_) => "unavailable",
            Self::Overloaded(_) => "overloaded",
            Self::Internal(_) => "internal",
        }
    }
}

/// The body of every error response; also its schema in the services' OpenAPI documents.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "validation_failed",
    "message": "the request has invalid fields", "fields": {"email": "is not an email address"}}}))]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong: `code` is stable and meant for programs, `message` is meant for people.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `bad_request`, `validation_failed`, `unauthorized`, `invalid_credentials`, `forbidden`,
    /// `not_found`, `conflict`, `payload_too_large`, `timeout`, `too_many_requests`,
    /// `unavailable`, `overloaded`, `internal`, or a code of the operation's own named in its
    /// description (such as `staff_token_required` or `signature_expired`).
    #[schema(example = "not_found")]
    code: &'static str,
    message: String,
    /// What is wrong with each field (422) or dependency (503), by name; absent otherwise.
    #[serde(skip_serializing_if = "FieldErrors::is_empty")]
    #[schema(value_type = BTreeMap<String, String>)]
    fields: FieldErrors,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let message = self.to_string();
        let retry_after = match self {
            Self::TooManyRequests(secs) | Self::Overloaded(secs) => {
                Some([(header::RETRY_AFTER, secs.to_string())])
            }
            _ => None,
        };
        let fields = match self {
            Self::Validation(fields) | Self::Unavailable(fields) => fields,
            Self::Internal(cause) => {
                tracing::error!(error = %chain(&*cause), "internal error");
                FieldErrors::new()
            }
            _ => FieldErrors::new(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                fields,
            },
        };
        (status, retry_after, Json(body)).into_response()
    }
}

/// `error` followed by each of its causes: "outer: inner: root".
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(error), |error| error.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn validation_errors_name_their_fields() {
        let fields = FieldErrors::from([("email".into(), "is not an email address".into())]);

        let (status, body) = body_of(ApiError::Validation(fields)).await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "code": "validation_failed",
                "message": "the request has invalid fields",
                "fields": {"email": "is not an email address"},
            }})
        );
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let (status, body) = body_of(ApiError::internal("disk on fire")).await;

        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "internal", "message": "internal error"}})
        );
    }
}
