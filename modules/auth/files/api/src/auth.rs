//! The `/api/auth/*` endpoints and the JWKS: the HTTP side of `saaskit_core::auth`, which holds the
//! rules. Each handler reads its input, calls `Auth`, and shapes the response.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saaskit_core::ApiError;
use saaskit_core::auth::session::SessionInfo;
use saaskit_core::auth::token::Jwks;
use saaskit_core::auth::{Auth, CurrentUser, Registered, SignedIn, Tokens, User};
use saaskit_core::http::openapi::ErrorBody;
use saaskit_core::http::{JsonBody, Path};

use crate::state::AppState;

/// The routes, each with its OpenAPI operation (`routes!` takes a handler's `#[utoipa::path]`).
pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(change_password))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(change_email))
        .routes(routes!(confirm_email_change))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(jwks))
        .with_state(state)
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple",
    "full_name": "Ada Lovelace"}))]
struct Registration {
    email: String,
    password: String,
    full_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
struct Login {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"refresh_token": "rt_0f1e2d3c4b5a69788796a5b4c3d2e1f0"}))]
struct Refresh {
    refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"current_password": "correct horse battery staple",
    "new_password": "tr0ub4dor and three more words"}))]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com"}))]
struct Forgot {
    email: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "the token of the emailed link",
    "new_password": "tr0ub4dor and three more words"}))]
struct Reset {
    token: String,
    new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"new_email": "ada@lovelace.example", "current_password": "correct horse battery staple"}))]
struct EmailChange {
    new_email: String,
    current_password: String,
}

/// The token of an account email's link.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "the token of the emailed link"}))]
struct LinkToken {
    token: String,
}

/// The answer of a request whose outcome arrives by email: the same whatever the address.
#[derive(Serialize, ToSchema)]
struct CheckEmail {
    #[schema(example = "check_email")]
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
#[derive(Serialize, ToSchema)]
struct SignedInBody {
    user: User,
    #[serde(flatten)]
    tokens: Tokens,
}

#[derive(Serialize, ToSchema)]
struct SessionList {
    sessions: Vec<SessionInfo>,
}

/// Responses that carry credentials must not be kept by any cache.
const NO_STORE: (header::HeaderName, HeaderValue) =
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth",
    request_body = Registration,
    responses(
        (status = 201, description = "Signed in: the user, the tokens, and the session cookie", body = SignedInBody),
        (status = 202, description = "`AUTH_REQUIRE_VERIFIED_EMAIL` is on: the address got an email", body = CheckEmail),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 409, description = "`conflict`: an account has this email", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "`overloaded`: too many passwords are being hashed; retry after `Retry-After` seconds", body = ErrorBody),
    ),
)]
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

/// Signs in with an email and a password.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body = Login,
    responses(
        (status = 200, description = "Signed in: the user, the tokens, and the session cookie", body = SignedInBody),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown email, wrong password or disabled account alike", body = ErrorBody),
        (status = 403, description = "`email_unverified`: the address must be verified first (`AUTH_REQUIRE_VERIFIED_EMAIL`)", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "`overloaded`: too many passwords are being hashed; retry after `Retry-After` seconds", body = ErrorBody),
    ),
)]
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

/// Trades a refresh token for new tokens (the old one is spent).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth",
    request_body = Refresh,
    responses(
        (status = 200, description = "New access and refresh tokens", body = Tokens),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the refresh token is unknown, spent or expired", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
    ),
)]
async fn refresh(
    State(auth): State<Auth>,
    JsonBody(body): JsonBody<Refresh>,
) -> Result<Response, ApiError> {
    let tokens = auth.refresh(&body.refresh_token).await?;
    Ok(([NO_STORE], Json(tokens)).into_response())
}

/// Always clears the cookie; ends the session when the request is authenticated.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    security((), ("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 403, description = "`forbidden`: a session cookie on a cross-site request, or during an impersonation", body = ErrorBody),
    ),
)]
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
#[derive(Serialize, ToSchema)]
struct Me {
    #[serde(flatten)]
    user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonated_by: Option<Impersonator>,
}

#[derive(Serialize, ToSchema)]
struct Impersonator {
    id: String,
    email: String,
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The user, with `impersonated_by` during an impersonation", body = Me),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
    ),
)]
async fn me(current: CurrentUser) -> Json<Me> {
    Json(Me {
        user: current.user,
        impersonated_by: current.impersonator.map(|actor| Impersonator {
            id: actor.sub,
            email: actor.email,
        }),
    })
}

/// The user's sessions in force.
#[utoipa::path(get, path = "/api/auth/sessions", tag = "auth",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The sessions, the current one marked", body = SessionList),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
    ),
)]
async fn sessions(
    State(auth): State<Auth>,
    current: CurrentUser,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = auth.sessions(&current).await?;
    Ok(Json(SessionList { sessions }))
}

/// Ends one of the user's sessions.
#[utoipa::path(delete, path = "/api/auth/sessions/{id}", tag = "auth",
    params(("id" = String, Path, description = "The session's id, from `GET /api/auth/sessions`")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "The session is ended"),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: a session cookie on a cross-site request, or during an impersonation", body = ErrorBody),
        (status = 404, description = "`not_found`: the user has no such session", body = ErrorBody),
    ),
)]
async fn revoke_session(
    State(auth): State<Auth>,
    current: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.revoke_session(&current, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the password; other sessions end.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth",
    request_body = PasswordChange,
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "`unauthorized` or `invalid_credentials`: the current password is wrong", body = ErrorBody),
        (status = 403, description = "`forbidden`: a session cookie on a cross-site request, or during an impersonation", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "`overloaded`: too many passwords are being hashed; retry after `Retry-After` seconds", body = ErrorBody),
    ),
)]
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
#[utoipa::path(post, path = "/api/auth/password/forgot", tag = "auth",
    request_body = Forgot,
    responses(
        (status = 202, description = "The same answer whether or not the address has an account", body = CheckEmail),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
    ),
)]
async fn forgot_password(
    State(auth): State<Auth>,
    JsonBody(body): JsonBody<Forgot>,
) -> Result<Response, ApiError> {
    auth.forgot_password(&body.email).await?;
    Ok(check_email())
}

/// Sets a new password with a reset link's token.
#[utoipa::path(post, path = "/api/auth/password/reset", tag = "auth",
    request_body = Reset,
    responses(
        (status = 204, description = "The password is set; every session ended"),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 400, description = "`invalid_token`: the token is unknown, spent, expired or replaced", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "`overloaded`: too many passwords are being hashed; retry after `Retry-After` seconds", body = ErrorBody),
    ),
)]
async fn reset_password(
    State(auth): State<Auth>,
    JsonBody(body): JsonBody<Reset>,
) -> Result<StatusCode, ApiError> {
    auth.reset_password(&body.token, body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Asks to change the address: a confirmation link goes to the new one.
#[utoipa::path(post, path = "/api/auth/email", tag = "auth",
    request_body = EmailChange,
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 202, description = "The confirmation link is on its way", body = CheckEmail),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "`unauthorized` or `invalid_credentials`: the current password is wrong", body = ErrorBody),
        (status = 403, description = "`forbidden`: a session cookie on a cross-site request, or during an impersonation", body = ErrorBody),
        (status = 409, description = "`conflict`: an account has this email", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
        (status = 503, description = "`overloaded`: too many passwords are being hashed; retry after `Retry-After` seconds", body = ErrorBody),
    ),
)]
async fn change_email(
    State(auth): State<Auth>,
    current: CurrentUser,
    JsonBody(body): JsonBody<EmailChange>,
) -> Result<Response, ApiError> {
    auth.change_email(&current, &body.new_email, body.current_password)
        .await?;
    Ok(check_email())
}

/// Confirms an address change with the link's token.
#[utoipa::path(post, path = "/api/auth/email/confirm", tag = "auth",
    request_body = LinkToken,
    responses(
        (status = 204, description = "The address is changed"),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 400, description = "`invalid_token`: the token is unknown, spent, expired or replaced", body = ErrorBody),
        (status = 409, description = "`conflict`: an account has this email now", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
    ),
)]
async fn confirm_email_change(
    State(auth): State<Auth>,
    JsonBody(body): JsonBody<LinkToken>,
) -> Result<StatusCode, ApiError> {
    auth.confirm_email_change(&body.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Verifies the address with the link's token.
#[utoipa::path(post, path = "/api/auth/email/verify", tag = "auth",
    request_body = LinkToken,
    responses(
        (status = 204, description = "The address is verified"),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 400, description = "`invalid_token`: the token is unknown, spent, expired or replaced", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
    ),
)]
async fn verify_email(
    State(auth): State<Auth>,
    JsonBody(body): JsonBody<LinkToken>,
) -> Result<StatusCode, ApiError> {
    auth.verify_email(&body.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends the verification link again.
#[utoipa::path(post, path = "/api/auth/email/verify/resend", tag = "auth",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 202, description = "The link is on its way", body = CheckEmail),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: a session cookie on a cross-site request, or during an impersonation", body = ErrorBody),
        (status = 429, description = "`too_many_requests`: retry after the `Retry-After` seconds", body = ErrorBody),
        (status = 409, description = "`conflict`: the address is verified already", body = ErrorBody),
    ),
)]
async fn resend_verification(
    State(auth): State<Auth>,
    current: CurrentUser,
) -> Result<Response, ApiError> {
    auth.resend_verification(&current).await?;
    Ok(check_email())
}

/// Public keys change only at a rotation, which keeps the old key published for at least an
/// access token's lifetime: five minutes of caching is safe.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses(
        (status = 200, description = "The key set", body = Jwks),
    ),
)]
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
