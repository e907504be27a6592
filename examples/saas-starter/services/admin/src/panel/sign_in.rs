//! Signing in to the panel and out of it.
//!
//! Staff sign in with the email and password of their account; the panel keeps its own session
//! cookie (`__Host-admin-session`, without `Max-Age`) for a staff session: the staff idle and
//! absolute timeouts (`AUTH_STAFF_SESSION_*`, shorter than customers'), a new session each time,
//! revocable. The sign-in form itself is protected against login CSRF by a
//! double-submit token: a random value in a short-lived cookie and in the form, which another
//! site can neither read nor set. Attempts are rate-limited like the api's login (module
//! `security/rate-limiting`): per IP, per email and IP, and per email from every address except
//! those a sign-in succeeded from (this form's redirect), so that a stranger failing on purpose
//! cannot lock a staff member out. Signing in and out are audited (`staff.sign_in`,
//! `staff.sign_out`); failed attempts are logged, not audited.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use saas_starter_core::ApiError;
use saas_starter_core::admin::audit::{self, Actor};
use saas_starter_core::auth::{Auth, AuthError, cookie_value, csrf, now, session};
use saas_starter_core::db::Database;
use saas_starter_core::http::client_ip;

use super::{NoFields, PanelError, PanelForm, Viewer, html};
use crate::state::AppState;

pub const SIGN_IN_PATH: &str = "/admin/sign-in";

/// The login-CSRF cookie's name without the `__Host-` prefix.
const FORM_COOKIE: &str = "admin-sign-in";

/// How long a sign-in form may be left open before it must be reloaded, in seconds.
const FORM_MAX_AGE_SECS: i64 = 3_600;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(SIGN_IN_PATH, get(show).post(sign_in))
        .route("/admin/sign-out", post(sign_out))
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn show(
    State(auth): State<Auth>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let signed_in = auth
        .authenticate(&Method::GET, &headers)
        .await
        .ok()
        .flatten()
        .is_some_and(|current| current.user.role.is_staff() && current.impersonator.is_none());
    if signed_in {
        return Redirect::to(safe_next(query.next.as_deref())).into_response();
    }
    form(&auth, StatusCode::OK, query.next.as_deref(), None)
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    csrf: &'a str,
    next: &'a str,
    error: Option<&'a str>,
}

/// The sign-in page with `status`, a fresh login-CSRF token in its form and its cookie, and
/// `error` above the form. `next` is where to go once signed in.
pub fn form(auth: &Auth, status: StatusCode, next: Option<&str>, error: Option<&str>) -> Response {
    let token = match session::new_token() {
        Ok(token) => token,
        Err(error) => return PanelError(ApiError::Internal(error)).into_response(),
    };
    let page = SignInPage {
        csrf: &token,
        next: safe_next(next),
        error,
    };
    let cookie = form_cookie(auth, &token, FORM_MAX_AGE_SECS);
    let mut response = (status, html(&page)).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

async fn sign_in(
    State(db): State<Database>,
    State(auth): State<Auth>,
    parts: Parts,
    axum::Form(credentials): axum::Form<Credentials>,
) -> Response {
    let headers = &parts.headers;
    let next = credentials.next.as_deref();
    let expected = cookie_value(headers, &form_cookie_name(&auth));
    let token_matches =
        expected.is_some_and(|expected| csrf::same_token(expected, &credentials.csrf));
    if !token_matches {
        let message = "The sign-in form expired. Please sign in again.";
        return form(&auth, StatusCode::FORBIDDEN, next, Some(message));
    }
    let user = match auth
        .check_credentials(&credentials.email, credentials.password)
        .await
    {
        Ok(user) if user.role.is_staff() => user,
        Ok(user) => {
            tracing::info!(user = %user.id, "panel sign-in refused: not staff");
            return refused(&auth, next);
        }
        Err(AuthError::InvalidCredentials) => return refused(&auth, next),
        Err(error) => return PanelError::from(error).into_response(),
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let (session_id, cookie) = match auth.start_session(&user, user_agent).await {
        Ok(started) => started,
        Err(error) => return PanelError::from(error).into_response(),
    };
    let actor = Actor {
        user_id: &user.id,
        email: &user.email,
        client_ip: client_ip(&parts),
    };
    let audited = audit::record_session(&db, actor, "staff.sign_in", &session_id, now());
    if let Err(error) = audited.await {
        return PanelError::from(error).into_response();
    }
    tracing::info!(user = %user.id, session = %session_id, "signed in to the panel");
    let mut response = Redirect::to(safe_next(next)).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, cookie);
    headers.append(header::SET_COOKIE, form_cookie(&auth, "", 0));
    response
}

/// One answer for an unknown email, a wrong password, a disabled account and an account
/// without access to the panel, so that the form does not tell which accounts exist.
fn refused(auth: &Auth, next: Option<&str>) -> Response {
    let message = "The email or password is incorrect, or the account has no access to the panel.";
    form(auth, StatusCode::UNAUTHORIZED, next, Some(message))
}

async fn sign_out(
    State(db): State<Database>,
    State(auth): State<Auth>,
    viewer: Viewer,
    PanelForm(NoFields {}): PanelForm<NoFields>,
) -> Result<Response, PanelError> {
    let staff = &viewer.staff;
    session::revoke(&db, &staff.user.id, &staff.session_id, now()).await?;
    audit::record_session(
        &db,
        staff.actor(),
        "staff.sign_out",
        &staff.session_id,
        now(),
    )
    .await?;
    tracing::info!(user = %staff.user.id, "signed out of the panel");
    let mut response = Redirect::to(SIGN_IN_PATH).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, auth.clear_cookie());
    Ok(response)
}

/// Where to go after signing in: a path of the panel, never another site (`//evil.example`
/// and `/\evil.example` are protocol-relative URLs to browsers).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with("/admin")
                && !next.starts_with(SIGN_IN_PATH)
                && !next.contains(['\\', '\r', '\n']) =>
        {
            next
        }
        _ => "/admin",
    }
}

fn form_cookie_name(auth: &Auth) -> String {
    if auth.cookie_secure() {
        format!("__Host-{FORM_COOKIE}")
    } else {
        FORM_COOKIE.to_owned()
    }
}

/// The login-CSRF cookie. `SameSite=Strict`: it is only ever needed by the panel's own form.
fn form_cookie(auth: &Auth, token: &str, max_age: i64) -> HeaderValue {
    let secure = if auth.cookie_secure() { "; Secure" } else { "" };
    let cookie = format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}",
        form_cookie_name(auth)
    );
    HeaderValue::try_from(cookie).expect("cookie names and base64url tokens are header-safe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_panel() {
        assert_eq!(
            safe_next(Some("/admin/customers?q=ada")),
            "/admin/customers?q=ada"
        );
        assert_eq!(safe_next(Some("//evil.example/admin")), "/admin");
        assert_eq!(safe_next(Some("/admin\\@evil.example")), "/admin");
        assert_eq!(safe_next(Some("https://evil.example/admin")), "/admin");
        assert_eq!(safe_next(Some("/admin/sign-in")), "/admin");
        assert_eq!(safe_next(None), "/admin");
    }
}
