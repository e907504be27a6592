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
            AuthError::EmailUnverified => Self::Denied {
                code: "email_unverified",
                message: "this account's email address is not verified yet: open the link sent \
                          to it (a password reset link verifies it too)"
                    .into(),
            },
            AuthError::AlreadyVerified => {
                Self::Conflict("the email address is verified already".into())
            }
            AuthError::InvalidToken => Self::Rejected {
                code: "invalid_token",
                message: "the link is not valid: it was used already, has expired, was replaced \
                          by a newer one, or is for something else; ask for a new one"
                    .into(),
            },
            AuthError::Busy(retry_after) => Self::Overloaded(retry_after),
            AuthError::Database(error) => error.into(),
            AuthError::Internal(error) => Self::Internal(error),
        }
    }
}
