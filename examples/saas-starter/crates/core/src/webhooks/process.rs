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
use crate::db::Backend;
use crate::error::BoxError;
use crate::jobs::{self, Backoff, Completion, FirstAttempt, Job, JobContext, JobError, NewJob};

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
        Self::parse(
            &stored.id,
            &stored.event_type,
            stored.created,
            stored.livemode,
            &stored.payload,
        )
    }

    /// The event with its `payload` (the body as received) parsed.
    fn parse(id: &str, event_type: &str, created: i64, livemode: bool, payload: &str) -> Self {
        Self {
            id: id.to_owned(),
            event_type: event_type.to_owned(),
            created,
            livemode,
            // Stored only after it parsed: `Null` means the row was edited by hand.
            payload: serde_json::from_str(payload).unwrap_or(serde_json::Value::Null),
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

    /// Applies the effects of `events`, in their order, on `conn`: the consecutive events of a
    /// processing batch that this handler takes. One `handle` each by default; a handler that
    /// can write them all in one statement overrides it (a statement per event is a round trip
    /// per event on PostgreSQL). An error fails them all: the batch rolls back and its events
    /// go again one by one, each through `handle_all` with itself alone.
    fn handle_all<'a>(
        &'a self,
        events: &'a [&'a Event],
        conn: &'a mut AnyConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            for event in events {
                self.handle(event, &mut *conn).await?;
            }
            Ok(())
        })
    }
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

    pub(super) fn get(&self, event_type: &str) -> Option<&Arc<dyn Handler>> {
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
/// First attempts run in batches ([`Job::run_first_attempts`]), in the worker's transaction.
/// Leased attempts (retries, and a failed batch's jobs): the jobs the worker runs at the same
/// time hand their event to one task of this instance ([`process_batches`]; two of them), which
/// processes whatever is handed over in one transaction: one commit, and a statement or two per
/// event besides its handler's, rather than a transaction each. Each job then returns its own
/// outcome to the queue.
pub struct ProcessEvent {
    webhooks: Webhooks,
    handlers: Arc<Handlers>,
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
    pub(super) fn new(webhooks: Webhooks, handlers: Arc<Handlers>) -> Self {
        let (queue, requests) = mpsc::channel(MAX_BATCH);
        let requests = Arc::new(Mutex::new(requests));
        // Two, so that one batch's round trips overlap the other's commit on PostgreSQL; on
        // SQLite they take turns.
        for _ in 0..PROCESSING_TASKS {
            tokio::spawn(process_batches(
                webhooks.clone(),
                handlers.clone(),
                requests.clone(),
            ));
        }
        Self {
            webhooks,
            handlers,
            queue,
        }
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

    /// First attempts run in batches: the worker has taken the jobs off the queue in `conn`'s
    /// transaction, where each event's handler runs and its attempt is recorded; the worker
    /// commits it all once. An error fails the batch, whose events then go through `run`.
    const BATCHED: bool = true;

    async fn run_first_attempts(
        &self,
        conn: &mut AnyConnection,
        worker: &str,
        jobs: Vec<FirstAttempt<String>>,
    ) -> Result<(), BoxError> {
        let ids: Vec<&str> = jobs.iter().map(|job| job.payload.as_str()).collect();
        let mut stored = by_id(store::load_events(&mut *conn, &ids).await?);
        let started_at_ms = now_ms();
        let events = ids
            .iter()
            .map(|id| {
                stored
                    .remove(*id)
                    .ok_or_else(|| format!("no stored event {id}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let handled: Vec<Option<Handled<'_>>> = events
            .iter()
            .map(|event| {
                self.handlers.get(&event.event_type).map(|handler| Handled {
                    handler: handler.as_ref(),
                    event: Event::from_stored(event),
                })
            })
            .collect();
        let items: Vec<Item<'_>> = events
            .iter()
            .zip(&handled)
            .map(|(event, handled)| (event, handled.as_ref(), worker))
            .collect();
        let backend = self.webhooks.inner.db.backend();
        let statuses = apply_and_record(conn, backend, &items, started_at_ms).await?;
        // Before the commit, which the worker makes: should it fail, the batch's failure is
        // logged next, and its events are processed again.
        for (event, status) in events.iter().zip(statuses) {
            tracing::info!(event = %event.id, %status, "event processed");
        }
        Ok(())
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
    let mut stored = {
        let mut conn = inner.db.pool().acquire().await?;
        by_id(store::load_events(&mut conn, &ids).await?)
    };
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
    // The events to process, in the batch's order (`None` in `outcomes`), with their handlers.
    let mut outcomes: Vec<Option<Ending>> = Vec::with_capacity(batch.len());
    let mut items = Vec::with_capacity(batch.len());
    for (request, prepared) in batch.iter().zip(&prepared) {
        match prepared {
            None => outcomes.push(Some(Ending::Unknown)),
            Some(_) if !held.contains(&request.completion.id()) => {
                outcomes.push(Some(Ending::LeaseLost));
            }
            Some((event, handled)) => {
                items.push((event, handled.as_ref(), request.worker.as_str()));
                outcomes.push(None);
            }
        }
    }
    let statuses = apply_and_record(&mut tx, inner.db.backend(), &items, started_at_ms).await?;
    tx.commit().await?;
    let mut statuses = statuses.into_iter();
    Ok(outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| Ending::Done(statuses.next().unwrap_or(Status::Processed)))
        })
        .collect())
}

/// Events about to be stored and processed in one transaction, at their receipt
/// (`ingest`): each one's status, and the ones with a handler parsed for it. Prepared before
/// the transaction, which on SQLite holds the write lock.
pub(super) struct Received<'a> {
    statuses: Vec<Status>,
    /// The events with a handler, in order.
    handled: Vec<Handled<'a>>,
}

impl<'a> Received<'a> {
    pub(super) fn prepare(handlers: &'a Handlers, events: &[store::NewEvent<'_>]) -> Self {
        let mut statuses = Vec::with_capacity(events.len());
        let mut handled = Vec::new();
        for event in events {
            match handlers.get(event.event_type) {
                Some(handler) => {
                    statuses.push(Status::Processed);
                    let event = Event::parse(
                        event.id,
                        event.event_type,
                        event.created,
                        event.livemode,
                        event.payload,
                    );
                    handled.push(Handled {
                        handler: handler.as_ref(),
                        event,
                    });
                }
                None => statuses.push(Status::Ignored),
            }
        }
        Self { statuses, handled }
    }

    /// The status each event is stored in, in order.
    pub(super) fn statuses(&self) -> &[Status] {
        &self.statuses
    }

    /// Applies the effects of every event, in their order, on `conn`. Run before the events'
    /// insert, which must then store them all (none stored before) for the transaction to
    /// commit: see `ingest::store_processed`.
    pub(super) async fn apply(&self, conn: &mut AnyConnection) -> Result<(), HandlerError> {
        let to_apply: Vec<&Handled<'_>> = self.handled.iter().collect();
        apply_runs(&to_apply, conn).await
    }
}

/// An event to process: as stored, with its handler if its type has one, and the worker of the
/// attempt.
type Item<'a> = (&'a StoredEvent, Option<&'a Handled<'a>>, &'a str);

/// Applies the effects of `items` on `conn`, then records their successful attempts (one
/// statement on PostgreSQL): the status each ends in, in order.
async fn apply_and_record(
    conn: &mut AnyConnection,
    backend: Backend,
    items: &[Item<'_>],
    started_at_ms: i64,
) -> Result<Vec<Status>, BoxError> {
    let to_apply: Vec<&Handled<'_>> = items
        .iter()
        .filter_map(|(_, handled, _)| *handled)
        .collect();
    apply_runs(&to_apply, &mut *conn).await?;
    let finished_at_ms = now_ms();
    let successes: Vec<store::Success<'_>> = items
        .iter()
        .map(|(event, handled, worker)| store::Success {
            event_id: &event.id,
            status: if handled.is_some() {
                Status::Processed
            } else {
                Status::Ignored
            },
            worker,
            started_at_ms,
            finished_at_ms,
        })
        .collect();
    store::record_successes(conn, backend, &successes).await?;
    Ok(successes.iter().map(|success| success.status).collect())
}

/// Applies `events` in order, each run of consecutive events that one handler takes in one
/// [`Handler::handle_all`]: in order, so that the batch has the effects its events would have
/// one after another.
async fn apply_runs(events: &[&Handled<'_>], conn: &mut AnyConnection) -> Result<(), HandlerError> {
    let mut rest = events;
    while let Some(first) = rest.first() {
        let length = rest
            .iter()
            .take_while(|handled| std::ptr::addr_eq(handled.handler, first.handler))
            .count();
        let (run, next) = rest.split_at(length);
        let run: Vec<&Event> = run.iter().map(|handled| &handled.event).collect();
        first.handler.handle_all(&run, &mut *conn).await?;
        rest = next;
    }
    Ok(())
}

/// `events` by id.
fn by_id(events: Vec<StoredEvent>) -> HashMap<String, StoredEvent> {
    events
        .into_iter()
        .map(|event| (event.id.clone(), event))
        .collect()
}

/// An event of a type with a handler, parsed for it.
struct Handled<'a> {
    handler: &'a dyn Handler,
    event: Event,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::Env;
    use crate::db::{Database, DatabaseConfig};
    use crate::jobs::{Jobs, JobsConfig};
    use crate::webhooks::{Ingested, WebhooksConfig};

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

    /// A webhooks setup on a fresh SQLite database in `dir`, with `settings` added: two
    /// attempts, short retries, the queue polled often.
    async fn setup(dir: &std::path::Path, settings: &[(&str, &str)]) -> (Database, Jobs, Webhooks) {
        let _ = std::fs::remove_dir_all(dir);
        let url = format!("sqlite://{}/test.db?mode=rwc", dir.display());
        let mut vars = vec![
            ("DATABASE_URL", url.as_str()),
            // A test secret, which production would refuse.
            ("APP_ENV", "development"),
            ("STRIPE_WEBHOOK_SECRETS", "whsec_test"),
            ("WEBHOOKS_MAX_ATTEMPTS", "2"),
            ("WEBHOOKS_RETRY_BASE_MS", "10"),
            ("WEBHOOKS_RETRY_MAX_MS", "20"),
            ("JOBS_POLL_INTERVAL_MS", "20"),
            ("JOBS_PURGE_SCHEDULE", "off"),
        ];
        vars.extend_from_slice(settings);
        let mut env = Env::from_vars(vars);
        let db_config = DatabaseConfig::from_env(&mut env);
        let jobs_config = JobsConfig::from_env(&mut env, "TEST");
        let config = WebhooksConfig::from_env(&mut env);
        env.finish().unwrap();
        let db = Database::connect(&db_config).await.unwrap();
        db.migrate().await.unwrap();
        let jobs = Jobs::new(db.clone(), jobs_config, "TEST");
        let webhooks = Webhooks::new(db.clone(), config, jobs.clone()).unwrap();
        (db, jobs, webhooks)
    }

    fn body(id: &str, event_type: &str) -> String {
        format!(r#"{{"id":"{id}","type":"{event_type}","created":1700000000}}"#)
    }

    /// Events stored together are claimed in one batch of the queue; each ends in its own
    /// status, a failure recorded against its own event only, and the failed one dead-lettered
    /// with its job after its last attempt.
    #[tokio::test]
    async fn each_event_of_a_batch_ends_in_its_own_status() {
        let dir = std::env::temp_dir().join(format!("shared-process-test-{}", std::process::id()));
        // The events are queued before the processor exists: nothing processes them at receipt.
        let (db, jobs, webhooks) = setup(&dir, &[]).await;
        let events = [
            ("evt_1", "test.accepted", "processed", 1),
            ("evt_2", "test.refused", "dead_letter", 2),
            ("evt_3", "test.accepted", "processed", 1),
            ("evt_4", "test.unhandled", "ignored", 1),
        ];
        // All queued before the worker starts, so that its first claim takes them together.
        for (id, event_type, _, _) in events {
            webhooks
                .ingest(body(id, event_type).as_bytes())
                .await
                .unwrap();
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

    /// Inserts a row of `effects` per event: what a handler's effects look like.
    struct Recording;

    impl Handler for Recording {
        fn handle<'a>(
            &'a self,
            event: &'a Event,
            conn: &'a mut AnyConnection,
        ) -> BoxFuture<'a, Result<(), HandlerError>> {
            Box::pin(async move {
                sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
                    .bind(&event.id)
                    .execute(conn)
                    .await?;
                Ok(())
            })
        }
    }

    /// With the processor registered, events are processed as they are stored: answered
    /// already processed (or ignored), with their attempt and no job, their copies applied
    /// never. A batch with a failing event is rolled back and stored for the queue instead,
    /// whose retries end it; every effect is applied once.
    #[tokio::test]
    async fn events_are_processed_at_receipt_and_failures_go_through_the_queue() {
        let dir = std::env::temp_dir().join(format!("shared-receipt-test-{}", std::process::id()));
        let (db, jobs, webhooks) = setup(&dir, &[]).await;
        sqlx::query("CREATE TABLE effects (event_id TEXT NOT NULL)")
            .execute(db.pool())
            .await
            .unwrap();
        let handlers = Handlers::new()
            .on(&["test.recorded"], Recording)
            .on(&["test.refused"], Refusing);
        let job_handlers = jobs.handlers().register(webhooks.processor(handlers));
        let jobs_left = || async {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
                .fetch_one(db.pool())
                .await
                .unwrap();
            count
        };

        // One by one, each its own batch, before any worker runs.
        for (id, event_type) in [("evt_1", "test.recorded"), ("evt_2", "test.unhandled")] {
            let stored = webhooks.ingest(body(id, event_type).as_bytes()).await;
            assert_eq!(stored.unwrap(), Ingested::Stored);
        }
        let copy = body("evt_1", "test.recorded");
        let copy = webhooks.ingest(copy.as_bytes()).await;
        assert_eq!(copy.unwrap(), Ingested::Duplicate);
        assert_eq!(status_of(&db, "evt_1").await, ("processed".into(), 1));
        assert_eq!(status_of(&db, "evt_2").await, ("ignored".into(), 1));
        assert_eq!(jobs_left().await, 0);

        // At once: batched together, or not, as they reach the writer. A batch holding evt_5
        // fails and goes through the queue.
        let ids = ["evt_3", "evt_4", "evt_5", "evt_6"];
        let bodies: Vec<String> = ids
            .iter()
            .map(|id| match *id {
                "evt_5" => body(id, "test.refused"),
                _ => body(id, "test.recorded"),
            })
            .collect();
        let stored = futures_util::future::join_all(
            bodies.iter().map(|body| webhooks.ingest(body.as_bytes())),
        )
        .await;
        assert!(stored.iter().all(|s| matches!(s, Ok(Ingested::Stored))));
        assert_eq!(status_of(&db, "evt_5").await, ("pending".into(), 0));

        let worker = jobs.start_worker(job_handlers).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while status_of(&db, "evt_5").await.0 != "dead_letter" {
            assert!(Instant::now() < deadline, "evt_5 is not dead_letter");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for id in ["evt_3", "evt_4", "evt_6"] {
            while status_of(&db, id).await.0 != "processed" {
                assert!(Instant::now() < deadline, "{id} is not processed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let effects: Vec<String> =
            sqlx::query_scalar("SELECT event_id FROM effects ORDER BY event_id")
                .fetch_all(db.pool())
                .await
                .unwrap();
        let mut attempts = Vec::new();
        for id in ["evt_1", "evt_3", "evt_4", "evt_6"] {
            attempts.push(status_of(&db, id).await.1);
        }
        worker.shutdown().await;
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();

        assert_eq!(effects, ["evt_1", "evt_3", "evt_4", "evt_6"]);
        assert_eq!(attempts, [1, 1, 1, 1]);
    }
}
