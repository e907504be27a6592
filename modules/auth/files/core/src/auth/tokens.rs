//! The tokens of the account emails: address verification, password reset, email change.
//!
//! A token is 32 random bytes (base64url) that exists only in the email it is sent in: the
//! database keeps its SHA-256, so a leaked table or backup lets nobody verify, reset or change
//! anything. A token has one purpose (a verification token does not reset a password), is bound
//! to the address it was sent to, expires, and works once. Minting a token replaces the user's
//! unused tokens of the same purpose: only the latest link of each kind works.
//!
//! Tokens are minted by the job that sends them (`auth.account_email`, see [`super::mail`]), not
//! by the request that asked for the email, so that the token is never in a job's payload either.

use sqlx::{AnyConnection, Row};

use super::session::{hash_token, new_token};
use crate::db::Database;
use crate::error::BoxError;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Proves that the account's address is its owner's.
    VerifyEmail,
    /// Sets a new password without the old one.
    ResetPassword,
    /// Moves the account to the address the token was sent to.
    ChangeEmail,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
        }
    }
}

/// Whose a valid token is, and the address it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub user_id: String,
    pub email: String,
}

/// Mints a token of `purpose` for `user_id`, sent to `email`, valid `ttl` seconds, on `conn`
/// (the transaction that commits it), in place of the user's unused tokens of that purpose.
pub async fn mint(
    conn: &mut AnyConnection,
    user_id: &str,
    purpose: Purpose,
    email: &str,
    now: i64,
    ttl: i64,
) -> Result<String, BoxError> {
    sqlx::query("DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2")
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(&mut *conn)
        .await?;
    let token = new_token()?;
    sqlx::query(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(hash_token(&token))
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(email)
    .bind(now)
    .bind(now.saturating_add(ttl))
    .execute(&mut *conn)
    .await?;
    Ok(token)
}

/// The holder of `token` if it is an unused, unexpired token of `purpose`; it stays unused (for
/// checks before slow work, such as hashing a new password).
pub async fn peek(
    db: &Database,
    token: &str,
    purpose: Purpose,
    now: i64,
) -> Result<Option<Holder>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT user_id, email FROM account_tokens \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(hash_token(token))
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| holder(&row)).transpose()
}

/// Uses `token` on `conn`, if it is an unused, unexpired token of `purpose`, and returns its
/// holder. Once: of two concurrent uses, one gets the holder, the other `None`. A token of
/// another purpose is left as it was.
pub async fn redeem(
    conn: &mut AnyConnection,
    token: &str,
    purpose: Purpose,
    now: i64,
) -> Result<Option<Holder>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE account_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
         RETURNING user_id, email",
    )
    .bind(now)
    .bind(hash_token(token))
    .bind(purpose.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(|row| holder(&row)).transpose()
}

fn holder(row: &sqlx::any::AnyRow) -> Result<Holder, sqlx::Error> {
    Ok(Holder {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
    })
}
