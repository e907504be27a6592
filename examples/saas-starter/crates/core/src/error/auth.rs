//! How the outcomes of accounts and authentication ([`AuthError`]) are answered over HTTP.

use super::ApiError;
use crate::auth::AuthError;

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Invalid(fields) => Self::Validation(fields),
            AuthError::EmailTaken => {
                Self::Conflict("an account with this email already exists".into())
            }
            AuthError::InvalidCredentials => Self::InvalidCredentials,
            AuthError::RefreshRefused | AuthError::AccountGone => Self::Unauthorized,
            AuthError::UnknownUser => Self::NotFound("user"),
            AuthError::UnknownSession => Self::NotFound("session"),
            AuthError::Impersonating | AuthError::CrossSiteRequest => Self::Forbidden,
            AuthError::StaffTokenRequired => Self::Denied {
                code: "staff_token_required",
                message: "this API accepts staff tokens only, not the api's access tokens: get \
                          one from POST /api/admin/auth/token on the admin service"
                    .into(),
            },
            AuthError::Busy(retry_after) => Self::Overloaded(retry_after),
            AuthError::Database(error) => error.into(),
            AuthError::Internal(error) => Self::Internal(error),
        }
    }
}
