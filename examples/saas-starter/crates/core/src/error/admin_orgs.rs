//! How the outcomes of back-office operations on organizations ([`AdminOrgError`]) are answered
//! over HTTP: as the back office's and the organizations' own errors are.

use super::ApiError;
use crate::admin_orgs::AdminOrgError;

impl From<AdminOrgError> for ApiError {
    fn from(error: AdminOrgError) -> Self {
        match error {
            AdminOrgError::Admin(error) => error.into(),
            AdminOrgError::Org(error) => error.into(),
        }
    }
}
