//! The queue's housekeeping: `jobs.purge` deletes the jobs that succeeded more than
//! `JOBS_RETENTION_DAYS` ago, with their payloads, on the schedule `JOBS_PURGE_SCHEDULE` (hourly
//! by default). Dead jobs stay until an operator retries or discards them.

use serde::{Deserialize, Serialize};

use super::worker::now_ms;
use super::{Job, JobContext, JobError, NewJob, store};

/// The name of the purge's schedule.
pub const SCHEDULE: &str = "jobs.purge";

/// Jobs deleted per transaction: short transactions, so that workers are not held up.
const CHUNK: i64 = 1_000;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurgePayload {
    /// Jobs that succeeded longer ago than this are deleted; 0 deletes every succeeded job.
    pub retention_days: u64,
}

/// Deletes old succeeded jobs.
pub struct Purge;

impl Purge {
    /// The job the schedule enqueues.
    pub fn job(retention_days: u64) -> NewJob {
        NewJob::of::<Self>(&PurgePayload { retention_days })
            .expect("a struct of integers serializes")
    }
}

impl Job for Purge {
    const KIND: &'static str = "jobs.purge";
    /// The next period's purge catches up: no point retrying this one for long.
    const MAX_ATTEMPTS: i64 = 3;
    type Payload = PurgePayload;

    async fn run(&self, ctx: &JobContext, payload: PurgePayload) -> Result<(), JobError> {
        let retention_ms = i64::try_from(payload.retention_days)
            .unwrap_or(i64::MAX)
            .saturating_mul(DAY_MS);
        let before_ms = now_ms().saturating_sub(retention_ms);
        let mut purged = 0;
        loop {
            let mut tx = ctx.db().begin_write().await?;
            let deleted = store::purge_succeeded(&mut tx, before_ms, CHUNK).await?;
            tx.commit().await?;
            purged += deleted;
            if deleted < CHUNK.unsigned_abs() {
                break;
            }
        }
        tracing::info!(
            purged,
            retention_days = payload.retention_days,
            "purged succeeded jobs"
        );
        Ok(())
    }
}
