//! The HTTP side of [`crate::auth`]: [`CurrentUser`] as an axum extractor. A handler taking it
//! runs only for a request authenticated by its Bearer token or its session cookie; any other
//! is answered 401 (403 when a cookie fails the CSRF check). It records the user's id on the
//! request's span.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use crate::auth::{Auth, CurrentUser};
use crate::error::ApiError;

impl<S> FromRequestParts<S> for CurrentUser
where
    Auth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let current = Auth::from_ref(state)
            .authenticate(&parts.method, &parts.headers)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        // On the request's span (`http::with_middleware` declares the field), so that every log
        // line of the request from here on, and its response line, say whose it is.
        tracing::Span::current().record("user_id", tracing::field::display(&current.user.id));
        Ok(current)
    }
}
