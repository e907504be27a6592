//! How the outcomes of flag operations ([`FlagsError`]) are answered over HTTP.

use super::ApiError;
use crate::flags::FlagsError;

impl From<FlagsError> for ApiError {
    fn from(error: FlagsError) -> Self {
        match error {
            FlagsError::Invalid(fields) => Self::Validation(fields),
            FlagsError::KeyTaken(_) => Self::Conflict(error.to_string()),
            FlagsError::UnknownFlag => Self::NotFound("flag"),
            FlagsError::UnknownUser => Self::NotFound("user"),
            FlagsError::UnknownOverride => Self::NotFound("override"),
            FlagsError::Database(error) => error.into(),
            FlagsError::Internal(error) => Self::Internal(error),
        }
    }
}
