//! The worker: claims due jobs, runs the handler of each event's type, and records the outcome.
//!
//! A handler's effects, the deletion of the job and the event's `processed` mark commit in one
//! transaction, and only while the worker still holds the job's lease ([`store::fence`]). An
//! error rolls the effects back; the attempt is recorded and the job scheduled again with
//! backoff, or dead-lettered after the last attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::store::{self, AttemptRecord, ClaimedJob, Outcome, Status, StoredEvent};
use super::{Webhooks, now_ms};
use crate::error::BoxError;

/// Jobs one claim takes for one loop, processed in one transaction when they all succeed
/// ([`Loop::process_batch`]): enough to spare most commits and round trips, few enough that a
/// lease (30 s by default) covers processing them one after the other with handlers of up to
/// 0.9 s each.
const CLAIM_BATCH: i64 = 32;

/// How long a stopping worker waits after a database error before trying again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// A stored event, as handlers get it.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    /// Stripe's creation time, Unix seconds: the order events happened in, which is not always
    /// the order they arrive in.
    pub created: i64,
    pub livemode: bool,
    pub payload: serde_json::Value,
}

impl Event {
    fn from_stored(stored: &StoredEvent) -> Self {
        Self {
            id: stored.id.clone(),
            event_type: stored.event_type.clone(),
            created: stored.created,
            livemode: stored.livemode,
            // Stored only after it parsed: `Null` means the row was edited by hand.
            payload: serde_json::from_str(&stored.payload).unwrap_or(serde_json::Value::Null),
        }
    }

    /// `data.object` of the payload, read as `T`.
    pub fn object<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        let object = self
            .payload
            .pointer("/data/object")
            .ok_or_else(|| HandlerError::from("the event has no data.object"))?;
        T::deserialize(object).map_err(|error| {
            HandlerError::from(format!(
                "data.object of {} is not valid: {error}",
                self.event_type
            ))
        })
    }
}

/// Why a handler failed; the attempt is retried. The message is stored with the attempt.
pub type HandlerError = BoxError;

/// Applies an event's effects on `conn`, inside the transaction that marks it processed.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        conn: &'a mut AnyConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// The handler of each event type. An event of a type without one is marked `ignored`.
#[derive(Clone, Default)]
pub struct Handlers {
    by_type: HashMap<String, Arc<dyn Handler>>,
}

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles the events of each of `types` with `handler`.
    pub fn on(mut self, types: &[&str], handler: impl Handler) -> Self {
        let handler: Arc<dyn Handler> = Arc::new(handler);
        for event_type in types {
            self.by_type
                .insert((*event_type).to_owned(), handler.clone());
        }
        self
    }

    /// These handlers and `other`'s; `other` wins for a type both handle.
    pub fn merge(mut self, other: Handlers) -> Self {
        self.by_type.extend(other.by_type);
        self
    }

    fn get(&self, event_type: &str) -> Option<&Arc<dyn Handler>> {
        self.by_type.get(event_type)
    }
}

/// The running worker: [`Worker::shutdown`] stops it.
pub struct Worker {
    stop: watch::Sender<bool>,
    loops: JoinSet<()>,
}

impl Worker {
    pub(super) fn start(webhooks: Webhooks, handlers: Handlers) -> Self {
        let (stop, stopped) = watch::channel(false);
        let handlers = Arc::new(handlers);
        // Identifies this process in leases and in the attempt history.
        let instance = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
        let mut loops = JoinSet::new();
        for number in 0..webhooks.inner.config.concurrency {
            let run = Loop {
                webhooks: webhooks.clone(),
                handlers: handlers.clone(),
                name: format!("{instance}/{number}"),
                stopped: stopped.clone(),
            };
            loops.spawn(run.run());
        }
        tracing::info!(
            loops = webhooks.inner.config.concurrency,
            "webhook worker started"
        );
        Self { stop, loops }
    }

    /// Stops claiming jobs and waits for the ones in progress to finish.
    pub async fn shutdown(mut self) {
        // Fails only when every loop has ended already.
        let _ = self.stop.send(true);
        while let Some(result) = self.loops.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "a webhook worker loop panicked");
            }
        }
        tracing::info!("webhook worker stopped");
    }
}

/// One of the worker's concurrent loops: claims a batch of jobs, processes it, and again.
struct Loop {
    webhooks: Webhooks,
    handlers: Arc<Handlers>,
    name: String,
    stopped: watch::Receiver<bool>,
}

impl Loop {
    async fn run(mut self) {
        let inner = self.webhooks.inner.clone();
        while !*self.stopped.borrow() {
            // Registered before claiming, so that a job stored during the claim wakes this loop.
            let notified = inner.new_jobs.notified();
            let jobs = match self.claim().await {
                Ok(jobs) => jobs,
                Err(error) => {
                    tracing::error!(%error, "cannot claim webhook jobs");
                    self.pause(ERROR_PAUSE).await;
                    continue;
                }
            };
            if jobs.is_empty() {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(inner.config.poll_interval) => {}
                    _ = self.stopped.changed() => {}
                }
                continue;
            }
            // Once claimed, a batch is finished even while stopping: each job is short, and
            // leaving it would only delay it by a lease.
            self.process_batch(&jobs).await;
        }
    }

    /// Leases a batch of due jobs to this loop, each with its event.
    async fn claim(&self) -> sqlx::Result<Vec<(ClaimedJob, StoredEvent)>> {
        let inner = &self.webhooks.inner;
        let now = now_ms();
        let lease_ms = i64::try_from(inner.config.lease.as_millis()).unwrap_or(i64::MAX);
        let jobs = {
            let _turn = inner.turns.take().await;
            store::claim(
                &inner.db,
                &self.name,
                CLAIM_BATCH,
                now,
                now.saturating_add(lease_ms),
            )
            .await?
        };
        // One query for the batch's events rather than one per job.
        let ids: Vec<&str> = jobs.iter().map(|job| job.event_id.as_str()).collect();
        let mut events: HashMap<String, StoredEvent> = store::load_events(&inner.db, &ids)
            .await?
            .into_iter()
            .map(|event| (event.id.clone(), event))
            .collect();
        // A job always has its event: a foreign key sees to it.
        Ok(jobs
            .into_iter()
            .filter_map(|job| {
                let event = events.remove(&job.event_id)?;
                Some((job, event))
            })
            .collect())
    }

    async fn pause(&mut self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            _ = self.stopped.changed() => {}
        }
    }

    /// Processes a claimed batch. Together first, in one transaction: one commit for the batch,
    /// and a statement or two per job besides its handler's. If anything fails there (a
    /// handler's error, or a deadlock between the row locks of two batches on PostgreSQL), the
    /// transaction rolls back as if it never ran, and the jobs are processed again one per
    /// transaction, where a failure is recorded against its own job only.
    async fn process_batch(&self, jobs: &[(ClaimedJob, StoredEvent)]) {
        for (job, _) in jobs.iter().filter(|(job, _)| job.abandoned) {
            if let Err(error) = self.record_abandoned(job).await {
                tracing::error!(event = %job.event_id, %error, "cannot record a webhook attempt");
            }
        }
        if jobs.len() > 1 {
            match self.process_together(jobs).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::info!(%error, jobs = jobs.len(), "a webhook batch failed; processing its jobs one by one");
                }
            }
        }
        for (job, event) in jobs {
            if let Err(error) = self.process(job, event).await {
                // The lease expires and the job is claimed again: nothing is lost.
                tracing::error!(event = %job.event_id, %error, "cannot record a webhook attempt");
            }
        }
    }

    /// Processes `jobs` in one transaction, or fails without any effect.
    async fn process_together(&self, jobs: &[(ClaimedJob, StoredEvent)]) -> Result<(), BoxError> {
        let inner = &self.webhooks.inner;
        let worker = self.name.as_str();
        // Parsed before the transaction, which on SQLite holds the write lock.
        let prepared: Vec<Option<Handled<'_>>> = jobs
            .iter()
            .map(|(_, stored)| self.prepare(stored))
            .collect();
        let mut tx = inner.turns.begin(&inner.db).await?;
        let claimed: Vec<&ClaimedJob> = jobs.iter().map(|(job, _)| job).collect();
        let fenced = store::fence_all(&mut tx, &claimed, worker).await?;
        let mut processed = Vec::with_capacity(jobs.len());
        for ((job, stored), handled) in jobs.iter().zip(&prepared) {
            if !fenced.contains(&job.event_id) {
                continue;
            }
            let started_at_ms = now_ms();
            let status = apply(handled.as_ref(), &mut tx).await?;
            self.record_success(&mut tx, stored, status, started_at_ms)
                .await?;
            processed.push((stored, status));
        }
        tx.commit().await?;
        for (job, _) in jobs
            .iter()
            .filter(|(job, _)| !fenced.contains(&job.event_id))
        {
            tracing::warn!(event = %job.event_id, "lease lost to another worker; leaving the job");
        }
        for (stored, status) in processed {
            tracing::info!(event = %stored.id, r#type = %stored.event_type, %status, "event processed");
        }
        Ok(())
    }

    /// `stored` parsed for its type's handler; `None` for a type without one, whose payload is
    /// never parsed.
    fn prepare(&self, stored: &StoredEvent) -> Option<Handled<'_>> {
        let handler = self.handlers.get(&stored.event_type)?;
        Some(Handled {
            handler: handler.as_ref(),
            event: Event::from_stored(stored),
        })
    }

    /// Records, in the transaction of its effects, the attempt that took `stored` to `status`.
    async fn record_success(
        &self,
        tx: &mut AnyConnection,
        stored: &StoredEvent,
        status: Status,
        started_at_ms: i64,
    ) -> sqlx::Result<()> {
        let attempt = AttemptRecord {
            worker: &self.name,
            started_at_ms,
            finished_at_ms: now_ms(),
            outcome: Outcome::Succeeded,
            error: None,
        };
        let backend = self.webhooks.inner.db.backend();
        store::record_attempt(tx, backend, &stored.id, status, &attempt).await
    }

    /// Records the attempt a worker that stopped or crashed left unfinished.
    async fn record_abandoned(&self, job: &ClaimedJob) -> sqlx::Result<()> {
        let inner = &self.webhooks.inner;
        let now = now_ms();
        let mut tx = inner.turns.begin(&inner.db).await?;
        store::record_attempt(
            &mut tx,
            inner.db.backend(),
            &job.event_id,
            Status::Retrying,
            &AttemptRecord {
                worker: &self.name,
                started_at_ms: now,
                finished_at_ms: now,
                outcome: Outcome::Abandoned,
                error: Some("the previous worker's lease expired before it finished"),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(event = %job.event_id, "taking over an abandoned webhook job");
        Ok(())
    }

    /// Processes one job in its own transaction; a handler's error is recorded against it.
    async fn process(&self, job: &ClaimedJob, stored: &StoredEvent) -> sqlx::Result<()> {
        let inner = &self.webhooks.inner;
        let worker = self.name.as_str();
        let started_at_ms = now_ms();
        let handled = self.prepare(stored);
        let mut tx = inner.turns.begin(&inner.db).await?;
        // The fence first: it locks the job before the handler writes anything.
        if !store::fence(&mut tx, job, worker, None).await? {
            tracing::warn!(event = %job.event_id, "lease lost to another worker; leaving the job");
            return Ok(());
        }
        let result = apply(handled.as_ref(), &mut tx).await;
        match result {
            Ok(status) => {
                self.record_success(&mut tx, stored, status, started_at_ms)
                    .await?;
                tx.commit().await?;
                tracing::info!(event = %stored.id, r#type = %stored.event_type, %status, "event processed");
                Ok(())
            }
            Err(error) => {
                tx.rollback().await?;
                self.record_failure(job, stored, started_at_ms, &error.to_string())
                    .await
            }
        }
    }

    /// Schedules the next attempt of a failed job, or dead-letters it after the last one.
    async fn record_failure(
        &self,
        job: &ClaimedJob,
        event: &StoredEvent,
        started_at_ms: i64,
        error: &str,
    ) -> sqlx::Result<()> {
        let inner = &self.webhooks.inner;
        let retry = inner.config.retry;
        let finished_at_ms = now_ms();
        let last = job.attempt >= retry.max_attempts;
        let delay = retry.delay_after(job.attempt, getrandom::u64().unwrap_or(0));
        let next_at_ms =
            finished_at_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        let mut tx = inner.turns.begin(&inner.db).await?;
        let reschedule = (!last).then_some(next_at_ms);
        if !store::fence(&mut tx, job, &self.name, reschedule).await? {
            return Ok(());
        }
        let status = if last {
            Status::DeadLetter
        } else {
            Status::Retrying
        };
        store::record_attempt(
            &mut tx,
            inner.db.backend(),
            &event.id,
            status,
            &AttemptRecord {
                worker: &self.name,
                started_at_ms,
                finished_at_ms,
                outcome: Outcome::Failed,
                error: Some(error),
            },
        )
        .await?;
        tx.commit().await?;
        if last {
            tracing::error!(
                event = %event.id,
                r#type = %event.event_type,
                attempt = job.attempt,
                error,
                "event dead-lettered after its last attempt"
            );
        } else {
            tracing::warn!(
                event = %event.id,
                r#type = %event.event_type,
                attempt = job.attempt,
                retry_in_ms = delay.as_millis(),
                error,
                "event processing failed; retry scheduled"
            );
        }
        Ok(())
    }
}

/// An event of a type with a handler, parsed for it.
struct Handled<'a> {
    handler: &'a dyn Handler,
    event: Event,
}

/// Applies an event's effects on `conn` with its handler, if its type has one: the status the
/// event ends in.
async fn apply(
    handled: Option<&Handled<'_>>,
    conn: &mut AnyConnection,
) -> Result<Status, HandlerError> {
    match handled {
        Some(Handled { handler, event }) => {
            handler.handle(event, conn).await?;
            Ok(Status::Processed)
        }
        None => Ok(Status::Ignored),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::Env;
    use crate::db::{Database, DatabaseConfig};
    use crate::webhooks::WebhooksConfig;

    /// Succeeds without effects.
    struct Accepting;

    impl Handler for Accepting {
        fn handle<'a>(
            &'a self,
            _: &'a Event,
            _: &'a mut AnyConnection,
        ) -> BoxFuture<'a, Result<(), HandlerError>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// Fails every time.
    struct Refusing;

    impl Handler for Refusing {
        fn handle<'a>(
            &'a self,
            _: &'a Event,
            _: &'a mut AnyConnection,
        ) -> BoxFuture<'a, Result<(), HandlerError>> {
            Box::pin(async { Err("refused".into()) })
        }
    }

    async fn status_of(db: &Database, id: &str) -> (String, i64) {
        let event = store::event(db, id).await.unwrap().unwrap();
        (event.summary.status, event.summary.attempts)
    }

    #[tokio::test]
    async fn a_failing_handler_fails_only_its_own_job_of_a_batch() {
        let dir = std::env::temp_dir().join(format!("shared-worker-test-{}", std::process::id()));
        let url = format!("sqlite://{}/test.db?mode=rwc", dir.display());
        let mut env = Env::from_vars([
            ("DATABASE_URL", url.as_str()),
            // A test secret, which production would refuse.
            ("APP_ENV", "development"),
            ("STRIPE_WEBHOOK_SECRETS", "whsec_test"),
            // The failed job stays `retrying` until the test ends.
            ("WEBHOOKS_RETRY_BASE_MS", "600000"),
        ]);
        let db_config = DatabaseConfig::from_env(&mut env);
        let config = WebhooksConfig::from_env(&mut env);
        env.finish().unwrap();
        let db = Database::connect(&db_config).await.unwrap();
        db.migrate().await.unwrap();
        let webhooks = Webhooks::new(db.clone(), config).unwrap();
        let events = [
            ("evt_1", "test.accepted", "processed"),
            ("evt_2", "test.refused", "retrying"),
            ("evt_3", "test.accepted", "processed"),
            ("evt_4", "test.unhandled", "ignored"),
        ];
        // All queued before the worker starts, so that its first claim takes them together.
        for (id, event_type, _) in events {
            let body = format!(r#"{{"id":"{id}","type":"{event_type}","created":1700000000}}"#);
            webhooks.ingest(body.as_bytes()).await.unwrap();
        }

        let handlers = Handlers::new()
            .on(&["test.accepted"], Accepting)
            .on(&["test.refused"], Refusing);
        let worker = webhooks.start_worker(handlers);
        let deadline = Instant::now() + Duration::from_secs(10);
        for (id, _, status) in events {
            while status_of(&db, id).await.0 != status {
                assert!(Instant::now() < deadline, "{id} is not {status}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // The batch's own attempt was rolled back with it: one attempt each.
        let mut attempts = Vec::new();
        for (id, _, _) in events {
            attempts.push(status_of(&db, id).await.1);
        }
        worker.shutdown().await;
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();

        assert_eq!(attempts, [1, 1, 1, 1]);
    }
}
