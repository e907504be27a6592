//! How the outcomes of profile operations ([`ProfileError`]) are answered over HTTP.

use super::ApiError;
use crate::profile::ProfileError;

impl From<ProfileError> for ApiError {
    fn from(error: ProfileError) -> Self {
        match error {
            ProfileError::UnknownUser => Self::NotFound("user"),
            ProfileError::Database(error) => error.into(),
        }
    }
}
