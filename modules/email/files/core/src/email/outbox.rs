//! The development outbox: where messages go when no `SMTP_URL` is set (development only; a
//! production service refuses to start without it). Each message is a row of `email_outbox`,
//! which the admin panel's Outbox page lists, and one log line at info with the target
//! [`LOG_TARGET`], its subject, recipient and link, which `saaskit dev` shows as one line per
//! message.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Email;
use crate::db::Database;

/// The `tracing` target of the line each stored message is logged with. `saaskit dev`
/// recognises it: keep it, and keep its fields (`to`, `link`).
pub const LOG_TARGET: &str = "outbox";

/// A message of the outbox.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxMessage {
    pub id: String,
    pub to: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl OutboxMessage {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            to: row.try_get("to_address")?,
            from: row.try_get("from_address")?,
            subject: row.try_get("subject")?,
            text: row.try_get("text_body")?,
            html: row.try_get("html_body")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// Stores `email` as message `id`, once: a job that runs again finds it there.
pub async fn store(db: &Database, id: &str, from: &str, email: &Email) -> Result<(), sqlx::Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        });
    let stored = sqlx::query(
        "INSERT INTO email_outbox \
         (id, to_address, from_address, subject, text_body, html_body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(&email.to)
    .bind(from)
    .bind(&email.subject)
    .bind(&email.text)
    .bind(&email.html)
    .bind(now)
    .execute(db.pool())
    .await?;
    if stored.rows_affected() > 0 {
        tracing::info!(
            target: LOG_TARGET,
            to = %email.to,
            link = %email.link().unwrap_or("-"),
            "{}",
            email.subject
        );
    }
    Ok(())
}

/// The newest `limit` messages, newest first.
pub async fn latest(db: &Database, limit: i64) -> Result<Vec<OutboxMessage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, to_address, from_address, subject, text_body, html_body, created_at \
         FROM email_outbox ORDER BY created_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(OutboxMessage::from_row).collect()
}

/// The message `id`, if the outbox has it.
pub async fn find(db: &Database, id: &str) -> Result<Option<OutboxMessage>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, to_address, from_address, subject, text_body, html_body, created_at \
         FROM email_outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(OutboxMessage::from_row).transpose()
}
