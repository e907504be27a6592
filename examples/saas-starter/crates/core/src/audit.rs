//! The audit log: who did what to which target, why, from where and when. Rows are only ever
//! inserted (the migration's triggers refuse updates and deletes); every audited action writes
//! one in the same transaction as its effect, so neither exists without the other.
//!
//! The back office (module `admin/core`) audits its staff's actions and reads the log; the
//! webhooks service's operations API audits replays, by staff or by its internal API key. This
//! module is what they share: the table and [`record`].

use std::net::IpAddr;

use sqlx::{Any, Transaction};

/// The start of an internal API key's actor id: `api-key:<the key's configured name>`.
pub const API_KEY_PREFIX: &str = "api-key:";

/// Who an entry names: a user, or an internal tool by the name of its API key.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The user's id, or [`API_KEY_PREFIX`] and the name for an internal API key.
    pub user_id: &'a str,
    /// The user's email as it is now, or the API key's name.
    pub email: &'a str,
    pub client_ip: Option<IpAddr>,
}

/// One action to record.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    /// What was done, `<target type>.<verb>`: `customer.disable`, `webhook.replay`, ...
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub reason: Option<&'a str>,
    /// A JSON object with anything else worth keeping.
    pub details: Option<&'a str>,
}

/// Appends `action` by `actor` at `now`, in `tx`: the caller commits it with the action's effect.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    actor: Actor<'_>,
    action: Action<'_>,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, created_at, actor_id, actor_email, action, target_type, \
         target_id, reason, client_ip, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(now)
    .bind(actor.user_id)
    .bind(actor.email)
    .bind(action.action)
    .bind(action.target_type)
    .bind(action.target_id)
    .bind(action.reason)
    .bind(actor.client_ip.map(|ip| ip.to_string()))
    .bind(action.details)
    .execute(&mut **tx)
    .await?;
    tracing::info!(
        actor = actor.user_id,
        action = action.action,
        target = action.target_id,
        "audited"
    );
    Ok(())
}
