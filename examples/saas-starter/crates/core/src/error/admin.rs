//! How the outcomes of back-office operations ([`AdminError`]) are answered over HTTP.

use super::ApiError;
use crate::admin::AdminError;

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::NotStaff | AdminError::NotPermitted | AdminError::StaffAccount => {
                Self::Forbidden
            }
            AdminError::Invalid(fields) => Self::Validation(fields),
            AdminError::UnknownCustomer => Self::NotFound("customer"),
            AdminError::AccountDisabled => Self::Conflict("the account is disabled".into()),
            AdminError::UnknownImpersonation => Self::NotFound("impersonation"),
            AdminError::Auth(error) => error.into(),
            AdminError::Database(error) => error.into(),
        }
    }
}
