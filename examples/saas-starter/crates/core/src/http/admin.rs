//! The HTTP side of [`crate::admin`]: [`Staff`] as an axum extractor, the [`CurrentUser`] of the
//! request (401 without valid credentials) if they are staff acting as themselves (403 for
//! customers and impersonation tokens), with the address the request comes from.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use crate::admin::Staff;
use crate::auth::{Auth, CurrentUser};
use crate::error::ApiError;
use crate::http::client_ip;

impl<S> FromRequestParts<S> for Staff
where
    Auth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let current = CurrentUser::from_request_parts(parts, state).await?;
        Ok(Staff::from_current(current, client_ip(parts))?)
    }
}
