//! How refused job requests of the back office ([`AdminJobsError`]) are answered over HTTP.

use super::ApiError;
use crate::admin_jobs::AdminJobsError;

impl From<AdminJobsError> for ApiError {
    fn from(error: AdminJobsError) -> Self {
        match error {
            AdminJobsError::Admin(error) => error.into(),
            AdminJobsError::Invalid(fields) => ApiError::Validation(fields),
            AdminJobsError::UnknownJob => ApiError::NotFound("job"),
            AdminJobsError::NotDead | AdminJobsError::DuplicateKey => {
                ApiError::Conflict(error.to_string())
            }
            AdminJobsError::Database(error) => error.into(),
        }
    }
}
