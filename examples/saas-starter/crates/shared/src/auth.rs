//! Accounts and authentication: registration, sign-in, access and refresh tokens, sessions.
//!
//! A request is authenticated either by a Bearer access token (for API clients and other
//! services) or by the session cookie (for browsers); [`CurrentUser`] accepts both. Each
//! submodule explains its security choices:
//!
//! - [`accounts`]: the `users` table and the email rules;
//! - [`password`]: the password policy and argon2id hashing off the async runtime;
//! - [`token`]: EdDSA access tokens, the key set and its JWKS;
//! - [`session`]: server-side sessions and their refresh tokens;
//! - [`csrf`]: the check cookie-authenticated requests must pass.
//!
//! The endpoints are in the api's `src/auth.rs`. To rotate the signing key, run
//! `saaskit keys rotate` in the workspace, deploy, wait one access-token lifetime, then
//! `saaskit keys remove <old kid>` and deploy again (`saaskit keys --help`; saaskit's
//! `docs/auth.md` has the whole procedure).

pub mod accounts;
pub mod csrf;
pub mod password;
pub mod session;
pub mod token;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use serde::Serialize;

pub use accounts::{Role, User};
use password::{Passwords, Verified};
use session::{Exchange, SessionInfo, Timeouts};
use token::{Claims, Expected, Jwks, KeySet};

use crate::config::Env;
use crate::db::Database;
use crate::error::{ApiError, FieldErrors};
use crate::http::HttpConfig;

/// The longest `full_name` accepted, in characters.
pub const MAX_FULL_NAME_CHARS: usize = 200;

/// The authentication settings, read from `AUTH_*` keys. Not `Debug`: it holds the signing key.
pub struct AuthConfig {
    /// `None` only when the keys are invalid, which [`Env::finish`] reports before it is used.
    keys: Option<KeySet>,
    issuer: String,
    audience: String,
    access_token_ttl: i64,
    timeouts: Timeouts,
    cookie_secure: bool,
}

impl AuthConfig {
    pub fn from_env(env: &mut Env) -> Self {
        let signing_key: Option<String> = env.required("AUTH_SIGNING_KEY");
        let previous_keys: String = env.optional("AUTH_PREVIOUS_KEYS", String::new());
        let keys = signing_key.and_then(|signing_key| {
            KeySet::parse(&signing_key, &previous_keys)
                .map_err(|error| {
                    let key = match error {
                        token::KeyError::SigningKey => "AUTH_SIGNING_KEY",
                        token::KeyError::PreviousKey(_) => "AUTH_PREVIOUS_KEYS",
                    };
                    env.record(key, error.to_string());
                })
                .ok()
        });
        let issuer = env.required("AUTH_ISSUER").unwrap_or_default();
        let audience = env.required("AUTH_AUDIENCE").unwrap_or_default();
        let mut positive = |key: &str, default: i64| {
            let value = env.optional(key, default);
            if value <= 0 {
                env.record(key, "must be a positive number of seconds");
            }
            value
        };
        let access_token_ttl = positive("AUTH_ACCESS_TOKEN_TTL_SECS", 15 * 60);
        let timeouts = Timeouts {
            idle: positive("AUTH_SESSION_IDLE_TIMEOUT_SECS", 7 * 24 * 3600),
            absolute: positive("AUTH_SESSION_ABSOLUTE_TIMEOUT_SECS", 30 * 24 * 3600),
        };
        Self {
            keys,
            issuer,
            audience,
            access_token_ttl,
            timeouts,
            cookie_secure: env.optional("AUTH_COOKIE_SECURE", true),
        }
    }

    /// The cookie name: with `Secure`, the `__Host-` prefix makes browsers refuse the cookie
    /// unless it is also host-only with `Path=/`, so that no subdomain can set or shadow it.
    fn cookie_name(&self) -> &'static str {
        if self.cookie_secure {
            "__Host-session"
        } else {
            "session"
        }
    }
}

/// Authentication, shared by the handlers of every route that needs it. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    config: AuthConfig,
    keys: KeySet,
    jwks: Jwks,
    passwords: Passwords,
    trusted_origins: Vec<HeaderValue>,
}

/// The access and refresh tokens a sign-in or a refresh returns.
#[derive(Debug, Clone, Serialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
}

/// The outcome of a registration or a login: the user, their tokens, and the session cookie.
pub struct SignedIn {
    pub user: User,
    pub tokens: Tokens,
    pub cookie: HeaderValue,
}

/// The user a request is authenticated as, and the session it belongs to. As an extractor, it
/// answers 401 when the request carries no valid credentials.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub session_id: String,
}

impl Auth {
    /// Prepares authentication. `http` gives the origins the CSRF check trusts (the CORS ones).
    pub fn new(db: Database, config: AuthConfig, http: &HttpConfig) -> Result<Self, SetupError> {
        let mut config = config;
        let keys = config.keys.take().ok_or(SetupError::InvalidConfig)?;
        let jwks = keys.jwks();
        tracing::info!(
            kid = keys.signing_kid(),
            "access tokens are signed with this key"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                config,
                keys,
                jwks,
                passwords: Passwords::new()?,
                trusted_origins: http.allowed_origins.clone(),
            }),
        })
    }

    /// The database accounts live in, for the modules that extend them.
    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// The public keys, for `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> &Jwks {
        &self.inner.jwks
    }

    /// Creates an account and signs it in.
    pub async fn register(
        &self,
        email: &str,
        password: String,
        full_name: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<SignedIn, ApiError> {
        let db = &self.inner.db;
        let email = accounts::normalize_email(email);
        let full_name = full_name.map(str::trim).filter(|name| !name.is_empty());
        let mut fields = FieldErrors::new();
        if !accounts::is_valid_email(&email) {
            fields.insert("email".into(), "is not a valid email address".into());
        }
        if let Some(problem) = password::policy_violation(&password) {
            fields.insert("password".into(), problem);
        }
        if let Some(problem) = full_name.and_then(full_name_violation) {
            fields.insert("full_name".into(), problem);
        }
        if !fields.is_empty() {
            return Err(ApiError::Validation(fields));
        }
        // Checked before hashing to spare the work; the unique index settles races.
        if accounts::find_by_email(db, &email).await?.is_some() {
            return Err(email_taken());
        }
        let password_hash = self.inner.passwords.hash(password).await?;
        let user = accounts::insert(db, &email, &password_hash, full_name, now())
            .await
            .map_err(|error| match &error {
                sqlx::Error::Database(db_error) if db_error.is_unique_violation() => email_taken(),
                _ => ApiError::from(error),
            })?;
        tracing::info!(user = %user.id, "account registered");
        self.sign_in(user, user_agent).await
    }

    /// Signs in with an email and password. Every failure is the same
    /// [`ApiError::InvalidCredentials`] after the same amount of work.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        user_agent: Option<&str>,
    ) -> Result<SignedIn, ApiError> {
        let db = &self.inner.db;
        let account = accounts::find_by_email(db, &accounts::normalize_email(email)).await?;
        let stored = account
            .as_ref()
            .map(|account| account.password_hash.clone());
        let verified = self.inner.passwords.verify(password, stored).await?;
        let (Verified::Match { rehash }, Some(account)) = (verified, account) else {
            return Err(ApiError::InvalidCredentials);
        };
        if account.disabled {
            return Err(ApiError::InvalidCredentials);
        }
        if let Some(new_hash) = rehash {
            accounts::set_password_hash(db, &account.user.id, &new_hash, now()).await?;
            tracing::info!(user = %account.user.id, "password hash upgraded");
        }
        self.sign_in(account.user, user_agent).await
    }

    /// Exchanges a refresh token for new tokens. A token presented twice ends its session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ApiError> {
        let db = &self.inner.db;
        let now = now();
        let exchange =
            session::exchange_refresh_token(db, refresh_token, now, self.inner.config.timeouts)
                .await?;
        match exchange {
            Exchange::Accepted(active) => {
                self.tokens(&active.user.id, &active.session_id, now).await
            }
            Exchange::Reused | Exchange::Refused => Err(ApiError::Unauthorized),
        }
    }

    /// Ends the session of `current`, which revokes its refresh tokens too.
    pub async fn logout(&self, current: &CurrentUser) -> Result<(), ApiError> {
        self.revoke_session(current, &current.session_id).await
    }

    /// The sessions of `current`'s user that are in force.
    pub async fn sessions(&self, current: &CurrentUser) -> Result<Vec<SessionInfo>, ApiError> {
        let config = &self.inner.config;
        let sessions = session::list(
            &self.inner.db,
            &current.user.id,
            &current.session_id,
            now(),
            config.timeouts,
        )
        .await?;
        Ok(sessions)
    }

    /// Ends one of `current`'s user's sessions; 404 when it has no such session in force.
    pub async fn revoke_session(
        &self,
        current: &CurrentUser,
        session_id: &str,
    ) -> Result<(), ApiError> {
        let revoked = session::revoke(&self.inner.db, &current.user.id, session_id, now()).await?;
        if revoked {
            Ok(())
        } else {
            Err(ApiError::NotFound("session"))
        }
    }

    /// Changes the password of `current`'s user and ends every other session.
    pub async fn change_password(
        &self,
        current: &CurrentUser,
        current_password: String,
        new_password: String,
    ) -> Result<(), ApiError> {
        let db = &self.inner.db;
        let account = accounts::find_by_id(db, &current.user.id)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let mut fields = FieldErrors::new();
        let verified = self
            .inner
            .passwords
            .verify(current_password, Some(account.password_hash))
            .await?;
        if verified == Verified::Mismatch {
            fields.insert("current_password".into(), "is incorrect".into());
        }
        if let Some(problem) = password::policy_violation(&new_password) {
            fields.insert("new_password".into(), problem);
        }
        if !fields.is_empty() {
            return Err(ApiError::Validation(fields));
        }
        let new_hash = self.inner.passwords.hash(new_password).await?;
        let now = now();
        accounts::set_password_hash(db, &current.user.id, &new_hash, now).await?;
        session::revoke_others(db, &current.user.id, &current.session_id, now).await?;
        tracing::info!(user = %current.user.id, "password changed; other sessions ended");
        Ok(())
    }

    /// The user the request is authenticated as: by its Bearer token if it has one, else by its
    /// session cookie (which must pass the CSRF check for unsafe methods). `None` when it carries
    /// neither or they are not valid.
    pub async fn authenticate(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<CurrentUser>, ApiError> {
        let inner = &*self.inner;
        let now = now();
        if let Some(token) = bearer_token(headers) {
            let claims = match inner.keys.verify(token, &self.expected(), now) {
                Ok(claims) => claims,
                Err(reason) => {
                    tracing::debug!(%reason, "access token refused");
                    return Ok(None);
                }
            };
            let active =
                session::find_by_id(&inner.db, &claims.sid, now, inner.config.timeouts).await?;
            return Ok(active
                .filter(|active| active.user.id == claims.sub)
                .map(|active| CurrentUser {
                    user: active.user,
                    session_id: active.session_id,
                }));
        }
        let Some(token) = cookie_value(headers, inner.config.cookie_name()) else {
            return Ok(None);
        };
        if !csrf::allows(method, headers, &inner.trusted_origins) {
            return Err(ApiError::Forbidden);
        }
        let active = session::find_by_token(&inner.db, token, now, inner.config.timeouts).await?;
        Ok(active.map(|active| CurrentUser {
            user: active.user,
            session_id: active.session_id,
        }))
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        self.cookie("", 0)
    }

    async fn sign_in(&self, user: User, user_agent: Option<&str>) -> Result<SignedIn, ApiError> {
        let config = &self.inner.config;
        let now = now();
        let (session_id, cookie_token) =
            session::start(&self.inner.db, &user.id, user_agent, now, config.timeouts)
                .await
                .map_err(ApiError::Internal)?;
        let tokens = self.tokens(&user.id, &session_id, now).await?;
        Ok(SignedIn {
            user,
            tokens,
            cookie: self.cookie(&cookie_token, config.timeouts.absolute),
        })
    }

    /// A new access token and a new refresh token in `session_id`.
    async fn tokens(&self, user_id: &str, session_id: &str, now: i64) -> Result<Tokens, ApiError> {
        let ttl = self.inner.config.access_token_ttl;
        let claims = Claims::access(&self.expected(), user_id, session_id, now, ttl);
        let refresh_token = session::issue_refresh_token(&self.inner.db, session_id, now)
            .await
            .map_err(ApiError::Internal)?;
        Ok(Tokens {
            access_token: self.inner.keys.sign(&claims),
            token_type: "bearer",
            expires_in: ttl,
            refresh_token,
        })
    }

    fn expected(&self) -> Expected<'_> {
        Expected {
            issuer: &self.inner.config.issuer,
            audience: &self.inner.config.audience,
        }
    }

    /// The session cookie, written by hand: the `cookie` crate would bring in `time` and five
    /// more crates for one header. The token is base64url, which needs no quoting.
    fn cookie(&self, token: &str, max_age: i64) -> HeaderValue {
        let config = &self.inner.config;
        let secure = if config.cookie_secure { "; Secure" } else { "" };
        let cookie = format!(
            "{}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
            config.cookie_name()
        );
        HeaderValue::try_from(cookie).expect("cookie names and base64url tokens are header-safe")
    }
}

/// Why authentication could not be prepared at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the AUTH_* configuration is invalid: check `Env::finish` before `Auth::new`")]
    InvalidConfig,
    #[error("the operating system provides no random numbers")]
    Random(#[from] getrandom::Error),
}

impl<S> FromRequestParts<S> for CurrentUser
where
    Auth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Auth::from_ref(state)
            .authenticate(&parts.method, &parts.headers)
            .await?
            .ok_or(ApiError::Unauthorized)
    }
}

/// Why a full name is refused, if it is.
pub fn full_name_violation(full_name: &str) -> Option<String> {
    (full_name.chars().count() > MAX_FULL_NAME_CHARS)
        .then(|| format!("must be at most {MAX_FULL_NAME_CHARS} characters long"))
}

fn email_taken() -> ApiError {
    ApiError::Conflict("an account with this email already exists".into())
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value)
}

/// The current time in Unix seconds, the unit of every time column.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn reads_bearer_tokens() {
        let with = |value| headers(&[(header::AUTHORIZATION, value)]);

        assert_eq!(
            bearer_token(&with("Bearer abc.def.ghi")),
            Some("abc.def.ghi")
        );
        assert_eq!(bearer_token(&with("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&with("Basic abc")), None);
        assert_eq!(bearer_token(&with("Bearer ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let request = headers(&[
            (header::COOKIE, "theme=dark; __Host-session=tok3n"),
            (header::COOKIE, "other=1"),
        ]);

        assert_eq!(cookie_value(&request, "__Host-session"), Some("tok3n"));
        assert_eq!(cookie_value(&request, "session"), None);
    }

    #[test]
    fn full_names_have_a_length_limit() {
        assert!(full_name_violation("Ada Lovelace").is_none());
        assert!(full_name_violation(&"x".repeat(MAX_FULL_NAME_CHARS + 1)).is_some());
    }
}
