//! The `/api/auth/*` endpoints and the JWKS: the HTTP side of `saaskit_core::auth`, which holds the
//! rules. Each handler reads its input, calls `Auth`, and shapes the response.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use saaskit_core::ApiError;
use saaskit_core::auth::session::SessionInfo;
use saaskit_core::auth::{Auth, CurrentUser, Registered, SignedIn, Tokens, User};
use saaskit_core::http::JsonBody;

use crate::state::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/auth/sessions", get(sessions))
        .route("/api/auth/sessions/{id}", delete(revoke_session))
        .route("/api/auth/password", post(change_password))
        .route("/api/auth/password/forgot", post(forgot_password))
        .route("/api/auth/password/reset", post(reset_password))
        .route("/api/auth/email", post(change_email))
        .route("/api/auth/email/confirm", post(confirm_email_change))
        .route("/api/auth/email/verify", post(verify_email))
        .route("/api/auth/email/verify/resend", post(resend_verification))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
}

#[derive(Deserialize)]
struct Registration {
    email: String,
    password: String,
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct Refresh {
    refresh_token: String,
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize)]
struct Forgot {
    email: String,
}

#[derive(Deserialize)]
struct Reset {
    token: String,
    new_password: String,
}

#[derive(Deserialize)]
struct EmailChange {
    new_email: String,
    current_password: String,
}

/// The token of an account email's link.
#[derive(Deserialize)]
struct LinkToken {
    token: String,
}

/// The answer of a request whose outcome arrives by email: the same whatever the address.
#[derive(Serialize)]
struct CheckEmail {
    status: &'static str,
}

/// 202 `{"status": "check_email"}`.
fn check_email() -> Response {
    let body = CheckEmail {
        status: "check_email",
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// The body of a successful registration or login.
#[derive(Serialize)]
struct SignedInBody {
    user: User,
    #[serde(flatten)]
    tokens: Tokens,
}

#[derive(Serialize)]
struct SessionList {
    sessions: Vec<SessionInfo>,
}

/// Responses that carry credentials must not be kept by any cache.
const NO_STORE: (header::HeaderName, HeaderValue) =
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

async fn register(
    State(auth): State<Auth>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Registration>,
) -> Result<Response, ApiError> {
    let registration = auth
        .register(
            &body.email,
            body.password,
            body.full_name.as_deref(),
            user_agent(&headers),
        )
        .await?;
    Ok(match registration {
        Registered::SignedIn(signed_in) => signed_in_response(StatusCode::CREATED, signed_in),
        Registered::CheckEmail => check_email(),
    })
}

async fn login(
    State(auth): State<Auth>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let signed_in = auth
        .login(&body.email, body.password, user_agent(&headers))
        .await?;
    Ok(signed_in_response(StatusCode::OK, signed_in))
}

async fn refresh(
    State(auth): State<Auth>,
    JsonBody(body): JsonBody<Refresh>,
) -> Result<Response, ApiError> {
    let tokens = auth.refresh(&body.refresh_token).await?;
    Ok(([NO_STORE], Json(tokens)).into_response())
}

/// Always clears the cookie; ends the session when the request is authenticated.
async fn logout(
    State(auth): State<Auth>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(current) = auth.authenticate(&method, &headers).await? {
        auth.logout(&current).await?;
    }
    let clear = (header::SET_COOKIE, auth.clear_cookie());
    Ok((StatusCode::NO_CONTENT, [clear]).into_response())
}

/// The user, with `impersonated_by` (the staff member's id and email) when the token is an
/// impersonation's.
#[derive(Serialize)]
struct Me {
    #[serde(flatten)]
    user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonated_by: Option<Impersonator>,
}

#[derive(Serialize)]
struct Impersonator {
    id: String,
    email: String,
}

async fn me(current: CurrentUser) -> Json<Me> {
    Json(Me {
        user: current.user,
        impersonated_by: current.impersonator.map(|actor| Impersonator {
            id: actor.sub,
            email: actor.email,
        }),
    })
}

async fn sessions(
    State(auth): State<Auth>,
    current: CurrentUser,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = auth.sessions(&current).await?;
    Ok(Json(SessionList { sessions }))
}

async fn revoke_session(
    State(auth): State<Auth>,
    current: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.revoke_session(&current, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn change_password(
    State(auth): State<Auth>,
    current: CurrentUser,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    auth.change_password(&current, body.current_password, body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 202 whether or not the address has an account.
async fn forgot_password(
    State(auth): State<Auth>,
    JsonBody(body): JsonBody<Forgot>,
) -> Result<Response, ApiError> {
    auth.forgot_password(&body.email).await?;
    Ok(check_email())
}

async fn reset_password(
    State(auth): State<Auth>,
    JsonBody(body): JsonBody<Reset>,
) -> Result<StatusCode, ApiError> {
    auth.reset_password(&body.token, body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn change_email(
    State(auth): State<Auth>,
    current: CurrentUser,
    JsonBody(body): JsonBody<EmailChange>,
) -> Result<Response, ApiError> {
    auth.change_email(&current, &body.new_email, body.current_password)
        .await?;
    Ok(check_email())
}

async fn confirm_email_change(
    State(auth): State<Auth>,
    JsonBody(body): JsonBody<LinkToken>,
) -> Result<StatusCode, ApiError> {
    auth.confirm_email_change(&body.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn verify_email(
    State(auth): State<Auth>,
    JsonBody(body): JsonBody<LinkToken>,
) -> Result<StatusCode, ApiError> {
    auth.verify_email(&body.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resend_verification(
    State(auth): State<Auth>,
    current: CurrentUser,
) -> Result<Response, ApiError> {
    auth.resend_verification(&current).await?;
    Ok(check_email())
}

/// Public keys change only at a rotation, which keeps the old key published for at least an
/// access token's lifetime: five minutes of caching is safe.
async fn jwks(State(auth): State<Auth>) -> impl IntoResponse {
    let cache = (header::CACHE_CONTROL, "public, max-age=300");
    ([cache], Json(auth.jwks().clone()))
}

fn signed_in_response(status: StatusCode, signed_in: SignedIn) -> Response {
    let body = SignedInBody {
        user: signed_in.user,
        tokens: signed_in.tokens,
    };
    let headers = [NO_STORE, (header::SET_COOKIE, signed_in.cookie)];
    (status, headers, Json(body)).into_response()
}

/// The client's `User-Agent`, shortened, to tell sessions apart in the list.
fn user_agent(headers: &HeaderMap) -> Option<&str> {
    let agent = headers.get(header::USER_AGENT)?.to_str().ok()?;
    let end = agent
        .char_indices()
        .nth(256)
        .map_or(agent.len(), |(index, _)| index);
    Some(&agent[..end])
}
