//! Webhook operations of the back office (module `admin/webhooks`): replays on behalf of a staff
//! member, audited, and the dashboard's figures of failing events. Reading the event log and an
//! event is the store's own ([`crate::webhooks::store::logs`], [`crate::webhooks::store::event`]).
//!
//! The admin service works on the webhooks store of the shared database, as the webhooks
//! service's operations API does: a replay queues the event's `webhooks.process` job again, and
//! a worker of the webhooks service takes it (on PostgreSQL at once, woken by the queue's
//! notification; on SQLite at its next poll, `JOBS_POLL_INTERVAL_MS`). The admin service does
//! not read `WEBHOOKS_MAX_ATTEMPTS`: its replays get the default limit, or the setting when it
//! is lower (the webhooks service dead-letters an event at the setting's limit).

use sqlx::Row;

use crate::admin::metrics::Metric;
use crate::admin::{AdminError, Permission, Staff};
use crate::db::Database;
use crate::webhooks::process::DEFAULT_MAX_ATTEMPTS;
use crate::webhooks::store;
use crate::webhooks::{Status, WebhookError, now_ms};

/// Why a replay from the back office failed: the staff member may not replay, or the store
/// refused (see [`WebhookError`]).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
}

/// Queues event `id` for processing again on behalf of `staff` (an admin: 403 otherwise),
/// audited (`webhook.replay`) in the replay's transaction. How many times the event has been
/// replayed, this one included; 404 when unknown, 409 when it already waits for a worker
/// (pending, or retrying).
pub async fn replay(db: &Database, staff: &Staff, id: &str) -> Result<i64, ReplayError> {
    staff.require(Permission::Manage)?;
    let replay = store::replay(db, id, staff.actor(), DEFAULT_MAX_ATTEMPTS, now_ms())
        .await
        .map_err(WebhookError::Database)?;
    Ok(replay.into_result()?)
}

/// Queues every dead-lettered event for processing again on behalf of `staff` (an admin),
/// audited (`webhook.replay_all`, with the count, also when it is 0). How many were queued.
pub async fn replay_dead_letter(db: &Database, staff: &Staff) -> Result<u64, ReplayError> {
    staff.require(Permission::Manage)?;
    let queued = store::replay_all(
        db,
        Status::DeadLetter,
        staff.actor(),
        DEFAULT_MAX_ATTEMPTS,
        now_ms(),
    )
    .await
    .map_err(WebhookError::Database)?;
    Ok(queued)
}

/// How many events are failing, by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    /// An attempt failed and another is scheduled.
    pub retrying: i64,
    /// Out of attempts: waits for a replay.
    pub dead_letter: i64,
}

/// The events failing now (answered by the partial index of the failing events: a failing
/// event always has its `last_error`).
pub async fn failing(db: &Database) -> sqlx::Result<Failing> {
    let row = sqlx::query(
        "SELECT coalesce(sum(CASE WHEN status = 'retrying' THEN 1 ELSE 0 END), 0) AS retrying, \
             coalesce(sum(CASE WHEN status = 'dead_letter' THEN 1 ELSE 0 END), 0) AS dead_letter \
         FROM webhook_events \
         WHERE last_error IS NOT NULL AND status IN ('retrying', 'dead_letter')",
    )
    .fetch_one(db.pool())
    .await?;
    Ok(Failing {
        retrying: row.try_get("retrying")?,
        dead_letter: row.try_get("dead_letter")?,
    })
}

/// The dashboard's figures: events retrying and events dead-lettered, each linking to the
/// panel's list of them.
pub async fn metrics(db: &Database) -> sqlx::Result<Vec<Metric>> {
    let counts = failing(db).await?;
    Ok(vec![
        Metric::count(
            "webhooks_retrying",
            "Webhook events retrying",
            counts.retrying,
        )
        .with_link("/admin/webhooks?status=retrying"),
        Metric::count(
            "webhooks_dead_letter",
            "Webhook events dead-lettered",
            counts.dead_letter,
        )
        .with_link("/admin/webhooks?status=dead_letter"),
    ])
}
