//! Rate limits on the endpoints that take credentials, against password guessing and sign-up
//! floods, designed so that nobody can use them to keep an account's owner out.
//!
//! Three limits, each against one kind of abuse (saaskit's `docs/auth.md`, "Security model"):
//!
//! - per client IP (`auth:ip:*`): `POST /api/auth/register`, `/login`, `/refresh` and
//!   `/password` (and the admin service's `/admin/sign-in` and `/api/admin/auth/token`)
//!   together, against one address spraying guesses over many accounts or flooding sign-ups;
//! - per email *and* client IP (`auth:email-ip:*`): register and the sign-ins, tight, against
//!   one address guessing one account's password. Per password change, the same quota counts
//!   per account (`auth:account:*`), against a stolen token guessing the current password;
//! - per email from every address together (`auth:email:*`): the sign-ins, loose and per hour,
//!   against guessing one account from many addresses. Anyone can use it up, so it never
//!   applies to a client IP that signed in to (or registered) the account in the last
//!   [`KNOWN_CLIENT_TTL`] (`auth:known:*`): its owner keeps signing in from where they did.
//!
//! Counting attempts per email from any address, as a single limit, would let a stranger lock
//! the owner out by failing on purpose; counting per (email, IP) alone would let a botnet guess
//! without bound. A request over any limit is answered with 429 and `Retry-After`; every
//! response of these routes carries `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` (seconds until the whole quota is back) for the tightest of its limits.
//!
//! The routes that send email (a password reset link, a new verification link) have a limit of
//! their own, per address and hour (`mail:*`, `RATE_LIMIT_EMAIL_PER_ADDRESS_PER_HOUR`), against
//! flooding someone's inbox: per email for reset links, skipped for client IPs known to the
//! account like the sign-in's, so that a stranger cannot keep its owner from getting one; per
//! account for verification links. The routes that take a token from such an email count per
//! client IP with the others.
//!
//! Counts are kept by a [`RateLimitStore`]: [`InMemoryStore`], one count per process, unless
//! `RATE_LIMIT_REDIS_URL` names a Redis, where [`RedisStore`] keeps one count for every instance
//! and service pointing at it ([`RateLimits::connect`]).

mod redis_store;
mod store;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

pub use redis_store::RedisStore;
pub use store::{Decision, InMemoryStore, Quota, RateLimitStore};

use crate::auth::Auth;
use crate::config::{Env, TLS_NOT_BUILT};
use crate::error::ApiError;
use crate::http::HttpConfig;
use crate::metrics::RateLimited;

/// The limits, read from the environment.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Register, login, refresh and password-change requests per client IP and minute, all
    /// together (`RATE_LIMIT_AUTH_PER_IP_PER_MINUTE`).
    pub auth_per_ip_per_minute: NonZeroU32,
    /// Register and sign-in requests per email and client IP, and password changes per account,
    /// per minute (`RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE`).
    pub auth_per_email_and_ip_per_minute: NonZeroU32,
    /// Sign-in requests per email and hour from every client IP that has not signed in to the
    /// account lately (`RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR`).
    pub auth_per_email_per_hour: NonZeroU32,
    /// Password reset requests per email, and verification link requests per account, per hour
    /// (`RATE_LIMIT_EMAIL_PER_ADDRESS_PER_HOUR`).
    pub email_per_address_per_hour: NonZeroU32,
    /// Whether the client IP is the last address of `X-Forwarded-For` rather than the peer
    /// address (`RATE_LIMIT_TRUST_FORWARDED_FOR`). Only behind a reverse proxy that appends to
    /// that header: otherwise any client picks the address it is counted under.
    pub trust_forwarded_for: bool,
    /// The Redis that keeps the counts (`RATE_LIMIT_REDIS_URL`), or `None` to count in this
    /// process. Its `Debug` hides the password.
    pub redis: Option<redis::Client>,
}

impl RateLimitConfig {
    pub fn from_env(env: &mut Env) -> Self {
        // It counted attempts per email from every address, which let anyone lock an account's
        // owner out; the two keys below split it.
        env.retired(
            "RATE_LIMIT_AUTH_PER_EMAIL_PER_MINUTE",
            "attempts are counted per email and client IP \
             (RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE) and per email from unknown addresses \
             (RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR): set those",
        );
        Self {
            auth_per_ip_per_minute: at_least_one(env, "RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", 30),
            auth_per_email_and_ip_per_minute: at_least_one(
                env,
                "RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE",
                10,
            ),
            auth_per_email_per_hour: at_least_one(env, "RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR", 100),
            email_per_address_per_hour: at_least_one(
                env,
                "RATE_LIMIT_EMAIL_PER_ADDRESS_PER_HOUR",
                5,
            ),
            trust_forwarded_for: env.optional("RATE_LIMIT_TRUST_FORWARDED_FOR", false),
            redis: redis_client(env, "RATE_LIMIT_REDIS_URL"),
        }
    }
}

/// The client for the URL in `key`, checked (not connected) now; `None` when it is unset.
fn redis_client(env: &mut Env, key: &str) -> Option<redis::Client> {
    let url: String = env.optional(key, String::new());
    if url.is_empty() {
        return None;
    }
    if url.starts_with("rediss://") && cfg!(not(feature = "tls")) {
        // Refused rather than opened: this build cannot speak TLS.
        env.record(key, TLS_NOT_BUILT);
        return None;
    }
    redis::Client::open(url.as_str())
        .inspect_err(|error| {
            env.record(
                key,
                format!("is not a Redis URL (redis://[:password@]host:port[/db]): {error}"),
            );
        })
        .ok()
}

fn at_least_one(env: &mut Env, key: &str, default: u32) -> NonZeroU32 {
    NonZeroU32::new(env.optional(key, default)).unwrap_or_else(|| {
        env.record(key, "must be at least 1");
        // A placeholder: `Env::finish` stops start-up before it is used.
        NonZeroU32::MIN
    })
}

/// What a limited route is counted by, besides the client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// The IP only.
    Ip,
    /// The email of the body per IP (registrations).
    EmailPerIp,
    /// The email of the body per IP, and per email unless the client IP is known to the
    /// account (sign-ins).
    SignIn,
    /// The account the request is authenticated as (password and email changes).
    Account,
    /// The email of the body per hour, unless the client IP is known to the account (password
    /// reset links).
    MailToAddress,
    /// The account the request is authenticated as, per hour (verification links).
    MailToAccount,
}

/// The routes limited. All of them share one count per IP.
const AUTH_ROUTES: [(&str, Counted); 12] = [
    ("/api/auth/register", Counted::EmailPerIp),
    ("/api/auth/login", Counted::SignIn),
    ("/api/auth/refresh", Counted::Ip),
    ("/api/auth/password", Counted::Account),
    ("/api/auth/password/forgot", Counted::MailToAddress),
    ("/api/auth/password/reset", Counted::Ip),
    ("/api/auth/email", Counted::Account),
    ("/api/auth/email/confirm", Counted::Ip),
    ("/api/auth/email/verify", Counted::Ip),
    ("/api/auth/email/verify/resend", Counted::MailToAccount),
    ("/admin/sign-in", Counted::SignIn),
    ("/api/admin/auth/token", Counted::SignIn),
];

/// How long a client IP that signed in to an account (or registered it) stays exempt from the
/// account's limit from every address: about as long as people keep using the same network.
pub const KNOWN_CLIENT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest email address there can be (RFC 5321). Keys are cut there, so that huge bodies
/// cannot fill the store with huge keys.
const MAX_EMAIL_LEN: usize = 254;

/// A service's limits and where their counts are kept.
pub struct RateLimits {
    config: RateLimitConfig,
    store: Arc<dyn RateLimitStore>,
}

/// Start-up could not reach the Redis of `RATE_LIMIT_REDIS_URL`.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot connect to the Redis of RATE_LIMIT_REDIS_URL ({address}): start it, fix the URL, or \
     leave the key empty to count in each process"
)]
pub struct RedisUnreachable {
    address: String,
    source: redis::RedisError,
}

impl RateLimits {
    /// `config`'s limits, counted in `store`.
    pub fn new(config: RateLimitConfig, store: Arc<dyn RateLimitStore>) -> Self {
        Self { config, store }
    }

    /// `config`'s limits, counted in the Redis of `RATE_LIMIT_REDIS_URL`, connected to now, or
    /// in this process when that is unset. A Redis that cannot be reached stops start-up, so that
    /// a wrong URL shows at deployment rather than as limits silently not kept; once running,
    /// requests go through while Redis is away (see [`RateLimits::protect`]).
    pub async fn connect(config: RateLimitConfig) -> Result<Self, RedisUnreachable> {
        let Some(client) = config.redis.clone() else {
            return Ok(Self::new(config, Arc::new(InMemoryStore::new())));
        };
        let address = client.get_connection_info().addr().to_string();
        let store = RedisStore::connect(client)
            .await
            .map_err(|source| RedisUnreachable {
                address: address.clone(),
                source,
            })?;
        tracing::info!(redis = %address, "rate limits are counted in Redis");
        Ok(Self::new(config, Arc::new(store)))
    }

    /// Limits the auth routes of `app`. Only the routes already in `app` are limited: call it
    /// after merging them. `auth` tells which account a password change is made for. When the
    /// store fails, a request goes through uncounted and the error is logged: the limits must
    /// not take sign-in down with them.
    pub fn protect(&self, app: Router, http_config: &HttpConfig, auth: &Auth) -> Router {
        let limiter = Limiter {
            store: Arc::clone(&self.store),
            auth: auth.clone(),
            per_ip: Quota::per_minute(self.config.auth_per_ip_per_minute),
            per_email_and_ip: Quota::per_minute(self.config.auth_per_email_and_ip_per_minute),
            per_email: Quota::per_hour(self.config.auth_per_email_per_hour),
            mail: Quota::per_hour(self.config.email_per_address_per_hour),
            trust_forwarded_for: self.config.trust_forwarded_for,
            body_limit: http_config.body_limit,
        };
        app.layer(middleware::from_fn_with_state(Arc::new(limiter), limit))
    }
}

struct Limiter {
    store: Arc<dyn RateLimitStore>,
    auth: Auth,
    per_ip: Quota,
    per_email_and_ip: Quota,
    per_email: Quota,
    mail: Quota,
    trust_forwarded_for: bool,
    body_limit: usize,
}

/// The only field of the body the limits look at.
#[derive(Deserialize)]
struct Credentials {
    email: String,
}

/// One limit a request is counted against: its kind (which alone goes to the logs), key and
/// quota.
type Limit = (&'static str, String, Quota);

async fn limit(State(limiter): State<Arc<Limiter>>, request: Request, next: Next) -> Response {
    let route = AUTH_ROUTES
        .iter()
        .find(|(path, _)| *path == request.uri().path());
    let Some(&(_, counted)) = route.filter(|_| request.method() == Method::POST) else {
        return next.run(request).await;
    };

    let client = client_ip(&request, limiter.trust_forwarded_for).map(client_key);
    let mut limits: Vec<Limit> = Vec::with_capacity(3);
    match &client {
        Some(client) => limits.push(("ip", format!("auth:ip:{client}"), limiter.per_ip)),
        None => tracing::warn!("no client address: serve with connect info to limit per IP"),
    }
    // Remembered once the request succeeds: the client IP known to the account.
    let mut known_key = None;
    let request = match counted {
        Counted::Ip => request,
        Counted::Account | Counted::MailToAccount => {
            // Unauthenticated requests are refused by the handler; only the IP counts them.
            let current = limiter
                .auth
                .authenticate(request.method(), request.headers())
                .await;
            if let Ok(Some(current)) = current {
                let id = current.user.id;
                limits.push(match counted {
                    Counted::Account => (
                        "account",
                        format!("auth:account:{id}"),
                        limiter.per_email_and_ip,
                    ),
                    _ => (
                        "mail to account",
                        format!("mail:account:{id}"),
                        limiter.mail,
                    ),
                });
            }
            request
        }
        Counted::MailToAddress => {
            let (request, email) = match read_email(request, limiter.body_limit).await {
                Ok(read) => read,
                Err(error) => return error.into_response(),
            };
            if let Some(email) = email.as_deref().map(email_key) {
                let known = client
                    .as_ref()
                    .map(|client| format!("auth:known:{email}|{client}"));
                if !limiter.knows(known.as_deref()).await {
                    limits.push((
                        "mail to address",
                        format!("mail:email:{email}"),
                        limiter.mail,
                    ));
                }
            }
            request
        }
        Counted::EmailPerIp | Counted::SignIn => {
            let (request, email) = match read_email(request, limiter.body_limit).await {
                Ok(read) => read,
                Err(error) => return error.into_response(),
            };
            if let Some(email) = email.as_deref().map(email_key) {
                let from = client.as_deref().unwrap_or("unknown");
                let per_ip = format!("auth:email-ip:{email}|{from}");
                limits.push(("email and ip", per_ip, limiter.per_email_and_ip));
                // Without an address, no client can be known.
                known_key = client.map(|client| format!("auth:known:{email}|{client}"));
                if counted == Counted::SignIn && !limiter.knows(known_key.as_deref()).await {
                    limits.push(("email", format!("auth:email:{email}"), limiter.per_email));
                }
            }
            request
        }
    };

    // In order: a request one limit refuses does not count against the next ones, so that a
    // client over its own limits does not use up the account's.
    let mut shown: Option<Decision> = None;
    for (kind, key, quota) in &limits {
        match limiter.store.hit(key, *quota).await {
            Ok(decision) if !decision.allowed => {
                tracing::info!(by = kind, "rate limited");
                let retry_after = whole_secs(decision.retry_after).max(1);
                let mut response = ApiError::TooManyRequests(retry_after).into_response();
                set_headers(response.headers_mut(), &decision);
                // Counted by the middleware in `rate_limit_refusals_total{limit}`.
                response.extensions_mut().insert(RateLimited(kind));
                return response;
            }
            Ok(decision) => {
                if shown.is_none_or(|shown| tighter(&decision, &shown)) {
                    shown = Some(decision);
                }
            }
            // The limits guard against abuse; they must not take sign-in down with their store.
            Err(error) => tracing::error!(%error, "rate limit store failed; request let through"),
        }
    }

    let mut response = next.run(request).await;
    if let Some(decision) = shown {
        set_headers(response.headers_mut(), &decision);
    }
    // A sign-in answers 200 (the api) or redirects (the panel); a registration answers 201.
    let status = response.status();
    let signed_in = status.is_success() || status.is_redirection();
    if let Some(key) = known_key.filter(|_| signed_in)
        && let Err(error) = limiter.store.remember(&key, KNOWN_CLIENT_TTL).await
    {
        tracing::error!(%error, "rate limit store failed; client not remembered");
    }
    response
}

impl Limiter {
    /// Whether the client IP in `known_key` signed in to its account lately. No when the store
    /// fails: the request is then let through uncounted anyway.
    async fn knows(&self, known_key: Option<&str>) -> bool {
        let Some(known_key) = known_key else {
            return false;
        };
        self.store
            .remembers(known_key)
            .await
            .inspect_err(|error| tracing::error!(%error, "rate limit store failed"))
            .unwrap_or(false)
    }
}

/// The peer address, or the address the trusted proxy appended to `X-Forwarded-For`. `None`
/// only when the server was not started with connect info.
fn client_ip(request: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    let forwarded = || {
        let last_header = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .next_back()?;
        let last_entry = last_header.to_str().ok()?.rsplit(',').next()?;
        last_entry.trim().parse().ok()
    };
    trust_forwarded_for.then(forwarded).flatten().or_else(|| {
        let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
        Some(peer.ip())
    })
}

/// How a client IP is counted: IPv4 addresses one by one; IPv6 ones by /64, the block one
/// subscriber usually holds (counting single IPv6 addresses would let a client take a fresh one
/// for each request).
fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => {
            let network = Ipv6Addr::from_bits(ip.to_bits() & !(u128::MAX >> 64));
            format!("{network}/64")
        }
    }
}

/// Reads the body for its `email` and gives back a request with the same body. A body without
/// one, or not JSON, is left for the handler to reject.
async fn read_email(
    request: Request,
    body_limit: usize,
) -> Result<(Request, Option<String>), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, body_limit)
        .await
        .map_err(|error| {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("the request body could not be read".into())
            }
        })?;
    // JSON from the api's clients, a form from the panel's sign-in page.
    let email = serde_json::from_slice::<Credentials>(&bytes)
        .or_else(|_| serde_urlencoded::from_bytes::<Credentials>(&bytes))
        .ok()
        .map(|credentials| credentials.email);
    Ok((Request::from_parts(parts, Body::from(bytes)), email))
}

/// An email as the auth module compares them (trimmed and lower-cased), cut at the longest
/// address there can be.
fn email_key(email: &str) -> String {
    let mut email = email.trim().to_lowercase();
    email.truncate(email.floor_char_boundary(MAX_EMAIL_LEN));
    email
}

/// Whether `a` leaves the client less room than `b`.
fn tighter(a: &Decision, b: &Decision) -> bool {
    (a.remaining, std::cmp::Reverse(a.reset_after))
        < (b.remaining, std::cmp::Reverse(b.reset_after))
}

fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    let fields = [
        ("ratelimit-limit", u64::from(decision.limit)),
        ("ratelimit-remaining", u64::from(decision.remaining)),
        ("ratelimit-reset", whole_secs(decision.reset_after)),
    ];
    for (name, value) in fields {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// Seconds, rounded up: a client that waits that long is never early.
fn whole_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use futures_util::future::BoxFuture;
    use tower::ServiceExt;

    use super::*;
    use crate::auth::AuthConfig;
    use crate::db::{Database, DatabaseConfig};
    use crate::email::{EmailConfig, Mailer};
    use crate::error::BoxError;

    /// Routes that answer with the body they received; a login fails (401) when its body says
    /// `wrong`.
    fn routes() -> Router {
        let echo = post(|body: Bytes| async move { body });
        let login = post(|body: Bytes| async move {
            let wrong = body.windows(5).any(|window| window == b"wrong");
            let status = if wrong {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            (status, body)
        });
        Router::new()
            .route("/api/auth/register", echo.clone())
            .route("/api/auth/login", login)
            .route("/api/auth/refresh", echo.clone())
            .route("/api/auth/logout", echo.clone())
            .route("/admin/sign-in", echo)
            .route("/healthz", get(|| async { "ok" }))
    }

    fn config(per_ip: u32, per_email_and_ip: u32) -> RateLimitConfig {
        RateLimitConfig {
            auth_per_ip_per_minute: NonZeroU32::new(per_ip).unwrap(),
            auth_per_email_and_ip_per_minute: NonZeroU32::new(per_email_and_ip).unwrap(),
            auth_per_email_per_hour: NonZeroU32::new(1000).unwrap(),
            email_per_address_per_hour: NonZeroU32::new(1000).unwrap(),
            trust_forwarded_for: false,
            redis: None,
        }
    }

    /// Only the limit per email from every address matters.
    fn per_email_per_hour(limit: u32) -> RateLimitConfig {
        RateLimitConfig {
            auth_per_email_per_hour: NonZeroU32::new(limit).unwrap(),
            ..config(100, 100)
        }
    }

    fn http_config() -> HttpConfig {
        HttpConfig {
            request_timeout: Duration::from_secs(5),
            body_limit: 1024,
            allowed_origins: Vec::new(),
        }
    }

    /// Authentication on a fresh SQLite file, which no test here reaches (only password changes
    /// look at it: see tests/e2e).
    async fn auth() -> Auth {
        let dir = std::env::temp_dir().join(format!("shared-rate-limit-{}", std::process::id()));
        let url = format!("sqlite://{}/test.db?mode=rwc", dir.display());
        let key = "A".repeat(43);
        let mut env = Env::from_vars([
            ("DATABASE_URL", url.as_str()),
            ("AUTH_SIGNING_KEY", key.as_str()),
            ("AUTH_ISSUER", "test"),
            ("AUTH_AUDIENCE", "test"),
            ("APP_NAME", "test"),
            ("APP_BASE_URL", "http://localhost:3000"),
            ("EMAIL_FROM", "no-reply@localhost"),
            // The key above is a placeholder, which production refuses.
            ("APP_ENV", "development"),
        ]);
        let db_config = DatabaseConfig::from_env(&mut env);
        let auth_config = AuthConfig::from_env(&mut env);
        let email_config = EmailConfig::from_env(&mut env);
        env.finish().unwrap();
        let db = Database::connect(&db_config).await.unwrap();
        let mailer = Mailer::new(email_config).unwrap();
        Auth::new(db, auth_config, &http_config(), &mailer).unwrap()
    }

    async fn app(per_ip: u32, per_email_and_ip: u32) -> Router {
        protect_in_memory(config(per_ip, per_email_and_ip)).await
    }

    async fn protect_in_memory(config: RateLimitConfig) -> Router {
        protect(config, Arc::new(InMemoryStore::new())).await
    }

    async fn protect(config: RateLimitConfig, store: Arc<dyn RateLimitStore>) -> Router {
        RateLimits::new(config, store).protect(routes(), &http_config(), &auth().await)
    }

    /// A POST from `ip` with `body`, as the server builds it (connect info included).
    fn post_from(ip: [u8; 4], path: &str, body: &str) -> Request {
        let mut request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
        request
    }

    fn login_from(ip: [u8; 4], email: &str) -> Request {
        let body = format!(r#"{{"email":"{email}","password":"correct horse"}}"#);
        post_from(ip, "/api/auth/login", &body)
    }

    async fn send(app: &Router, request: Request) -> Response {
        app.clone().oneshot(request).await.unwrap()
    }

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response.headers()[name].to_str().unwrap()
    }

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn refuses_an_ip_over_its_limit() {
        let app = app(2, 100).await;
        let refresh = || post_from([203, 0, 113, 7], "/api/auth/refresh", "{}");

        assert_eq!(send(&app, refresh()).await.status(), StatusCode::OK);
        assert_eq!(send(&app, refresh()).await.status(), StatusCode::OK);
        let refused = send(&app, refresh()).await;

        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&refused, "retry-after"), "30");
        assert_eq!(header(&refused, "ratelimit-limit"), "2");
        assert_eq!(header(&refused, "ratelimit-remaining"), "0");
        assert_eq!(header(&refused, "ratelimit-reset"), "60");
        assert!(body_text(refused).await.contains("too_many_requests"));
        let other_ip = post_from([203, 0, 113, 8], "/api/auth/refresh", "{}");
        assert_eq!(send(&app, other_ip).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn the_three_routes_share_one_count_per_ip() {
        let app = app(2, 100).await;
        let ip = [203, 0, 113, 7];

        send(&app, post_from(ip, "/api/auth/register", "{}")).await;
        send(&app, login_from(ip, "ada@example.com")).await;
        let refused = send(&app, post_from(ip, "/api/auth/refresh", "{}")).await;

        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn allowed_responses_show_the_tighter_limit() {
        let app = app(30, 10).await;

        let response = send(&app, login_from([203, 0, 113, 7], "ada@example.com")).await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-limit"), "10");
        assert_eq!(header(&response, "ratelimit-remaining"), "9");
        assert_eq!(header(&response, "ratelimit-reset"), "6");
    }

    #[tokio::test]
    async fn limits_an_email_per_address() {
        let app = app(100, 2).await;
        let ip = [203, 0, 113, 1];

        send(&app, login_from(ip, "ada@example.com")).await;
        send(&app, login_from(ip, " Ada@Example.COM ")).await;
        let refused = send(&app, login_from(ip, "ada@example.com")).await;
        let other_email = send(&app, login_from(ip, "bob@example.com")).await;
        let other_ip = send(&app, login_from([203, 0, 113, 2], "ada@example.com")).await;

        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&refused, "ratelimit-limit"), "2");
        assert_eq!(other_email.status(), StatusCode::OK);
        assert_eq!(other_ip.status(), StatusCode::OK);
    }

    fn guess_from(ip: [u8; 4], email: &str) -> Request {
        let body = format!(r#"{{"email":"{email}","password":"wrong horse"}}"#);
        post_from(ip, "/api/auth/login", &body)
    }

    #[tokio::test]
    async fn a_stranger_does_not_lock_the_owner_out() {
        let app = app(100, 2).await;

        send(&app, guess_from([203, 0, 113, 3], "ada@example.com")).await;
        send(&app, guess_from([203, 0, 113, 3], "ada@example.com")).await;
        let refused = send(&app, guess_from([203, 0, 113, 3], "ada@example.com")).await;
        let owner = send(&app, login_from([198, 51, 100, 7], "ada@example.com")).await;

        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(owner.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn limits_an_email_from_every_address_except_those_that_signed_in() {
        let app = protect_in_memory(per_email_per_hour(2)).await;
        let owner = [198, 51, 100, 7];

        let signed_in = send(&app, login_from(owner, "ada@example.com")).await;
        let guess = send(&app, guess_from([203, 0, 113, 3], "ada@example.com")).await;
        let refused = send(&app, guess_from([203, 0, 113, 4], "ada@example.com")).await;
        let newcomer = send(&app, login_from([203, 0, 113, 5], "ada@example.com")).await;
        let known = send(&app, login_from(owner, " ADA@example.com")).await;

        assert_eq!(signed_in.status(), StatusCode::OK);
        assert_eq!(guess.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&refused, "ratelimit-limit"), "2");
        assert_eq!(newcomer.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(known.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_failed_sign_in_does_not_make_its_address_known() {
        let app = protect_in_memory(per_email_per_hour(1)).await;

        let failed = send(&app, guess_from([203, 0, 113, 3], "ada@example.com")).await;
        let again = send(&app, login_from([203, 0, 113, 3], "ada@example.com")).await;

        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn the_panel_sign_in_form_counts_per_email() {
        let app = app(100, 1).await;
        let form = || {
            post_from(
                [203, 0, 113, 1],
                "/admin/sign-in",
                "csrf=x&email=Ops%40Example.com&password=guess",
            )
        };

        let first = send(&app, form()).await;
        let second = send(&app, form()).await;

        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn the_handler_gets_the_body_unchanged() {
        let app = app(100, 100).await;
        let body = r#"{"email":"Ada@Example.com","password":"correct horse"}"#;
        let not_json = "email=ada@example.com";

        let json = send(
            &app,
            post_from([203, 0, 113, 7], "/api/auth/register", body),
        )
        .await;
        let form = send(
            &app,
            post_from([203, 0, 113, 7], "/api/auth/login", not_json),
        )
        .await;

        assert_eq!(body_text(json).await, body);
        assert_eq!(form.status(), StatusCode::OK);
        assert_eq!(body_text(form).await, not_json);
    }

    #[tokio::test]
    async fn refuses_bodies_over_the_limit() {
        let app = app(100, 100).await;
        let body = format!(r#"{{"email":"{}"}}"#, "a".repeat(2000));

        let response = send(&app, post_from([203, 0, 113, 7], "/api/auth/login", &body)).await;

        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn leaves_other_routes_alone() {
        let app = app(1, 1).await;

        for _ in 0..3 {
            let logout = send(&app, post_from([203, 0, 113, 7], "/api/auth/logout", "{}")).await;
            let health = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;

            assert_eq!(logout.status(), StatusCode::OK);
            assert_eq!(health.status(), StatusCode::OK);
            assert!(!logout.headers().contains_key("ratelimit-limit"));
        }
    }

    /// A refresh through a proxy at 10.0.0.1, which appended `client` to `X-Forwarded-For`.
    fn via_proxy(client: &str) -> Request {
        let mut request = post_from([10, 0, 0, 1], "/api/auth/refresh", "{}");
        let forwarded = HeaderValue::from_str(&format!("198.51.100.1, {client}")).unwrap();
        request.headers_mut().insert("x-forwarded-for", forwarded);
        request
    }

    #[tokio::test]
    async fn counts_the_last_forwarded_address_when_trusted() {
        let config = RateLimitConfig {
            trust_forwarded_for: true,
            ..config(1, 100)
        };
        let app = protect_in_memory(config).await;

        let first = send(&app, via_proxy("203.0.113.1")).await;
        let same_client = send(&app, via_proxy("203.0.113.1")).await;
        let other_client = send(&app, via_proxy("203.0.113.2")).await;

        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(same_client.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(other_client.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn ignores_forwarded_addresses_by_default() {
        let app = app(1, 100).await;

        let first = send(&app, via_proxy("203.0.113.1")).await;
        let forged = send(&app, via_proxy("203.0.113.2")).await;

        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn keys_emails_as_compared_and_cut_to_the_longest_address() {
        let long = "é".repeat(200);

        assert_eq!(email_key(" Ada@Example.COM "), "ada@example.com");
        assert_eq!(email_key(&long), "é".repeat(127));
    }

    #[test]
    fn counts_ipv6_clients_by_their_64_block() {
        let a = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let mapped = "::ffff:203.0.113.7".parse().unwrap();

        assert_eq!(client_key(a), "2001:db8:1:2::/64");
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(client_key(mapped), "203.0.113.7");
    }

    struct Unreachable;

    impl RateLimitStore for Unreachable {
        fn hit<'a>(&'a self, _: &'a str, _: Quota) -> BoxFuture<'a, Result<Decision, BoxError>> {
            Box::pin(async { Err("connection refused".into()) })
        }

        fn remember<'a>(&'a self, _: &'a str, _: Duration) -> BoxFuture<'a, Result<(), BoxError>> {
            Box::pin(async { Err("connection refused".into()) })
        }

        fn remembers<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, BoxError>> {
            Box::pin(async { Err("connection refused".into()) })
        }
    }

    #[tokio::test]
    async fn lets_requests_through_when_the_store_fails() {
        let app = protect(config(1, 1), Arc::new(Unreachable)).await;

        for _ in 0..3 {
            let response = send(&app, login_from([203, 0, 113, 7], "ada@example.com")).await;
            assert_eq!(response.status(), StatusCode::OK);
        }
    }

    #[test]
    fn reads_the_limits_and_rejects_zero() {
        let mut env = Env::from_vars([
            ("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", "0"),
            ("RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE", "five"),
            ("RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR", "0"),
            ("RATE_LIMIT_TRUST_FORWARDED_FOR", "true"),
            ("RATE_LIMIT_REDIS_URL", "http://cache.internal:6379"),
            ("RATE_LIMIT_AUTH_PER_EMAIL_PER_MINUTE", "10"),
        ]);

        let config = RateLimitConfig::from_env(&mut env);
        let message = env.finish().unwrap_err().to_string();

        assert!(config.trust_forwarded_for);
        assert!(
            message.contains("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE must be at least 1"),
            "{message}"
        );
        assert!(
            message.contains("RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE is invalid"),
            "{message}"
        );
        assert!(
            message.contains("RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR must be at least 1"),
            "{message}"
        );
        assert!(
            message.contains("RATE_LIMIT_REDIS_URL is not a Redis URL"),
            "{message}"
        );
        assert!(
            message.contains(
                "RATE_LIMIT_AUTH_PER_EMAIL_PER_MINUTE is no longer read: attempts are counted"
            ),
            "{message}"
        );
    }

    #[test]
    fn reads_the_redis_url_and_never_shows_its_password() {
        let mut env = Env::from_vars([("RATE_LIMIT_REDIS_URL", "redis://:s3cret@cache:6380/2")]);

        let config = RateLimitConfig::from_env(&mut env);

        assert!(env.finish().is_ok());
        let client = config.redis.as_ref().expect("a Redis client");
        assert_eq!(
            client.get_connection_info().addr().to_string(),
            "cache:6380"
        );
        assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
    }

    #[test]
    fn defaults_when_unset() {
        let mut env = Env::from_vars::<&str, &str>([]);

        let config = RateLimitConfig::from_env(&mut env);

        assert!(env.finish().is_ok());
        assert_eq!(config.auth_per_ip_per_minute.get(), 30);
        assert_eq!(config.auth_per_email_and_ip_per_minute.get(), 10);
        assert_eq!(config.auth_per_email_per_hour.get(), 100);
        assert!(!config.trust_forwarded_for);
        assert!(config.redis.is_none());
    }
}
