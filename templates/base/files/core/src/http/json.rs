//! Request bodies in JSON, query strings and path parameters, with rejections in the service's
//! error format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Extracts a JSON request body like `axum::Json`, but a body that is missing, too large, not
/// JSON or not of the expected shape is answered with an [`ApiError`] JSON body instead of
/// axum's plain-text rejection, so that clients parse one error format everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection_error(&rejection)),
        }
    }
}

/// Extracts a query string like `axum::extract::Query`, but one that does not parse into `T` (a
/// `limit=abc`) is answered with an [`ApiError`] JSON body (400 `bad_request`) instead of axum's
/// plain-text rejection, as the OpenAPI document of every operation says.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(has_encoded_nul) {
            return Err(nul_error());
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// Extracts path parameters like `axum::extract::Path`, but a segment that does not parse into
/// `T` (`/jobs/abc` for a number, bytes that are not UTF-8) is answered with an [`ApiError`]
/// JSON body (400 `bad_request`) instead of axum's plain-text rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_encoded_nul(parts.uri.path()) {
            return Err(nul_error());
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// Whether a URI part carries a NUL character (`%00`): no text the services store may hold one
/// (PostgreSQL refuses it), so it is refused here, with the same answer on every database.
fn has_encoded_nul(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|window| window[0] == b'%' && window[1] == b'0' && window[2] == b'0')
}

fn nul_error() -> ApiError {
    ApiError::BadRequest("a parameter contains the NUL character (%00)".into())
}

fn rejection_error(rejection: &JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        // axum's text names what is wrong ("missing field `email` at line 1 column 2") without
        // echoing the body back.
        ApiError::BadRequest(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Login {
        email: String,
    }

    async fn extract(content_type: &str, body: &str) -> Result<JsonBody<Login>, ApiError> {
        let request = Request::post("/")
            .header("content-type", content_type)
            .body(Body::from(body.to_owned()))
            .unwrap();
        JsonBody::<Login>::from_request(request, &()).await
    }

    #[tokio::test]
    async fn reads_a_json_body() {
        let JsonBody(login) = extract("application/json", r#"{"email":"a@b.c"}"#)
            .await
            .unwrap();

        assert_eq!(login.email, "a@b.c");
    }

    #[tokio::test]
    async fn malformed_bodies_are_bad_requests_that_say_why() {
        let error = extract("application/json", "{}").await.unwrap_err();

        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(
            error.to_string().contains("missing field `email`"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn query_strings_of_the_wrong_type_are_bad_requests_in_json() {
        #[derive(Debug, Deserialize)]
        struct Page {
            limit: Option<i64>,
        }
        let mut parts = Request::get("/?limit=abc").body(()).unwrap().into_parts().0;

        let error = Query::<Page>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();

        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.code(), "bad_request");
        let mut parts = Request::get("/?limit=5").body(()).unwrap().into_parts().0;
        let Query(page) = Query::<Page>::from_request_parts(&mut parts, &())
            .await
            .unwrap();
        assert_eq!(page.limit, Some(5));
    }

    #[tokio::test]
    async fn nul_characters_in_parameters_are_bad_requests() {
        #[derive(Debug, Deserialize)]
        struct Search {
            #[allow(dead_code)]
            q: String,
        }
        let mut parts = Request::get("/?q=a%00b").body(()).unwrap().into_parts().0;
        let error = Query::<Search>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);

        assert!(has_encoded_nul("/api/sessions/a%00b"));
        assert!(!has_encoded_nul("/api/sessions/a%200b"));
    }

    #[tokio::test]
    async fn other_content_types_are_bad_requests() {
        let error = extract("text/plain", r#"{"email":"a@b.c"}"#)
            .await
            .unwrap_err();

        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }
}
