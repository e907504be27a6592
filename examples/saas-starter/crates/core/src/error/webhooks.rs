//! How the outcomes of webhook operations ([`WebhookError`]) are answered over HTTP.

use super::ApiError;
use crate::webhooks::WebhookError;

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::NotUtf8
            | WebhookError::InvalidEvent(_)
            | WebhookError::InvalidEventId => Self::BadRequest(error.to_string()),
            WebhookError::Invalid(fields) => Self::Validation(fields),
            WebhookError::UnknownEvent => Self::NotFound("event"),
            WebhookError::AlreadyQueued => Self::Conflict(error.to_string()),
            WebhookError::Database(error) => error.into(),
            WebhookError::Internal(error) => Self::Internal(error),
        }
    }
}
