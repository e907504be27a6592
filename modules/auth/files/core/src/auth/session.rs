//! Server-side sessions and the refresh tokens issued in them.
//!
//! A session starts at sign-in and is the *family* of the refresh tokens issued in it: the
//! session cookie and every refresh token stop working together when the session ends (logout,
//! revocation, password change, idle or absolute timeout, or reuse of a refresh token).
//! Only SHA-256 hashes of the cookie token and of refresh tokens are stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use super::accounts::{User, user_columns};
use crate::db::{Database, Param};
use crate::error::BoxError;

/// `last_seen_at` is written at most this often per session (and at most every tenth of the idle
/// timeout, for staff's short one): often enough for the idle timeout to be kept to within a
/// tenth, rarely enough that reads do not turn into writes.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// A new random token: 256 bits from the operating system, base64url (43 characters).
pub fn new_token() -> Result<String, BoxError> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(BASE64URL.encode(bytes))
}

/// What the database stores of a token.
pub fn hash_token(token: &str) -> String {
    BASE64URL.encode(Sha256::digest(token.as_bytes()))
}

/// The timeouts sessions end by, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: i64,
    pub absolute: i64,
}

/// Whom a session is for, stored with it (`sessions.kind`): a customer-facing one (the api's
/// sign-ins, impersonations) or a staff one (the admin panel's, staff tokens). A service looks
/// sessions up in its own kind only, so that a credential of one kind is never taken for the
/// other: a customer-facing session of a staff account cannot reach the back office.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Customer,
    Staff,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Staff => "staff",
        }
    }
}

/// The sessions a service deals in: their kind and the timeouts they end by.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub kind: Kind,
    pub timeouts: Timeouts,
}

/// A session as its owner sees it in `GET /api/auth/sessions`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct SessionInfo {
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    /// Whether this is the session of the request that lists them.
    pub current: bool,
}

/// A session that is in force, with its user.
pub struct Active {
    pub session_id: String,
    pub user: User,
}

/// Starts a session of `policy`'s kind for `user_id`; returns its id and the token for the
/// cookie.
pub async fn start(
    db: &Database,
    user_id: &str,
    user_agent: Option<&str>,
    now: i64,
    policy: Policy,
) -> Result<(String, String), BoxError> {
    let id = uuid::Uuid::now_v7().to_string();
    let token = new_token()?;
    sqlx::query(
        "INSERT INTO sessions \
         (id, user_id, token_hash, user_agent, created_at, last_seen_at, expires_at, kind) \
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(hash_token(&token))
    .bind(user_agent)
    .bind(now)
    .bind(now + policy.timeouts.absolute)
    .bind(policy.kind.as_str())
    .execute(db.pool())
    .await?;
    Ok((id, token))
}

/// The condition a session and its user must meet to be in force: `$2` is the current time,
/// `$3` the oldest `last_seen_at` the idle timeout allows and `$4` the session's kind. A macro
/// so that queries can `concat!` it into literals (see [`user_columns`]).
macro_rules! in_force {
    () => {
        "sessions.revoked_at IS NULL AND sessions.expires_at > $2 \
         AND sessions.last_seen_at > $3 AND sessions.kind = $4 AND users.disabled_at IS NULL"
    };
}

/// Selects a session in force with its user; `$1` is compared by [`find`]'s callers. The
/// session's columns are aliased: `id` and the like name the user's (see [`user_columns`]).
macro_rules! select_active {
    ($condition:literal) => {
        concat!(
            "SELECT sessions.id AS session_id, sessions.last_seen_at AS session_last_seen_at, ",
            user_columns!(),
            " FROM sessions JOIN users ON users.id = sessions.user_id WHERE ",
            $condition,
            " AND ",
            in_force!()
        )
    };
}

/// The session in force whose cookie token is `token`.
pub async fn find_by_token(
    db: &Database,
    token: &str,
    now: i64,
    policy: Policy,
) -> Result<Option<Active>, sqlx::Error> {
    let query = select_active!("sessions.token_hash = $1");
    find(db, query, &hash_token(token), now, policy).await
}

/// The session in force with `id` (from an access token's `sid`).
pub async fn find_by_id(
    db: &Database,
    id: &str,
    now: i64,
    policy: Policy,
) -> Result<Option<Active>, sqlx::Error> {
    find(db, select_active!("sessions.id = $1"), id, now, policy).await
}

/// Runs `query` (from [`select_active`]) for `value`, and notes that the session was used.
/// Every authenticated request comes through here, so the read takes the database's fast path
/// ([`Database::read_row`]), which sees a revocation committed anywhere before it starts.
async fn find(
    db: &Database,
    query: &'static str,
    value: &str,
    now: i64,
    policy: Policy,
) -> Result<Option<Active>, sqlx::Error> {
    let idle = policy.timeouts.idle;
    let params = [
        Param::Text(value),
        Param::Int(now),
        Param::Int(now - idle),
        Param::Text(policy.kind.as_str()),
    ];
    let found = db
        .read_row(query, &params, |row| {
            let session_id = row.text("session_id")?;
            let last_seen_at = row.int("session_last_seen_at")?;
            Ok((session_id, last_seen_at, User::from_row(row)?))
        })
        .await?;
    let Some((session_id, last_seen_at, user)) = found else {
        return Ok(None);
    };
    if now - last_seen_at >= TOUCH_INTERVAL_SECS.min(idle / 10) {
        touch(db, &session_id, now).await?;
    }
    Ok(Some(Active { session_id, user }))
}

async fn touch(db: &Database, session_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
        .bind(now)
        .bind(session_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Ends the session `id` of `user_id`; false when the user has no such session in force.
pub async fn revoke(db: &Database, user_id: &str, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE sessions SET revoked_at = $1 \
         WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Ends sessions of `user_id`, of every kind, in `conn` (a transaction, usually, with what
/// requires it): the one with id `only`, or all of them. Returns how many ended.
pub async fn end(
    conn: &mut AnyConnection,
    user_id: &str,
    only: Option<&str>,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE sessions SET revoked_at = $1 \
         WHERE user_id = $2 AND ($3 IS NULL OR id = $3) AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(only)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// Ends every session of `user_id` but `keep`.
pub async fn revoke_others(
    db: &Database,
    user_id: &str,
    keep: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1 \
         WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(keep)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The sessions of `user_id` of `policy`'s kind in force, newest first; `current` marks the
/// caller's.
pub async fn list(
    db: &Database,
    user_id: &str,
    current: &str,
    now: i64,
    policy: Policy,
) -> Result<Vec<SessionInfo>, sqlx::Error> {
    let query = concat!(
        "SELECT sessions.id, sessions.created_at, sessions.last_seen_at, sessions.expires_at, \
         sessions.user_agent FROM sessions JOIN users ON users.id = sessions.user_id \
         WHERE sessions.user_id = $1 AND ",
        in_force!(),
        " ORDER BY sessions.created_at DESC"
    );
    let rows = sqlx::query(query)
        .bind(user_id)
        .bind(now)
        .bind(now - policy.timeouts.idle)
        .bind(policy.kind.as_str())
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            Ok(SessionInfo {
                current: id == current,
                id,
                created_at: row.try_get("created_at")?,
                last_seen_at: row.try_get("last_seen_at")?,
                expires_at: row.try_get("expires_at")?,
                user_agent: row.try_get("user_agent")?,
            })
        })
        .collect()
}

/// Issues a new refresh token in `session_id`.
pub async fn issue_refresh_token(
    db: &Database,
    session_id: &str,
    now: i64,
) -> Result<String, BoxError> {
    let token = new_token()?;
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)",
    )
    .bind(hash_token(&token))
    .bind(session_id)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(token)
}

/// What presenting a refresh token led to.
pub enum Exchange {
    /// The token was valid and is now used: issue new tokens in this session.
    Accepted(Active),
    /// The token had been used before: its session has been revoked.
    Reused,
    /// Unknown token, or its session is no longer in force.
    Refused,
}

/// Marks `token` used, once: of two concurrent exchanges of the same token, the second sees it
/// used and is treated as a reuse, which is what it is.
pub async fn exchange_refresh_token(
    db: &Database,
    token: &str,
    now: i64,
    policy: Policy,
) -> Result<Exchange, sqlx::Error> {
    let hash = hash_token(token);
    let claimed = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND used_at IS NULL RETURNING session_id",
    )
    .bind(now)
    .bind(&hash)
    .fetch_optional(db.pool())
    .await?;
    if let Some(row) = claimed {
        let session_id: String = row.try_get("session_id")?;
        return Ok(match find_by_id(db, &session_id, now, policy).await? {
            Some(active) => Exchange::Accepted(active),
            None => Exchange::Refused,
        });
    }
    let used = sqlx::query("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(&hash)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = used else {
        return Ok(Exchange::Refused);
    };
    let session_id: String = row.try_get("session_id")?;
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(&session_id)
        .execute(db.pool())
        .await?;
    tracing::warn!(session = %session_id, "refresh token reused; session revoked");
    Ok(Exchange::Reused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();

        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a).len(), 43);
        assert_ne!(hash_token(&a), a);
    }
}
