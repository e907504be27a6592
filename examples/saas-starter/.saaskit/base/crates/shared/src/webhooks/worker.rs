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

use super::store::{self, AttemptRecord, ClaimedJob, Outcome, Status};
use super::{Webhooks, now_ms};
use crate::error::BoxError;

/// Jobs one claim takes for one loop: enough to spare round trips, few enough that a lease
/// (30 s by default) comfortably covers processing them one after the other.
const CLAIM_BATCH: i64 = 16;

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

/// One of the worker's concurrent loops: claims a batch, processes it job by job.
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
            let now = now_ms();
            let lease_ms = i64::try_from(inner.config.lease.as_millis()).unwrap_or(i64::MAX);
            let jobs = match store::claim(
                &inner.db,
                &self.name,
                CLAIM_BATCH,
                now,
                now.saturating_add(lease_ms),
            )
            .await
            {
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
            for job in jobs {
                if let Err(error) = self.process(&job).await {
                    // The lease expires and the job is claimed again: nothing is lost.
                    tracing::error!(event = %job.event_id, %error, "cannot record a webhook attempt");
                }
            }
        }
    }

    async fn pause(&mut self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            _ = self.stopped.changed() => {}
        }
    }

    async fn process(&self, job: &ClaimedJob) -> sqlx::Result<()> {
        let inner = &self.webhooks.inner;
        let db = &inner.db;
        let worker = self.name.as_str();
        if job.abandoned {
            let now = now_ms();
            let mut tx = db.begin_write().await?;
            store::record_attempt(
                &mut tx,
                &job.event_id,
                Status::Retrying,
                &AttemptRecord {
                    worker,
                    started_at_ms: now,
                    finished_at_ms: now,
                    outcome: Outcome::Abandoned,
                    error: Some("the previous worker's lease expired before it finished"),
                },
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(event = %job.event_id, "taking over an abandoned webhook job");
        }

        let started_at_ms = now_ms();
        let mut tx = db.begin_write().await?;
        // The fence first: it locks the job (and, on SQLite, takes the write lock) before
        // anything is read.
        if !store::fence(&mut tx, job, worker, None).await? {
            tracing::warn!(event = %job.event_id, "lease lost to another worker; leaving the job");
            return Ok(());
        }
        let Some((event_type, created, livemode, payload)) =
            store::load_event(&mut tx, &job.event_id).await?
        else {
            // The event row was deleted by hand: the job has nothing left to process.
            tx.commit().await?;
            return Ok(());
        };
        let event = Event {
            id: job.event_id.clone(),
            event_type,
            created,
            livemode,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        };
        let (status, result) = match self.handlers.get(&event.event_type) {
            Some(handler) => (Status::Processed, handler.handle(&event, &mut tx).await),
            None => (Status::Ignored, Ok(())),
        };
        match result {
            Ok(()) => {
                store::record_attempt(
                    &mut tx,
                    &event.id,
                    status,
                    &AttemptRecord {
                        worker,
                        started_at_ms,
                        finished_at_ms: now_ms(),
                        outcome: Outcome::Succeeded,
                        error: None,
                    },
                )
                .await?;
                tx.commit().await?;
                tracing::info!(event = %event.id, r#type = %event.event_type, %status, "event processed");
                Ok(())
            }
            Err(error) => {
                tx.rollback().await?;
                self.record_failure(job, &event, started_at_ms, &error.to_string())
                    .await
            }
        }
    }

    /// Schedules the next attempt of a failed job, or dead-letters it after the last one.
    async fn record_failure(
        &self,
        job: &ClaimedJob,
        event: &Event,
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
        let mut tx = inner.db.begin_write().await?;
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
