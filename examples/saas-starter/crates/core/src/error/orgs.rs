//! How the outcomes of organization operations ([`OrgError`]) are answered over HTTP.
//!
//! Whatever is not the caller's to see (another organization, a member or an invitation of
//! another organization, an organization they were removed from) is a plain 404 without data:
//! answering 403 would confirm that it exists.

use super::ApiError;
use crate::orgs::OrgError;

impl From<OrgError> for ApiError {
    fn from(error: OrgError) -> Self {
        match error {
            OrgError::NotFound(what) => Self::NotFound(what),
            OrgError::Forbidden(action) => Self::Denied {
                code: "role_forbids",
                message: format!(
                    "your role in this organization does not allow {}",
                    action.describe()
                ),
            },
            OrgError::LastOwner => Self::Conflict(
                "an organization keeps at least one owner: make another member an owner first \
                 (or delete the organization)"
                    .into(),
            ),
            OrgError::SlugTaken => Self::Conflict("another organization has this slug".into()),
            OrgError::AlreadyMember => {
                Self::Conflict("this address is a member of the organization already".into())
            }
            OrgError::Invalid(fields) => Self::Validation(fields),
            OrgError::InvalidInvitation => Self::Rejected {
                code: "invalid_invitation",
                message: "the invitation is not valid: it was accepted, revoked or replaced by a \
                          newer one, or has expired; ask for a new one"
                    .into(),
            },
            OrgError::InvitationForAnotherAddress => Self::Denied {
                code: "invitation_for_another_address",
                message: "the invitation was sent to another address than this account's: sign \
                          in with that address's account (or register with it)"
                    .into(),
            },
            OrgError::EmailUnverified => Self::Denied {
                code: "email_unverified",
                message: "this account's email address is not verified yet: open the link sent \
                          to it, then accept the invitation"
                    .into(),
            },
            OrgError::Database(error) => error.into(),
            OrgError::Internal(error) => Self::Internal(error),
        }
    }
}
