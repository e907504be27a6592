//! Processing on the job queue: each stored event has a `webhooks.process` job
//! ([`ProcessEvent`]), which runs the handler of the event's type and records the outcome.
//!
//! A handler's effects, the event's `processed` mark with its attempt, and the job's success
//! commit in one transaction, and only while the worker still holds the job's lease
//! ([`JobContext::complete_in`]). An error rolls the effects back; the attempt is recorded and
//! the queue schedules the job again with the webhooks' backoff, or, after the last attempt,
//! the event is dead-lettered with its job.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::store::{self, AttemptRecord, Outcome, Status, StoredEvent};
use super::{Webhooks, now_ms};
use crate::error::BoxError;
use crate::jobs::{self, Backoff, Completion, Job, JobContext, JobError, NewJob};

/// The job kind of webhook processing.
pub const KIND: &str = "webhooks.process";

/// The default of `WEBHOOKS_MAX_ATTEMPTS`.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 8;

/// The unique key of an event's job: while it is queued or running, the event is not queued
/// again (a replay of it is refused).
pub fn job_key(event_id: &str) -> String {
    format!("webhook:{event_id}")
}

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

/// The most events one processing transaction takes: the jobs two worker loops claim at once
/// (`JOBS_BATCH_SIZE`, 100) and some.
const MAX_BATCH: usize = 256;

/// The tasks of an instance that process the events handed over.
const PROCESSING_TASKS: usize = 2;

/// The `webhooks.process` job: processes the stored event whose id is its payload.
///
/// The jobs the worker runs at the same time hand their event to one task of this instance
/// ([`process_batches`]; two of them), which processes whatever is handed over in one
/// transaction: one commit,
/// and a statement or two per event besides its handler's, rather than a transaction each. Each
/// job then returns its own outcome to the queue.
pub struct ProcessEvent {
    webhooks: Webhooks,
    queue: mpsc::Sender<Request>,
}

/// An event handed to the processing task, and where its outcome goes.
struct Request {
    event_id: String,
    completion: Completion,
    worker: String,
    reply: oneshot::Sender<Ending>,
}

/// How an event's processing ended.
enum Ending {
    /// Committed with the job's success, in this status.
    Done(Status),
    /// The job's lease went to another worker: nothing was done.
    LeaseLost,
    /// No stored event has the id.
    Unknown,
    /// The handler failed (its effects rolled back), or the database did.
    Failed(String),
}

impl ProcessEvent {
    /// Starts the processing task (on the current tokio runtime).
    pub(super) fn new(webhooks: Webhooks, handlers: Handlers) -> Self {
        let (queue, requests) = mpsc::channel(MAX_BATCH);
        let requests = Arc::new(Mutex::new(requests));
        let handlers = Arc::new(handlers);
        // Two, so that one batch's round trips overlap the other's commit on PostgreSQL; on
        // SQLite they take turns.
        for _ in 0..PROCESSING_TASKS {
            tokio::spawn(process_batches(
                webhooks.clone(),
                handlers.clone(),
                requests.clone(),
            ));
        }
        Self { webhooks, queue }
    }

    /// The job of the stored event `event_id`, with the webhooks' attempts.
    pub(super) fn job(event_id: &str, max_attempts: i64) -> Result<NewJob, serde_json::Error> {
        Ok(NewJob::of::<Self>(&event_id.to_owned())?
            .max_attempts(max_attempts)
            .unique(job_key(event_id)))
    }

    /// Records an attempt that did not succeed: the previous one, which its worker left
    /// unfinished, or this one, which failed. The event is `retrying`, or `dead_letter` when
    /// this was its last attempt.
    async fn record_other(
        &self,
        event_id: &str,
        status: Status,
        attempt: &AttemptRecord<'_>,
    ) -> sqlx::Result<()> {
        let inner = &self.webhooks.inner;
        let mut tx = inner.db.turns().begin(&inner.db).await?;
        store::record_attempt(&mut tx, inner.db.backend(), event_id, status, attempt).await?;
        tx.commit().await
    }
}

impl Job for ProcessEvent {
    const KIND: &'static str = KIND;
    /// For jobs enqueued without the webhooks' settings (the admin service's replays).
    const MAX_ATTEMPTS: i64 = DEFAULT_MAX_ATTEMPTS;
    /// The event's id.
    type Payload = String;

    async fn run(&self, ctx: &JobContext, event_id: String) -> Result<(), JobError> {
        if ctx.previous_attempt_abandoned() {
            tracing::warn!(event = %event_id, "taking over an abandoned webhook job");
            let now = now_ms();
            self.record_other(
                &event_id,
                Status::Retrying,
                &AttemptRecord {
                    worker: ctx.worker(),
                    started_at_ms: now,
                    finished_at_ms: now,
                    outcome: Outcome::Abandoned,
                    error: Some("the previous worker's lease expired before it finished"),
                },
            )
            .await?;
        }
        let started_at_ms = now_ms();
        let (reply, outcome) = oneshot::channel();
        let request = Request {
            event_id: event_id.clone(),
            completion: ctx.completion(),
            worker: ctx.worker().to_owned(),
            reply,
        };
        let stopped = || JobError::retry("the webhook processing task has stopped");
        self.queue.send(request).await.map_err(|_| stopped())?;
        let message = match outcome.await.map_err(|_| stopped())? {
            Ending::Done(_) | Ending::LeaseLost => return Ok(()),
            Ending::Unknown => {
                return Err(JobError::permanent(format!("no stored event {event_id}")));
            }
            Ending::Failed(message) => message,
        };
        // The job's own limit is the setting's, except for replays queued by a service that
        // does not read it (the admin service's, with the default).
        let max_attempts = self.webhooks.inner.config.max_attempts;
        let last = ctx.is_last_attempt() || ctx.attempt() >= max_attempts;
        let status = if last {
            Status::DeadLetter
        } else {
            Status::Retrying
        };
        self.record_other(
            &event_id,
            status,
            &AttemptRecord {
                worker: ctx.worker(),
                started_at_ms,
                finished_at_ms: now_ms(),
                outcome: Outcome::Failed,
                error: Some(&message),
            },
        )
        .await?;
        if last {
            tracing::error!(event = %event_id, attempt = ctx.attempt(), error = %message, "event dead-lettered after its last attempt");
        } else {
            tracing::warn!(event = %event_id, attempt = ctx.attempt(), error = %message, "event processing failed; retry scheduled");
        }
        // The queue schedules the next attempt (`backoff`), or marks the job dead.
        Err(if last {
            JobError::permanent(message)
        } else {
            JobError::retry(message)
        })
    }

    fn backoff(&self) -> Option<Backoff> {
        Some(self.webhooks.inner.config.backoff)
    }
}

/// A processing task: takes whatever events are handed over, up to [`MAX_BATCH`], processes
/// them, answers each, and again, until every [`ProcessEvent`] is gone.
async fn process_batches(
    webhooks: Webhooks,
    handlers: Arc<Handlers>,
    requests: Arc<Mutex<mpsc::Receiver<Request>>>,
) {
    loop {
        let batch = {
            let mut requests = requests.lock().await;
            let Some(first) = requests.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            batch
        };
        let outcomes = match process_all(&webhooks, &handlers, &batch).await {
            Ok(outcomes) => outcomes,
            // A handler's error, or on PostgreSQL a deadlock with another instance's batch:
            // the transaction rolled back as if it never ran, and each event goes alone, where
            // a failure is its own.
            Err(error) => {
                if batch.len() > 1 {
                    tracing::info!(%error, events = batch.len(), "a webhook batch failed; processing its events one by one");
                }
                let mut outcomes = Vec::with_capacity(batch.len());
                for request in &batch {
                    let outcome = process_all(&webhooks, &handlers, std::slice::from_ref(request))
                        .await
                        .map_or_else(
                            |error| Ending::Failed(error.to_string()),
                            |mut one| one.remove(0),
                        );
                    outcomes.push(outcome);
                }
                outcomes
            }
        };
        for (request, outcome) in batch.into_iter().zip(outcomes) {
            match &outcome {
                Ending::Done(status) => {
                    tracing::info!(event = %request.event_id, %status, "event processed");
                }
                Ending::LeaseLost => {
                    tracing::warn!(event = %request.event_id, "lease lost to another worker; leaving the job");
                }
                Ending::Unknown | Ending::Failed(_) => {}
            }
            // Fails only when the job is gone (its worker gave up at shutdown): its lease
            // decides.
            let _ = request.reply.send(outcome);
        }
    }
}

/// Processes `batch` in one transaction, or fails without any effect: the jobs' success first
/// (which fences them: a job whose lease is lost is left alone), then each event's handler and
/// attempt record, then one commit.
async fn process_all(
    webhooks: &Webhooks,
    handlers: &Handlers,
    batch: &[Request],
) -> Result<Vec<Ending>, BoxError> {
    let inner = &webhooks.inner;
    let ids: Vec<&str> = batch
        .iter()
        .map(|request| request.event_id.as_str())
        .collect();
    let mut stored: HashMap<String, StoredEvent> = store::load_events(&inner.db, &ids)
        .await?
        .into_iter()
        .map(|event| (event.id.clone(), event))
        .collect();
    // Parsed before the transaction, which on SQLite holds the write lock.
    let prepared: Vec<Option<(StoredEvent, Option<Handled<'_>>)>> = batch
        .iter()
        .map(|request| {
            let event = stored.remove(&request.event_id)?;
            let handled = handlers.get(&event.event_type).map(|handler| Handled {
                handler: handler.as_ref(),
                event: Event::from_stored(&event),
            });
            Some((event, handled))
        })
        .collect();
    let started_at_ms = now_ms();
    let mut tx = inner.db.turns().begin(&inner.db).await?;
    let completions: Vec<Completion> = batch
        .iter()
        .zip(&prepared)
        .filter(|(_, prepared)| prepared.is_some())
        .map(|(request, _)| request.completion.clone())
        .collect();
    let held = jobs::complete_all_in(&mut tx, &completions).await?;
    let held: HashSet<i64> = completions
        .iter()
        .zip(held)
        .filter(|(_, held)| *held)
        .map(|(completion, _)| completion.id())
        .collect();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut successes = Vec::with_capacity(batch.len());
    for (request, prepared) in batch.iter().zip(&prepared) {
        let Some((event, handled)) = prepared else {
            outcomes.push(Ending::Unknown);
            continue;
        };
        if !held.contains(&request.completion.id()) {
            outcomes.push(Ending::LeaseLost);
            continue;
        }
        let status = apply(handled.as_ref(), &mut tx).await?;
        successes.push(store::Success {
            event_id: &event.id,
            status,
            worker: &request.worker,
            started_at_ms,
            finished_at_ms: now_ms(),
        });
        outcomes.push(Ending::Done(status));
    }
    store::record_successes(&mut tx, inner.db.backend(), &successes).await?;
    tx.commit().await?;
    Ok(outcomes)
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
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::Env;
    use crate::db::{Database, DatabaseConfig};
    use crate::jobs::{Jobs, JobsConfig};
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

    /// Events stored together are claimed in one batch of the queue; each ends in its own
    /// status, a failure recorded against its own event only, and the failed one dead-lettered
    /// with its job after its last attempt.
    #[tokio::test]
    async fn each_event_of_a_batch_ends_in_its_own_status() {
        let dir = std::env::temp_dir().join(format!("shared-process-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/test.db?mode=rwc", dir.display());
        let mut env = Env::from_vars([
            ("DATABASE_URL", url.as_str()),
            // A test secret, which production would refuse.
            ("APP_ENV", "development"),
            ("STRIPE_WEBHOOK_SECRETS", "whsec_test"),
            ("WEBHOOKS_MAX_ATTEMPTS", "2"),
            ("WEBHOOKS_RETRY_BASE_MS", "10"),
            ("WEBHOOKS_RETRY_MAX_MS", "20"),
            ("JOBS_POLL_INTERVAL_MS", "20"),
            ("JOBS_PURGE_SCHEDULE", "off"),
        ]);
        let db_config = DatabaseConfig::from_env(&mut env);
        let jobs_config = JobsConfig::from_env(&mut env, "TEST");
        let config = WebhooksConfig::from_env(&mut env);
        env.finish().unwrap();
        let db = Database::connect(&db_config).await.unwrap();
        db.migrate().await.unwrap();
        let jobs = Jobs::new(db.clone(), jobs_config, "TEST");
        let webhooks = Webhooks::new(db.clone(), config, jobs.clone()).unwrap();
        let events = [
            ("evt_1", "test.accepted", "processed", 1),
            ("evt_2", "test.refused", "dead_letter", 2),
            ("evt_3", "test.accepted", "processed", 1),
            ("evt_4", "test.unhandled", "ignored", 1),
        ];
        // All queued before the worker starts, so that its first claim takes them together.
        for (id, event_type, _, _) in events {
            let body = format!(r#"{{"id":"{id}","type":"{event_type}","created":1700000000}}"#);
            webhooks.ingest(body.as_bytes()).await.unwrap();
        }

        let handlers = Handlers::new()
            .on(&["test.accepted"], Accepting)
            .on(&["test.refused"], Refusing);
        let job_handlers = jobs.handlers().register(webhooks.processor(handlers));
        let worker = jobs.start_worker(job_handlers).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        for (id, _, status, _) in events {
            while status_of(&db, id).await.0 != status {
                assert!(Instant::now() < deadline, "{id} is not {status}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut attempts = Vec::new();
        for (id, _, _, _) in events {
            attempts.push(status_of(&db, id).await.1);
        }
        let dead: Vec<String> =
            sqlx::query_scalar("SELECT unique_key FROM jobs WHERE state = 'dead'")
                .fetch_all(db.pool())
                .await
                .unwrap();
        worker.shutdown().await;
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();

        let expected: Vec<i64> = events.iter().map(|(_, _, _, n)| *n).collect();
        assert_eq!(attempts, expected);
        assert_eq!(dead, [job_key("evt_2")]);
    }
}
