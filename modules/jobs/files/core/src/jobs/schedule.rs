//! Recurring jobs: a job enqueued at each time of a cron expression, once per time across every
//! instance of every service that has the schedule.
//!
//! Each schedule has a row in `job_schedules` holding the next time it fires. When that time
//! comes, every instance's scheduler tries to move it on to the following time, conditionally on
//! the value it read, in a transaction that also enqueues the job: one instance wins, the others
//! find the row moved and enqueue nothing. The job's unique key, `<schedule>@<time>`, names the
//! period it is for. An instance that was down when a time came fires it once when it is back,
//! not once per missed time.
//!
//! Expressions have 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first),
//! in UTC, or a nickname (`@hourly`, `@daily`, ...), parsed by `croner`: `0 15 * * * *` is 15
//! minutes past every hour. In `.env`, quote an expression: it holds spaces.

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use tokio::sync::watch;

use super::worker::now_ms;
use super::{Jobs, NewJob, store};

/// How long a scheduler sleeps at most before looking at the stored times again.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);

/// A recurring job: [`super::Handlers::schedule`].
#[derive(Debug, Clone)]
pub struct Schedule {
    name: &'static str,
    cron: Cron,
    job: NewJob,
}

impl Schedule {
    pub(super) fn new(name: &'static str, cron: Cron, job: NewJob) -> Self {
        Self { name, cron, job }
    }

    /// The first time of the schedule strictly after `after_ms`, in Unix milliseconds.
    fn next_after(&self, after_ms: i64) -> Option<i64> {
        next_after(&self.cron, after_ms)
    }
}

/// Parses a cron expression of 5 or 6 fields.
pub fn parse(expression: &str) -> Result<Cron, croner::errors::CronError> {
    expression.parse()
}

/// The first time of `cron` strictly after `after_ms` (whole seconds), in Unix milliseconds.
pub fn next_after(cron: &Cron, after_ms: i64) -> Option<i64> {
    let after: DateTime<Utc> = DateTime::from_timestamp_millis(after_ms)?;
    let next = cron.find_next_occurrence(&after, false).ok()?;
    Some(next.timestamp_millis())
}

/// Fires `schedules` until `stopped`.
pub(super) async fn run(jobs: Jobs, schedules: Vec<Schedule>, mut stopped: watch::Receiver<bool>) {
    // The stored next time of each schedule (`None` until read).
    let mut next: Vec<Option<i64>> = vec![None; schedules.len()];
    while !*stopped.borrow() {
        let now = now_ms();
        let mut wake_at =
            now.saturating_add(i64::try_from(LONGEST_SLEEP.as_millis()).unwrap_or(i64::MAX));
        for (schedule, stored) in schedules.iter().zip(next.iter_mut()) {
            match fire_if_due(&jobs, schedule, *stored, now).await {
                Ok(at) => {
                    *stored = at;
                    if let Some(at) = at {
                        wake_at = wake_at.min(at);
                    }
                }
                Err(error) => {
                    *stored = None;
                    tracing::error!(schedule = schedule.name, %error, "cannot fire a recurring job");
                }
            }
        }
        let sleep_ms = u64::try_from(wake_at.saturating_sub(now_ms())).unwrap_or(0);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Enqueues `schedule`'s job if its stored time (`stored`, read again when `None`) has come and
/// this instance moves it on first; the schedule's next time, as stored then.
async fn fire_if_due(
    jobs: &Jobs,
    schedule: &Schedule,
    stored: Option<i64>,
    now: i64,
) -> sqlx::Result<Option<i64>> {
    let db = jobs.db();
    let due_at = match stored {
        Some(at) => at,
        None => {
            let Some(first) = schedule.next_after(now) else {
                return Ok(None);
            };
            store::schedule_next(db, schedule.name, &schedule.cron.to_string(), first).await?
        }
    };
    if due_at > now {
        return Ok(Some(due_at));
    }
    // Once per missed stretch: the next time after now, not after the missed one.
    let Some(following) = schedule.next_after(now.max(due_at)) else {
        return Ok(None);
    };
    let mut tx = db.begin_write().await?;
    if !store::advance_schedule(&mut tx, schedule.name, due_at, following).await? {
        // Another instance fired it: read where it moved the schedule.
        drop(tx);
        let stored =
            store::schedule_next(db, schedule.name, &schedule.cron.to_string(), following).await?;
        return Ok(Some(stored));
    }
    let job = schedule
        .job
        .clone()
        .unique(format!("{}@{due_at}", schedule.name));
    super::enqueue(&mut tx, &job).await?;
    tx.commit().await?;
    tracing::info!(
        schedule = schedule.name,
        due_at_ms = due_at,
        "recurring job enqueued"
    );
    Ok(Some(following))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_field_expressions_fire_at_their_times() {
        // 2026-01-01 00:00:00 UTC.
        let midnight = 1_767_225_600_000;
        let hourly = parse("0 15 * * * *").unwrap();
        assert_eq!(next_after(&hourly, midnight), Some(midnight + 15 * 60_000));
        let every_minute = parse("* * * * *").unwrap();
        assert_eq!(next_after(&every_minute, midnight), Some(midnight + 60_000));
        // Strictly after: a time on the schedule gives the next one.
        let every_second = parse("* * * * * *").unwrap();
        assert_eq!(next_after(&every_second, midnight), Some(midnight + 1_000));
        assert_eq!(
            next_after(&every_second, midnight + 400),
            Some(midnight + 1_000)
        );
        let nickname = parse("@hourly").unwrap();
        assert_eq!(next_after(&nickname, midnight), Some(midnight + 3_600_000));
        assert!(parse("not cron").is_err());
        assert!(parse("61 * * * *").is_err());
    }
}
