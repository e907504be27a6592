//! How the outcomes of back-office replays ([`ReplayError`]) are answered over HTTP: as the
//! back office's and the webhooks store's own errors are.

use super::ApiError;
use crate::admin_webhooks::ReplayError;

impl From<ReplayError> for ApiError {
    fn from(error: ReplayError) -> Self {
        match error {
            ReplayError::Admin(error) => error.into(),
            ReplayError::Webhook(error) => error.into(),
        }
    }
}
