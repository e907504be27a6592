//! Accounts and authentication: registration, sign-in, access and refresh tokens, sessions.
//!
//! A request is authenticated either by a Bearer access token (for API clients and other
//! services) or by the session cookie (for browsers); [`CurrentUser`] accepts both. The back
//! office (the admin service, the webhooks operations API) uses [`Auth::for_staff`]: staff
//! sessions and staff tokens only, with shorter timeouts. Each submodule explains its security
//! choices:
//!
//! - [`accounts`]: the `users` table and the email rules;
//! - [`password`]: the password policy and argon2id hashing off the async runtime;
//! - [`token`]: EdDSA access tokens, the key set and its JWKS;
//! - [`session`]: server-side sessions and their refresh tokens;
//! - [`csrf`]: the check cookie-authenticated requests must pass;
//! - [`tokens`] and [`mail`]: the account emails (address verification, password reset, email
//!   change), their single-use tokens, and the job that mints and sends them.
//!
//! The endpoints are in the api's `src/auth.rs`. To rotate the signing key, run
//! `saaskit keys rotate` in the workspace, deploy, wait one access-token lifetime, then
//! `saaskit keys remove <old kid>` and deploy again (`saaskit keys --help`; saaskit's
//! `docs/auth.md` has the whole procedure).

pub mod accounts;
pub mod csrf;
pub mod mail;
pub mod password;
pub mod session;
pub mod token;
pub mod tokens;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, Method, header};
use futures_util::future::BoxFuture;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;

pub use accounts::{Role, User};
use mail::{AccountEmail, AccountEmails, TokenLifetimes};
use password::{Passwords, Verified};
use session::{Exchange, Kind, Policy, SessionInfo, Timeouts};
pub use token::Actor;
use token::{Claims, Expected, Jwks, KeySet};

use crate::config::Env;
use crate::db::Database;
use crate::email::{self, Email, Mailer, Message};
use crate::error::{BoxError, FieldErrors};
use crate::http::HttpConfig;
use crate::jobs::{self, NewJob};
use crate::metrics::Metrics;
use tokens::Purpose;

/// The longest `full_name` accepted, in characters.
pub const MAX_FULL_NAME_CHARS: usize = 200;

/// The longest an impersonation lasts, in seconds: its token expires then, and its session ends.
pub const MAX_IMPERSONATION_SECS: i64 = 15 * 60;

/// The authentication settings, read from `AUTH_*` keys. Not `Debug`: it holds the signing key.
pub struct AuthConfig {
    /// `None` only when the keys are invalid, which [`Env::finish`] reports before it is used.
    keys: Option<KeySet>,
    issuer: String,
    audience: String,
    /// The audience of staff tokens, the only ones the back office accepts.
    staff_audience: String,
    access_token_ttl: i64,
    timeouts: Timeouts,
    /// Staff sessions' own, shorter timeouts: a staff session is worth more to an attacker.
    staff_timeouts: Timeouts,
    cookie_secure: bool,
    /// How many password hashes may wait for a hashing thread (`AUTH_PASSWORD_HASH_QUEUE`).
    password_queue: usize,
    /// Sign-ins and refreshes of accounts whose address is not verified are refused, and
    /// registration does not tell which addresses have accounts
    /// (`AUTH_REQUIRE_VERIFIED_EMAIL`).
    require_verified_email: bool,
    /// How long the links of the account emails work (`AUTH_*_TOKEN_TTL_SECS`).
    token_lifetimes: TokenLifetimes,
    /// How many verified access tokens the key set remembers (`AUTH_TOKEN_CACHE_CAPACITY`).
    token_cache: usize,
}

impl AuthConfig {
    pub fn from_env(env: &mut Env) -> Self {
        let signing_key = env.required_secret("AUTH_SIGNING_KEY");
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
        // Optional, so that a workspace made before staff tokens existed starts as it was.
        let staff_audience: String =
            env.optional("AUTH_STAFF_AUDIENCE", format!("{audience}-staff"));
        if staff_audience == audience {
            env.record(
                "AUTH_STAFF_AUDIENCE",
                "must differ from AUTH_AUDIENCE, or customer-facing tokens would pass as staff \
                 tokens: e.g. AUTH_AUDIENCE with `-staff` appended",
            );
        }
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
        // OWASP's ranges for high-value applications: minutes idle, a working day at most.
        let staff_timeouts = Timeouts {
            idle: positive("AUTH_STAFF_SESSION_IDLE_TIMEOUT_SECS", 5 * 60),
            absolute: positive("AUTH_STAFF_SESSION_ABSOLUTE_TIMEOUT_SECS", 8 * 3600),
        };
        let token_lifetimes = TokenLifetimes {
            verify_email: positive("AUTH_VERIFY_EMAIL_TOKEN_TTL_SECS", 48 * 3600),
            reset_password: positive("AUTH_RESET_PASSWORD_TOKEN_TTL_SECS", 30 * 60),
            change_email: positive("AUTH_CHANGE_EMAIL_TOKEN_TTL_SECS", 48 * 3600),
        };
        let password_queue = env.optional("AUTH_PASSWORD_HASH_QUEUE", 32);
        if password_queue == 0 {
            env.record("AUTH_PASSWORD_HASH_QUEUE", "must be at least 1");
        }
        Self {
            keys,
            issuer,
            audience,
            staff_audience,
            access_token_ttl,
            timeouts,
            staff_timeouts,
            cookie_secure: env.optional("AUTH_COOKIE_SECURE", true),
            password_queue,
            require_verified_email: env.optional("AUTH_REQUIRE_VERIFIED_EMAIL", false),
            token_lifetimes,
            token_cache: env.optional("AUTH_TOKEN_CACHE_CAPACITY", 100_000),
        }
    }

    /// The name of session cookie `base`: with `Secure`, the `__Host-` prefix makes browsers
    /// refuse the cookie unless it is also host-only with `Path=/`, so that no subdomain can set
    /// or shadow it.
    fn cookie_name(&self, base: &str) -> Arc<str> {
        if self.cookie_secure {
            format!("__Host-{base}").into()
        } else {
            base.into()
        }
    }
}

/// The session cookie's name without the `__Host-` prefix, in the api.
const API_COOKIE: &str = "session";

/// The staff session cookie's name without the `__Host-` prefix (the admin panel's).
const STAFF_COOKIE: &str = "admin-session";

/// Authentication, shared by the handlers of every route that needs it. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
    /// What other modules do in the transaction that creates an account (see
    /// [`Auth::on_registration`]).
    registration_hooks: Arc<[RegistrationHook]>,
    /// How a switched token's organization is checked (see [`Auth::active_organization`]).
    membership_check: Option<MembershipCheck>,
    /// The session cookie this service reads and writes (see [`Auth::for_staff`]).
    cookie_name: Arc<str>,
    /// The sessions and tokens this value accepts and issues: customer-facing ones, or staff
    /// ones (see [`Auth::for_staff`]).
    kind: Kind,
}

struct Inner {
    db: Database,
    config: AuthConfig,
    keys: KeySet,
    jwks: Jwks,
    passwords: Passwords,
    trusted_origins: Vec<HeaderValue>,
    /// Renders the notices the account flows send (and sends the account emails' messages).
    mailer: Mailer,
}

/// Work another module does in the transaction that creates an account through registration,
/// so that the account never exists without it (the `orgs` module: the personal organization).
/// A plain function: the hooks are known when `main.rs` starts the service.
pub type RegistrationHook =
    for<'a> fn(&'a mut sqlx::AnyConnection, &'a User) -> BoxFuture<'a, Result<(), BoxError>>;

/// Whether a user is, now, a member of an organization (organization's id, then user's id): the
/// `orgs` module's check, for [`Auth::active_organization`]. A plain function, like
/// [`RegistrationHook`]: auth does not know organizations, the module that does hands it over.
pub type MembershipCheck =
    for<'a> fn(&'a Database, &'a str, &'a str) -> BoxFuture<'a, Result<bool, BoxError>>;

/// The access and refresh tokens a sign-in or a refresh returns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
}

/// What a registration led to.
pub enum Registered {
    /// The account exists and is signed in (the address is not verified yet).
    SignedIn(SignedIn),
    /// With `AUTH_REQUIRE_VERIFIED_EMAIL`: the address got an email, a verification link for a
    /// new account or a notice to the owner of an existing one. The caller is not told which.
    CheckEmail,
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
    /// The staff member impersonating the user, when the request carries an impersonation
    /// token (never with the cookie: impersonation issues a token only).
    pub impersonator: Option<Actor>,
    /// The organization the request's access token was switched to, if any (the `orgs`
    /// module): such a token acts in that organization only. Never with the cookie.
    pub org_id: Option<String>,
}

impl CurrentUser {
    /// Refuses what an impersonator must not do in the user's name: change their password,
    /// their email or their sessions.
    pub fn forbid_impersonation(&self) -> Result<(), AuthError> {
        match &self.impersonator {
            Some(_) => Err(AuthError::Impersonating),
            None => Ok(()),
        }
    }
}

/// A session with one access token and no refresh token: an impersonation an admin started (in
/// a session of the customer's), or a staff token (see [`Auth::start_token_session`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionToken {
    pub session_id: String,
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires; there is no refresh token.
    pub expires_in: i64,
}

impl Auth {
    /// Prepares authentication. `http` gives the origins the CSRF check trusts (the CORS ones);
    /// `mailer` what the account emails say about the product.
    pub fn new(
        db: Database,
        config: AuthConfig,
        http: &HttpConfig,
        mailer: &Mailer,
    ) -> Result<Self, SetupError> {
        let mut config = config;
        let keys = config
            .keys
            .take()
            .ok_or(SetupError::InvalidConfig)?
            .remember_verified(config.token_cache);
        let jwks = keys.jwks();
        let passwords = Passwords::new(config.password_queue)?;
        tracing::info!(
            kid = keys.signing_kid(),
            "access tokens are signed with this key"
        );
        Ok(Self {
            cookie_name: config.cookie_name(API_COOKIE),
            kind: Kind::Customer,
            registration_hooks: Arc::new([]),
            membership_check: None,
            inner: Arc::new(Inner {
                db,
                config,
                keys,
                jwks,
                passwords,
                trusted_origins: http.allowed_origins.clone(),
                mailer: mailer.clone(),
            }),
        })
    }

    /// Adds `password_hashing_queue_depth` to `metrics`: hashing jobs (sign-ins, registrations,
    /// password changes) waiting for a thread, read at each scrape. Near `AUTH_PASSWORD_HASH_QUEUE`,
    /// sign-ins are about to be refused with 503.
    pub fn register_metrics(&self, metrics: &Metrics) {
        let depth = Gauge::<i64>::default();
        metrics.register(
            "password_hashing_queue_depth",
            "Password hashing jobs waiting for a thread",
            depth.clone(),
        );
        let inner = Arc::clone(&self.inner);
        metrics.refresh_on_scrape(move || {
            depth.set(i64::try_from(inner.passwords.queue_depth()).unwrap_or(i64::MAX));
            Box::pin(std::future::ready(()))
        });
    }

    /// The same authentication for the back office (the admin service, the webhooks operations
    /// API): staff sessions only, which end by the staff timeouts, and Bearer tokens only when
    /// issued for staff use (`aud` = `AUTH_STAFF_AUDIENCE`); a customer-facing token is refused
    /// with 403 `staff_token_required`, even a staff member's. Browser sessions use their own
    /// cookie, `admin-session` (with the `__Host-` prefix when cookies are `Secure`), without
    /// `Max-Age`: browsers send a host's cookies to every port of it, so the panel keeps its
    /// sessions apart from the api's, and forget it when they close.
    pub fn for_staff(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            cookie_name: self.inner.config.cookie_name(STAFF_COOKIE),
            kind: Kind::Staff,
            registration_hooks: Arc::clone(&self.registration_hooks),
            membership_check: self.membership_check,
        }
    }

    /// This authentication with `hook` run by every registration, in the transaction that
    /// creates the account, after the hooks added before it. Operators' accounts
    /// ([`Auth::create_account`]) do not run it.
    #[must_use]
    pub fn on_registration(self, hook: RegistrationHook) -> Self {
        let hooks: Arc<[RegistrationHook]> = self
            .registration_hooks
            .iter()
            .copied()
            .chain([hook])
            .collect();
        Self {
            registration_hooks: hooks,
            ..self
        }
    }

    /// This authentication with `check` deciding whether the organization of a switched access
    /// token still counts ([`Auth::active_organization`]).
    #[must_use]
    pub fn check_memberships_with(self, check: MembershipCheck) -> Self {
        Self {
            membership_check: Some(check),
            ..self
        }
    }

    /// The organization `current`'s access token is switched to, if they are still a member of
    /// it: for reads that trust the organization without an `{org}` path segment, and so without
    /// the `Tenant` extractor's check (the feature flags). The token's claim was true when it was
    /// issued; a member removed since keeps the token up to its expiry, so the claim alone would
    /// keep showing them the organization's things. `None` without a claim, for a removed member,
    /// and when no module checks memberships (no `orgs` module: no organization to be in). One
    /// lookup, only for requests with a switched token.
    pub async fn active_organization<'a>(
        &self,
        current: &'a CurrentUser,
    ) -> Result<Option<&'a str>, BoxError> {
        let (Some(org_id), Some(check)) = (current.org_id.as_deref(), self.membership_check) else {
            return Ok(None);
        };
        let member = check(&self.inner.db, org_id, &current.user.id).await?;
        Ok(member.then_some(org_id))
    }

    /// The public keys, for `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> &Jwks {
        &self.inner.jwks
    }

    /// The `auth.account_email` job, which mints and sends the tokens of the account emails: for
    /// the service's job handlers.
    pub fn account_emails(&self) -> AccountEmails {
        AccountEmails {
            mailer: self.inner.mailer.clone(),
            lifetimes: self.inner.config.token_lifetimes,
        }
    }

    /// Creates an account and sends a verification link to its address, in one transaction.
    /// Then, by default, signs it in (409 when the address has an account). With
    /// `AUTH_REQUIRE_VERIFIED_EMAIL`, the answer is the same whether the address has an account
    /// or not, after the same work (a password hash, a transaction): the owner of an existing
    /// account gets a notice instead of the link.
    pub async fn register(
        &self,
        email: &str,
        password: String,
        full_name: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<Registered, AuthError> {
        let db = &self.inner.db;
        let hidden = self.inner.config.require_verified_email;
        let (email, full_name) = new_account_fields(email, &password, full_name)?;
        // Checked before hashing to spare the work, unless the answer must not tell.
        if !hidden && accounts::find_by_email(db, &email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let password_hash = self.inner.passwords.hash(password).await?;
        let mut tx = db.begin_write().await?;
        let user = match accounts::insert(&mut tx, &email, &password_hash, full_name, now()).await {
            Ok(user) => user,
            // The unique index settles races, and tells the hidden mode's owners apart.
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                drop(tx);
                if !hidden {
                    return Err(AuthError::EmailTaken);
                }
                let mut tx = db.begin_write().await?;
                let notice = mail::RegistrationAttempt {
                    brand: self.inner.mailer.branding().clone(),
                    forgot_link: self.link(mail::FORGOT_PASSWORD_PAGE),
                };
                send_notice(&mut tx, &email, &notice).await?;
                tx.commit().await?;
                return Ok(Registered::CheckEmail);
            }
            Err(error) => return Err(error.into()),
        };
        for hook in self.registration_hooks.iter() {
            hook(&mut tx, &user).await.map_err(AuthError::Internal)?;
        }
        let verification = AccountEmail::Verification {
            user_id: user.id.clone(),
        };
        send_account_email(&mut tx, &verification).await?;
        tx.commit().await?;
        tracing::info!(user = %user.id, "account registered");
        if hidden {
            return Ok(Registered::CheckEmail);
        }
        Ok(Registered::SignedIn(self.sign_in(user, user_agent).await?))
    }

    /// Creates an account after checking its email, password and name (422 with each problem;
    /// 409 when the email is taken), without any email: for operators' commands.
    pub async fn create_account(
        &self,
        email: &str,
        password: String,
        full_name: Option<&str>,
    ) -> Result<User, AuthError> {
        let db = &self.inner.db;
        let (email, full_name) = new_account_fields(email, &password, full_name)?;
        // Checked before hashing to spare the work; the unique index settles races.
        if accounts::find_by_email(db, &email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let password_hash = self.inner.passwords.hash(password).await?;
        let mut conn = db.pool().acquire().await?;
        accounts::insert(&mut conn, &email, &password_hash, full_name, now())
            .await
            .map_err(taken_or_database)
    }

    /// The account registered with `email` (compared as sign-in compares it), if any.
    pub async fn find_account(&self, email: &str) -> Result<Option<User>, AuthError> {
        let email = accounts::normalize_email(email);
        let account = accounts::find_by_email(&self.inner.db, &email).await?;
        Ok(account.map(|account| account.user))
    }

    /// Gives the account `user_id` the role `role` (operators only: see [`accounts::set_role`])
    /// and, in the same transaction, ends every session of it, with their refresh and access
    /// tokens: nothing issued under the old role carries the new one (an account someone
    /// registered in advance, then promoted, keeps none of their credentials). Returns how many
    /// sessions ended.
    pub async fn set_role(&self, user_id: &str, role: Role) -> Result<u64, AuthError> {
        let now = now();
        let mut tx = self.inner.db.begin_write().await?;
        if !accounts::set_role(&mut tx, user_id, role, now).await? {
            return Err(AuthError::UnknownUser);
        }
        let ended = session::end(&mut tx, user_id, None, now).await?;
        tx.commit().await?;
        tracing::info!(user = %user_id, role = role.as_str(), ended, "role changed; sessions ended");
        Ok(ended)
    }

    /// Signs in with an email and password. Every failure is the same
    /// [`AuthError::InvalidCredentials`] after the same amount of work.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        user_agent: Option<&str>,
    ) -> Result<SignedIn, AuthError> {
        let user = self.check_credentials(email, password).await?;
        self.require_verified(&user)?;
        self.sign_in(user, user_agent).await
    }

    /// The account an email and password belong to, for sign-ins that make their own session
    /// (the admin panel's). Every failure is the same [`AuthError::InvalidCredentials`].
    pub async fn check_credentials(
        &self,
        email: &str,
        password: String,
    ) -> Result<User, AuthError> {
        let db = &self.inner.db;
        let account = accounts::find_by_email(db, &accounts::normalize_email(email)).await?;
        let stored = account
            .as_ref()
            .map(|account| account.password_hash.clone());
        let verified = self.inner.passwords.verify(password, stored).await?;
        let (Verified::Match { rehash }, Some(account)) = (verified, account) else {
            return Err(AuthError::InvalidCredentials);
        };
        if account.disabled {
            return Err(AuthError::InvalidCredentials);
        }
        if let Some(new_hash) = rehash {
            let mut conn = db.pool().acquire().await?;
            accounts::set_password_hash(&mut conn, &account.user.id, &new_hash, now()).await?;
            tracing::info!(user = %account.user.id, "password hash upgraded");
        }
        Ok(account.user)
    }

    /// Exchanges a refresh token for new tokens. A token presented twice ends its session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError> {
        let db = &self.inner.db;
        let now = now();
        let exchange =
            session::exchange_refresh_token(db, refresh_token, now, self.policy()).await?;
        match exchange {
            Exchange::Accepted(active) => {
                self.require_verified(&active.user)?;
                self.tokens(&active.user.id, &active.session_id, now).await
            }
            Exchange::Reused | Exchange::Refused => Err(AuthError::RefreshRefused),
        }
    }

    /// Ends the session of `current`, which revokes its refresh tokens too.
    pub async fn logout(&self, current: &CurrentUser) -> Result<(), AuthError> {
        self.revoke_session(current, &current.session_id).await
    }

    /// The sessions of `current`'s user that are in force.
    pub async fn sessions(&self, current: &CurrentUser) -> Result<Vec<SessionInfo>, AuthError> {
        let sessions = session::list(
            &self.inner.db,
            &current.user.id,
            &current.session_id,
            now(),
            self.policy(),
        )
        .await?;
        Ok(sessions)
    }

    /// Ends one of `current`'s user's sessions; 404 when it has no such session in force.
    pub async fn revoke_session(
        &self,
        current: &CurrentUser,
        session_id: &str,
    ) -> Result<(), AuthError> {
        current.forbid_impersonation()?;
        let revoked = session::revoke(&self.inner.db, &current.user.id, session_id, now()).await?;
        if revoked {
            Ok(())
        } else {
            Err(AuthError::UnknownSession)
        }
    }

    /// Changes the password of `current`'s user and ends every other session.
    pub async fn change_password(
        &self,
        current: &CurrentUser,
        current_password: String,
        new_password: String,
    ) -> Result<(), AuthError> {
        current.forbid_impersonation()?;
        let db = &self.inner.db;
        let account = accounts::find_by_id(db, &current.user.id)
            .await?
            .ok_or(AuthError::AccountGone)?;
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
            return Err(AuthError::Invalid(fields));
        }
        let new_hash = self.inner.passwords.hash(new_password).await?;
        let now = now();
        let mut conn = db.pool().acquire().await?;
        accounts::set_password_hash(&mut conn, &current.user.id, &new_hash, now).await?;
        session::revoke_others(db, &current.user.id, &current.session_id, now).await?;
        tracing::info!(user = %current.user.id, "password changed; other sessions ended");
        Ok(())
    }

    /// Sends a new verification link to `current`'s address (409 when it is verified already).
    /// A request while one is waiting to be sent adds none.
    pub async fn resend_verification(&self, current: &CurrentUser) -> Result<(), AuthError> {
        if current.user.email_verified {
            return Err(AuthError::AlreadyVerified);
        }
        let mut tx = self.inner.db.begin_write().await?;
        let verification = AccountEmail::Verification {
            user_id: current.user.id.clone(),
        };
        send_account_email(&mut tx, &verification).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks the address a verification link was sent to verified, if the account still has it.
    pub async fn verify_email(&self, token: &str) -> Result<(), AuthError> {
        let now = now();
        let mut tx = self.inner.db.begin_write().await?;
        let holder = tokens::redeem(&mut tx, token, Purpose::VerifyEmail, now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if !accounts::mark_verified(&mut tx, &holder.user_id, &holder.email, now).await? {
            return Err(AuthError::InvalidToken);
        }
        tx.commit().await?;
        tracing::info!(user = %holder.user_id, "email address verified");
        Ok(())
    }

    /// Queues a password reset link for `email`. Looks at no account: the worker finds it (or
    /// not) later, so the request does the same work, and answers the same, whether the address
    /// has an account or not.
    pub async fn forgot_password(&self, email: &str) -> Result<(), AuthError> {
        let email = accounts::normalize_email(email);
        if !accounts::is_valid_email(&email) {
            return Ok(());
        }
        let mut tx = self.inner.db.begin_write().await?;
        send_account_email(&mut tx, &AccountEmail::PasswordReset { email }).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a new password with a reset link's token (the password policy of registration), ends
    /// every session of the account with their refresh tokens, and sends a notice. The address
    /// the link was sent to is verified by it.
    pub async fn reset_password(&self, token: &str, new_password: String) -> Result<(), AuthError> {
        if let Some(problem) = password::policy_violation(&new_password) {
            let fields = FieldErrors::from([("new_password".to_owned(), problem)]);
            return Err(AuthError::Invalid(fields));
        }
        let db = &self.inner.db;
        // Checked before hashing, so that a made-up token costs no hash.
        if tokens::peek(db, token, Purpose::ResetPassword, now())
            .await?
            .is_none()
        {
            return Err(AuthError::InvalidToken);
        }
        let new_hash = self.inner.passwords.hash(new_password).await?;
        let now = now();
        let mut tx = db.begin_write().await?;
        let holder = tokens::redeem(&mut tx, token, Purpose::ResetPassword, now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let user_id = &holder.user_id;
        if !accounts::mark_verified(&mut tx, user_id, &holder.email, now).await? {
            return Err(AuthError::InvalidToken);
        }
        accounts::set_password_hash(&mut tx, user_id, &new_hash, now).await?;
        let ended = session::end(&mut tx, user_id, None, now).await?;
        let notice = mail::PasswordChanged {
            brand: self.inner.mailer.branding().clone(),
            forgot_link: self.link(mail::FORGOT_PASSWORD_PAGE),
        };
        send_notice(&mut tx, &holder.email, &notice).await?;
        tx.commit().await?;
        tracing::info!(user = %user_id, ended, "password reset; every session ended");
        Ok(())
    }

    /// Starts moving `current`'s account to `new_email`: a confirmation link goes there, a
    /// notice to the current address; the address changes when the link is used
    /// ([`Auth::confirm_email_change`]).
    pub async fn change_email(
        &self,
        current: &CurrentUser,
        new_email: &str,
        current_password: String,
    ) -> Result<(), AuthError> {
        current.forbid_impersonation()?;
        let db = &self.inner.db;
        let account = accounts::find_by_id(db, &current.user.id)
            .await?
            .ok_or(AuthError::AccountGone)?;
        let new_email = accounts::normalize_email(new_email);
        let mut fields = FieldErrors::new();
        let verified = self
            .inner
            .passwords
            .verify(current_password, Some(account.password_hash))
            .await?;
        if verified == Verified::Mismatch {
            fields.insert("current_password".into(), "is incorrect".into());
        }
        if !accounts::is_valid_email(&new_email) {
            fields.insert("new_email".into(), "is not a valid email address".into());
        } else if new_email == account.user.email {
            fields.insert(
                "new_email".into(),
                "is the account's address already".into(),
            );
        }
        if !fields.is_empty() {
            return Err(AuthError::Invalid(fields));
        }
        let mut tx = db.begin_write().await?;
        let change = AccountEmail::EmailChange {
            user_id: account.user.id.clone(),
            new_email: new_email.clone(),
        };
        send_account_email(&mut tx, &change).await?;
        let notice = mail::EmailChangeRequested {
            brand: self.inner.mailer.branding().clone(),
            new_email,
            forgot_link: self.link(mail::FORGOT_PASSWORD_PAGE),
        };
        send_notice(&mut tx, &account.user.email, &notice).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves the account to the address an email change link was sent to, verified (409 when
    /// another account took it meanwhile; the link then stays unused).
    pub async fn confirm_email_change(&self, token: &str) -> Result<(), AuthError> {
        let now = now();
        let mut tx = self.inner.db.begin_write().await?;
        let holder = tokens::redeem(&mut tx, token, Purpose::ChangeEmail, now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let moved = accounts::set_email(&mut tx, &holder.user_id, &holder.email, now)
            .await
            .map_err(taken_or_database)?;
        if !moved {
            return Err(AuthError::InvalidToken);
        }
        tx.commit().await?;
        tracing::info!(user = %holder.user_id, "email address changed");
        Ok(())
    }

    /// Refuses `user` when addresses must be verified (`AUTH_REQUIRE_VERIFIED_EMAIL`) and theirs
    /// is not.
    fn require_verified(&self, user: &User) -> Result<(), AuthError> {
        if self.inner.config.require_verified_email && !user.email_verified {
            return Err(AuthError::EmailUnverified);
        }
        Ok(())
    }

    /// The product's page `path`, under `APP_BASE_URL`.
    fn link(&self, path: &str) -> String {
        self.inner.mailer.branding().link(path)
    }

    /// The user the request is authenticated as: by its Bearer token if it has one, else by its
    /// session cookie (which must pass the CSRF check for unsafe methods). `None` when it carries
    /// neither or they are not valid.
    pub async fn authenticate(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<CurrentUser>, AuthError> {
        let inner = &*self.inner;
        let now = now();
        if let Some(token) = bearer_token(headers) {
            let claims = match inner.keys.verify(token, &self.expected(), now) {
                Ok(claims) => claims,
                // Genuine, but customer-facing: say what this service takes instead.
                Err(token::TokenError::Audience) if self.kind == Kind::Staff => {
                    return Err(AuthError::StaffTokenRequired);
                }
                Err(reason) => {
                    tracing::debug!(%reason, "access token refused");
                    return Ok(None);
                }
            };
            let active = session::find_by_id(&inner.db, &claims.sid, now, self.policy()).await?;
            return Ok(active
                .filter(|active| active.user.id == claims.sub)
                .map(|active| CurrentUser {
                    user: active.user,
                    session_id: active.session_id,
                    impersonator: claims.act,
                    org_id: claims.org_id,
                }));
        }
        let Some(token) = self.session_token(headers) else {
            return Ok(None);
        };
        if !csrf::allows(method, headers, &inner.trusted_origins) {
            return Err(AuthError::CrossSiteRequest);
        }
        let active = session::find_by_token(&inner.db, token, now, self.policy()).await?;
        Ok(active.map(|active| CurrentUser {
            user: active.user,
            session_id: active.session_id,
            impersonator: None,
            org_id: None,
        }))
    }

    /// Starts an impersonation of `user` by staff member `actor`: a customer-facing session of
    /// the user's that ends after `ttl` seconds (at most [`MAX_IMPERSONATION_SECS`]) and one
    /// access token in it, naming the actor in its `act` claim. No refresh token and no cookie:
    /// it cannot outlive the token, and revoking the session ends it at once. The customer's
    /// session list shows it as a support session, without naming the staff member: who acted
    /// is for the audit log, not for whoever holds the customer's account.
    pub async fn impersonate(
        &self,
        user: &User,
        actor: Actor,
        ttl: i64,
    ) -> Result<SessionToken, AuthError> {
        let ttl = ttl.clamp(1, MAX_IMPERSONATION_SECS);
        let now = now();
        let policy = Policy {
            kind: Kind::Customer,
            timeouts: Timeouts {
                idle: ttl,
                absolute: ttl,
            },
        };
        let label = Some(IMPERSONATION_LABEL);
        let (session_id, _) = session::start(&self.inner.db, &user.id, label, now, policy)
            .await
            .map_err(AuthError::Internal)?;
        let expected = self.expected_for(Kind::Customer);
        let mut claims = Claims::access(&expected, &user.id, &session_id, now, ttl);
        claims.act = Some(actor);
        Ok(SessionToken {
            session_id,
            access_token: self.inner.keys.sign(&claims),
            token_type: "bearer",
            expires_in: ttl,
        })
    }

    /// Starts a session for `user`, who has proven who they are, with one access token and no
    /// refresh token: for staff tokens (on a [`Auth::for_staff`] value), which programs get by
    /// signing in again when the token expires, so that the staff timeouts stay the only way a
    /// staff session lasts. The token lives `AUTH_ACCESS_TOKEN_TTL_SECS`, at most the session.
    pub async fn start_token_session(
        &self,
        user: &User,
        user_agent: Option<&str>,
    ) -> Result<SessionToken, AuthError> {
        let policy = self.policy();
        let now = now();
        let (session_id, _) = session::start(&self.inner.db, &user.id, user_agent, now, policy)
            .await
            .map_err(AuthError::Internal)?;
        let ttl = self
            .inner
            .config
            .access_token_ttl
            .min(policy.timeouts.absolute);
        let claims = Claims::access(&self.expected(), &user.id, &session_id, now, ttl);
        Ok(SessionToken {
            session_id,
            access_token: self.inner.keys.sign(&claims),
            token_type: "bearer",
            expires_in: ttl,
        })
    }

    /// An access token in `current`'s session that carries the organization `org_id` and the
    /// caller's `role` there (the `orgs` module's switch, after checking the membership), as an
    /// impersonation's token keeps its actor. No refresh token: a refresh issues tokens without
    /// an organization, and the client switches again.
    pub fn switch_organization(
        &self,
        current: &CurrentUser,
        org_id: &str,
        role: &str,
    ) -> SessionToken {
        let now = now();
        let ttl = self.inner.config.access_token_ttl;
        let user_id = &current.user.id;
        let mut claims = Claims::access(&self.expected(), user_id, &current.session_id, now, ttl);
        claims.act = current.impersonator.clone();
        claims.org_id = Some(org_id.to_owned());
        claims.org_role = Some(role.to_owned());
        SessionToken {
            session_id: current.session_id.clone(),
            access_token: self.inner.keys.sign(&claims),
            token_type: "bearer",
            expires_in: ttl,
        }
    }

    /// Starts a browser session for `user`, who has proven who they are: its id and the
    /// `Set-Cookie` value that carries it. No tokens: for sign-in forms (the admin panel's).
    pub async fn start_session(
        &self,
        user: &User,
        user_agent: Option<&str>,
    ) -> Result<(String, HeaderValue), AuthError> {
        let policy = self.policy();
        let (session_id, cookie_token) =
            session::start(&self.inner.db, &user.id, user_agent, now(), policy)
                .await
                .map_err(AuthError::Internal)?;
        // A staff session's cookie has no `Max-Age`: the browser forgets it when it closes.
        let max_age = (self.kind == Kind::Customer).then_some(policy.timeouts.absolute);
        Ok((session_id, self.cookie(&cookie_token, max_age)))
    }

    /// The session cookie's token in `headers`, if the request carries one: what CSRF form
    /// tokens are derived from ([`csrf::form_token`]).
    pub fn session_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie_value(headers, &self.cookie_name)
    }

    /// Whether cookies must be `Secure` (`AUTH_COOKIE_SECURE`), for the other cookies a service
    /// sets.
    pub fn cookie_secure(&self) -> bool {
        self.inner.config.cookie_secure
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        self.cookie("", Some(0))
    }

    async fn sign_in(&self, user: User, user_agent: Option<&str>) -> Result<SignedIn, AuthError> {
        let (session_id, cookie) = self.start_session(&user, user_agent).await?;
        let tokens = self.tokens(&user.id, &session_id, now()).await?;
        Ok(SignedIn {
            user,
            tokens,
            cookie,
        })
    }

    /// A new access token and a new refresh token in `session_id`.
    async fn tokens(&self, user_id: &str, session_id: &str, now: i64) -> Result<Tokens, AuthError> {
        let ttl = self.inner.config.access_token_ttl;
        let claims = Claims::access(&self.expected(), user_id, session_id, now, ttl);
        let refresh_token = session::issue_refresh_token(&self.inner.db, session_id, now)
            .await
            .map_err(AuthError::Internal)?;
        Ok(Tokens {
            access_token: self.inner.keys.sign(&claims),
            token_type: "bearer",
            expires_in: ttl,
            refresh_token,
        })
    }

    /// The kind of sessions this value deals in, with the timeouts of that kind.
    fn policy(&self) -> Policy {
        let config = &self.inner.config;
        let timeouts = match self.kind {
            Kind::Customer => config.timeouts,
            Kind::Staff => config.staff_timeouts,
        };
        Policy {
            kind: self.kind,
            timeouts,
        }
    }

    /// What the tokens this value accepts and issues must say.
    fn expected(&self) -> Expected<'_> {
        self.expected_for(self.kind)
    }

    fn expected_for(&self, kind: Kind) -> Expected<'_> {
        let config = &self.inner.config;
        Expected {
            issuer: &config.issuer,
            audience: match kind {
                Kind::Customer => &config.audience,
                Kind::Staff => &config.staff_audience,
            },
        }
    }

    /// The session cookie, written by hand: the `cookie` crate would bring in `time` and five
    /// more crates for one header. The token is base64url, which needs no quoting. Without
    /// `max_age`, a session cookie, which the browser forgets when it closes.
    fn cookie(&self, token: &str, max_age: Option<i64>) -> HeaderValue {
        let secure = if self.inner.config.cookie_secure {
            "; Secure"
        } else {
            ""
        };
        let max_age = max_age.map_or(String::new(), |secs| format!("; Max-Age={secs}"));
        let cookie = format!(
            "{}={token}; HttpOnly; SameSite=Lax; Path=/{max_age}{secure}",
            self.cookie_name
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

/// Why an account or authentication operation failed, in the domain's terms. How each is
/// answered over HTTP is the service edge's business (`crate::error::auth`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Some inputs break the account rules, each explained by field name.
    #[error("invalid fields: {0:?}")]
    Invalid(FieldErrors),
    /// Another account already has this email.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The email is unknown, the password wrong or the account disabled: one outcome, so that
    /// callers cannot tell which accounts exist.
    #[error("the email or password is incorrect")]
    InvalidCredentials,
    /// The refresh token is unknown, expired, revoked or presented twice.
    #[error("the refresh token is not valid")]
    RefreshRefused,
    /// The signed-in account no longer exists.
    #[error("the account no longer exists")]
    AccountGone,
    /// No account has this id.
    #[error("user not found")]
    UnknownUser,
    /// The user has no session in force with this id.
    #[error("session not found")]
    UnknownSession,
    /// An impersonator tried what only the user may do (see
    /// [`CurrentUser::forbid_impersonation`]).
    #[error("not allowed while impersonating")]
    Impersonating,
    /// A cookie-authenticated request failed the CSRF check.
    #[error("the request failed the CSRF check")]
    CrossSiteRequest,
    /// A genuine customer-facing token, presented to the back office.
    #[error("a staff token is required")]
    StaffTokenRequired,
    /// Addresses must be verified (`AUTH_REQUIRE_VERIFIED_EMAIL`), and this account's is not.
    #[error("the account's email address is not verified")]
    EmailUnverified,
    /// The address is verified already: there is nothing to send.
    #[error("the email address is verified already")]
    AlreadyVerified,
    /// The token of an account email's link is unknown, used, expired, for another purpose, or
    /// for an address the account no longer has.
    #[error("the link is not valid")]
    InvalidToken,
    /// Every password hashing thread is busy and their queue is full; worth retrying after
    /// this many seconds.
    #[error("password hashing is busy; retry after {0} s")]
    Busy(u64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Anything else: a bug or an infrastructure failure.
    #[error(transparent)]
    Internal(BoxError),
}

/// The fields of a new account, checked: the email normalized and the name trimmed (empty:
/// none), or each problem by field name.
fn new_account_fields<'a>(
    email: &str,
    password: &str,
    full_name: Option<&'a str>,
) -> Result<(String, Option<&'a str>), AuthError> {
    let email = accounts::normalize_email(email);
    let full_name = full_name.map(str::trim).filter(|name| !name.is_empty());
    let mut fields = FieldErrors::new();
    if !accounts::is_valid_email(&email) {
        fields.insert("email".into(), "is not a valid email address".into());
    }
    if let Some(problem) = password::policy_violation(password) {
        fields.insert("password".into(), problem);
    }
    if let Some(problem) = full_name.and_then(full_name_violation) {
        fields.insert("full_name".into(), problem);
    }
    if fields.is_empty() {
        Ok((email, full_name))
    } else {
        Err(AuthError::Invalid(fields))
    }
}

/// [`AuthError::EmailTaken`] for a write that broke the unique index of `users.email`.
fn taken_or_database(error: sqlx::Error) -> AuthError {
    match &error {
        sqlx::Error::Database(db_error) if db_error.is_unique_violation() => AuthError::EmailTaken,
        _ => AuthError::Database(error),
    }
}

/// Enqueues an account email (minted and sent by [`AccountEmails`]) on `conn`, the transaction
/// of the change that asks for it. A verification or a reset for the same account or address
/// that is still waiting is not enqueued twice.
async fn send_account_email(
    conn: &mut sqlx::AnyConnection,
    email: &AccountEmail,
) -> Result<(), AuthError> {
    let job =
        NewJob::of::<AccountEmails>(email).map_err(|error| AuthError::Internal(error.into()))?;
    let job = match email {
        AccountEmail::Verification { user_id } => job.unique(format!("auth.verify:{user_id}")),
        AccountEmail::PasswordReset { email } => job.unique(format!("auth.reset:{email}")),
        AccountEmail::EmailChange { .. } => job,
    };
    jobs::enqueue(conn, &job).await?;
    Ok(())
}

/// Renders `message` for `to` and enqueues it (`email.send`) on `conn`.
async fn send_notice(
    conn: &mut sqlx::AnyConnection,
    to: &str,
    message: &impl Message,
) -> Result<(), AuthError> {
    let rendered = Email::render(to, message).map_err(|error| AuthError::Internal(error.into()))?;
    email::enqueue(conn, &rendered)
        .await
        .map_err(|error| match error {
            email::EmailError::Database(error) => AuthError::Database(error),
            other => AuthError::Internal(other.into()),
        })
}

/// Why a full name is refused, if it is.
pub fn full_name_violation(full_name: &str) -> Option<String> {
    (full_name.chars().count() > MAX_FULL_NAME_CHARS)
        .then(|| format!("must be at most {MAX_FULL_NAME_CHARS} characters long"))
}

/// What impersonation sessions are called in the customer's session list (their `user_agent`).
const IMPERSONATION_LABEL: &str = "support session";

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
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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
