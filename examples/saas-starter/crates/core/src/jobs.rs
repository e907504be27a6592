//! The durable job queue: work that runs outside the request, on the workspace's own database.
//!
//! The life of a job:
//!
//! 1. Code enqueues it with [`enqueue`] on the connection of its own transaction: the job exists
//!    if and only if that transaction commits (a rollback takes the job with it). A job may be
//!    delayed ([`NewJob::run_at_ms`]) and carry a unique key ([`NewJob::unique`]): while a job with
//!    that key is queued or running, another one with it is not enqueued.
//! 2. A [`Worker`] in every service that has this module (or a process of its own, `<service>
//!    worker`) claims due jobs in batches with a lease ([`store::claim`]): on PostgreSQL with
//!    `FOR UPDATE SKIP LOCKED`, so that instances never claim one job twice; on SQLite, one
//!    writer at a time, with the same statement. PostgreSQL wakes the workers of every instance
//!    when a job is committed (`LISTEN`/`NOTIFY`); otherwise they poll.
//! 3. The job's [`Job`] handler runs. Success marks it `succeeded` (a first attempt of a
//!    [`Job::BATCHED`] kind that succeeds in its batch deletes it instead); a retryable error schedules
//!    the next attempt with exponential backoff and jitter; a permanent error, or the last
//!    attempt failing, marks it `dead` for an operator to retry or discard. Each transition is
//!    fenced: it applies only while the worker still holds the lease it claimed (its owner and
//!    attempt number), so a worker whose lease expired cannot overwrite its successor's work.
//! 4. A worker that dies mid-job loses nothing: its lease expires and another worker claims the
//!    job again. Delivery is at least once: a handler must be idempotent, or do its database
//!    work in the transaction of [`JobContext::complete_in`], which commits only under the lease.
//! 5. Recurring jobs ([`Handlers::schedule`]) fire from cron expressions, exactly once per
//!    period across every instance ([`schedule`]).
//!
//! States: `queued` (waiting for its time or a worker), `running` (leased), `succeeded`, `dead`.

pub mod purge;
pub mod schedule;
pub mod store;
pub mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use tokio::sync::Notify;

pub use schedule::Schedule;
pub use store::{Enqueued, JobDetail, JobSummary, State};
pub use worker::Worker;

use crate::config::Env;
use crate::db::Database;
use crate::error::BoxError;
use crate::metrics::Metrics;

/// How long a failed job waits before its next attempt.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The delay after the first failure; it doubles after each one.
    pub base_delay: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
}

impl Backoff {
    /// The delay before attempt `failed + 1`, after `failed` failures: exponential, capped, with
    /// "equal jitter" (half fixed, half random) so that jobs that failed together, say during
    /// an outage, do not all come back at the same instant.
    pub fn delay_after(&self, failed: i64, random: u64) -> Duration {
        let doublings = u32::try_from(failed.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let exponential = self.base_delay.saturating_mul(1 << doublings);
        let capped = exponential.min(self.max_delay);
        let half = capped / 2;
        let half_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(random % (half_ms + 1))
    }
}

/// A kind of job: its name, its payload and what running it does.
///
/// ```no_run
/// # use saas_starter_core::jobs::{Job, JobContext, JobError};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Welcome { user_id: String }
///
/// struct SendWelcome;
///
/// impl Job for SendWelcome {
///     const KIND: &'static str = "users.welcome";
///     type Payload = Welcome;
///
///     async fn run(&self, ctx: &JobContext, welcome: Welcome) -> Result<(), JobError> {
///         let _ = (ctx.db(), welcome.user_id);
///         Ok(())
///     }
/// }
/// ```
pub trait Job: Send + Sync + 'static {
    /// The name stored with each job, unique across the workspace: `<module>.<what>`.
    const KIND: &'static str;
    /// Attempts before the job is dead, the first included.
    const MAX_ATTEMPTS: i64 = 10;
    /// What a job of this kind carries, stored as JSON.
    type Payload: Serialize + DeserializeOwned + Send + 'static;

    /// Runs one attempt. `Ok` marks the job succeeded; [`JobError::Retry`] schedules another
    /// attempt (while any are left); [`JobError::Permanent`] marks it dead at once.
    fn run(
        &self,
        ctx: &JobContext,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<(), JobError>> + Send;

    /// The delays between this kind's attempts; `None` (the default) for the queue's
    /// (`JOBS_RETRY_*`). A kind with settings of its own (the webhooks' `WEBHOOKS_RETRY_*`)
    /// returns them.
    fn backoff(&self) -> Option<Backoff> {
        None
    }

    /// Whether the worker runs the first attempts of this kind's jobs in batches, each in one
    /// transaction of its own, through [`Job::run_first_attempts`] (later attempts run through
    /// [`Job::run`], with leases).
    const BATCHED: bool = false;

    /// Runs the first attempts of `jobs` on `conn`, a transaction in which the worker (named
    /// `worker`) has already taken them off the queue: their rows are deleted and stay locked
    /// (no lease: while the transaction is open, other workers skip them; if the process dies,
    /// it rolls back and they are queued as before). `Ok`: the transaction commits, the
    /// handler's writes with the jobs' removal, once; the jobs leave no row (`succeeded`
    /// counts only jobs run through [`Job::run`]), so the kind records its own history.
    /// `Err`: it rolls back as if it never ran, and each job runs again through [`Job::run`],
    /// where a failure is its own (retries, dead).
    ///
    /// Called only when [`Job::BATCHED`]; the default refuses, which sends the jobs to `run`.
    fn run_first_attempts(
        &self,
        conn: &mut AnyConnection,
        worker: &str,
        jobs: Vec<FirstAttempt<Self::Payload>>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = (conn, worker, jobs);
        async { Err::<(), BoxError>(format!("{} does not run jobs in batches", Self::KIND).into()) }
    }
}

/// A job of a [`Job::BATCHED`] kind whose first attempt runs in a batch.
#[derive(Debug, Clone)]
pub struct FirstAttempt<P> {
    pub id: i64,
    pub payload: P,
}

/// Why an attempt failed. The message is stored with the job for operators.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth trying again later (a timeout, a server down, a lock).
    #[error("{0}")]
    Retry(BoxError),
    /// Will fail however often it is tried (a malformed payload, a refused address).
    #[error("{0}")]
    Permanent(BoxError),
}

impl JobError {
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self::Retry(error.into())
    }

    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::Permanent(error.into())
    }
}

/// A database error is worth retrying: most are transient (a lost connection, a deadlock).
impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        Self::Retry(error.into())
    }
}

/// What a running attempt knows about itself, and the database.
pub struct JobContext {
    db: Database,
    lease: store::Lease,
    kind: &'static str,
    max_attempts: i64,
    abandoned: bool,
    /// Set by [`JobContext::complete_in`] (or [`complete_all_in`]): the worker then leaves the
    /// job's success alone.
    completed: Arc<AtomicBool>,
}

impl JobContext {
    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn id(&self) -> i64 {
        self.lease.id
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> i64 {
        self.lease.attempt
    }

    /// Whether this is the last attempt: a failure now makes the job dead.
    pub fn is_last_attempt(&self) -> bool {
        self.lease.attempt >= self.max_attempts
    }

    /// The worker running this attempt (`<process id>-<instance>/<loop>`), as leases name it.
    pub fn worker(&self) -> &str {
        &self.lease.owner
    }

    /// Whether the previous attempt's worker stopped or crashed before finishing it (its lease
    /// expired): the queue records that attempt in `job_errors`; a kind with a history of its
    /// own records it there too.
    pub fn previous_attempt_abandoned(&self) -> bool {
        self.abandoned
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Marks the job succeeded on `conn`, a transaction of the handler's that the handler then
    /// commits: its writes and the job's success commit together, and only while this worker
    /// still holds the lease. `false` when the lease was lost (it expired and another worker
    /// took the job): then the handler must roll back and return, its work is another's now.
    pub async fn complete_in(&self, conn: &mut AnyConnection) -> sqlx::Result<bool> {
        let held = complete_all_in(conn, std::slice::from_ref(&self.completion())).await?;
        Ok(held.first().copied().unwrap_or(false))
    }

    /// What completes this job from another task's transaction ([`complete_all_in`]): for a
    /// kind whose handlers hand their work to a task that does many jobs' in one transaction.
    pub fn completion(&self) -> Completion {
        Completion {
            lease: self.lease.clone(),
            completed: self.completed.clone(),
        }
    }

    /// Whether the handler recorded the job's success itself ([`JobContext::complete_in`]).
    fn completed(&self) -> bool {
        self.completed.load(Ordering::Relaxed)
    }
}

/// A running job's lease, to mark it succeeded in a transaction of another task's
/// ([`JobContext::completion`]).
#[derive(Debug, Clone)]
pub struct Completion {
    lease: store::Lease,
    completed: Arc<AtomicBool>,
}

impl Completion {
    /// The job's id.
    pub fn id(&self) -> i64 {
        self.lease.id
    }
}

/// [`JobContext::complete_in`] for several jobs in one statement: for each, whether its lease
/// held (`false`: another worker has it, its work must not commit). Call it before the jobs'
/// work in the transaction: it locks their rows, so that a worker that took a job over waits
/// for this transaction and then finds the job finished. Should the transaction roll back
/// after all, the jobs' leases run out and they run again (at least once).
pub async fn complete_all_in(
    conn: &mut AnyConnection,
    completions: &[Completion],
) -> sqlx::Result<Vec<bool>> {
    let leases: Vec<store::Lease> = completions.iter().map(|c| c.lease.clone()).collect();
    let done: std::collections::HashSet<i64> = store::succeed(conn, &leases, worker::now_ms())
        .await?
        .into_iter()
        .collect();
    Ok(completions
        .iter()
        .map(|completion| {
            let held = done.contains(&completion.lease.id);
            if held {
                completion.completed.store(true, Ordering::Relaxed);
            }
            held
        })
        .collect())
}

/// A job to enqueue: its kind, its payload as JSON, and when it is due.
#[derive(Debug, Clone)]
pub struct NewJob {
    kind: &'static str,
    payload: String,
    max_attempts: i64,
    run_at_ms: Option<i64>,
    unique_key: Option<String>,
}

impl NewJob {
    /// A job of kind `J` carrying `payload`, due now.
    pub fn of<J: Job>(payload: &J::Payload) -> Result<Self, serde_json::Error> {
        Ok(Self {
            kind: J::KIND,
            payload: serde_json::to_string(payload)?,
            max_attempts: J::MAX_ATTEMPTS.max(1),
            run_at_ms: None,
            unique_key: None,
        })
    }

    /// At most `attempts` attempts (at least 1) rather than the kind's `MAX_ATTEMPTS`: for kinds
    /// whose limit is a setting.
    pub fn max_attempts(mut self, attempts: i64) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Due at `unix_ms` (Unix milliseconds) rather than now.
    pub fn run_at_ms(mut self, unix_ms: i64) -> Self {
        self.run_at_ms = Some(unix_ms);
        self
    }

    /// Due `delay` from now.
    pub fn delay(self, delay: Duration) -> Self {
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.run_at_ms(worker::now_ms().saturating_add(delay_ms))
    }

    /// Not enqueued while a job with `key` is queued or running (see [`Enqueued::Duplicate`]).
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

/// Enqueues `job` on `conn`, the caller's transaction: the job exists once, and only if, that
/// transaction commits. Use the connection the change that asks for the job is written on:
///
/// ```no_run
/// # use saas_starter_core::jobs::{self, Job, JobContext, JobError, NewJob};
/// # struct SendWelcome;
/// # impl Job for SendWelcome {
/// #     const KIND: &'static str = "users.welcome";
/// #     type Payload = String;
/// #     async fn run(&self, _: &JobContext, _: String) -> Result<(), JobError> { Ok(()) }
/// # }
/// # async fn example(db: &saas_starter_core::db::Database) -> Result<(), Box<dyn std::error::Error>> {
/// let mut tx = db.begin_write().await?;
/// // ... the user is inserted on `tx` ...
/// jobs::enqueue(&mut tx, &NewJob::of::<SendWelcome>(&"user-id".to_owned())?).await?;
/// tx.commit().await?;
/// # Ok(())
/// # }
/// ```
pub async fn enqueue(conn: &mut AnyConnection, job: &NewJob) -> sqlx::Result<Enqueued> {
    store::enqueue(conn, std::slice::from_ref(job), worker::now_ms())
        .await
        .map(|mut all| all.pop().unwrap_or(Enqueued::Duplicate))
}

/// [`enqueue`] for several jobs in one statement (on PostgreSQL), in order.
pub async fn enqueue_all(conn: &mut AnyConnection, jobs: &[NewJob]) -> sqlx::Result<Vec<Enqueued>> {
    store::enqueue(conn, jobs, worker::now_ms()).await
}

/// A handler of one kind, its payload type erased so that kinds of every type share one map.
trait Erased: Send + Sync {
    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>>;

    fn backoff(&self) -> Option<Backoff>;

    fn batched(&self) -> bool;

    fn run_first_attempts<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        worker: &'a str,
        jobs: &'a [store::Taken],
    ) -> BoxFuture<'a, Result<(), BoxError>>;
}

struct Typed<J>(J);

impl<J: Job> Erased for Typed<J> {
    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            // A payload that does not parse never will: no point retrying it.
            let payload: J::Payload = serde_json::from_str(payload).map_err(|error| {
                JobError::permanent(format!("the payload is not a {} payload: {error}", J::KIND))
            })?;
            self.0.run(ctx, payload).await
        })
    }

    fn backoff(&self) -> Option<Backoff> {
        self.0.backoff()
    }

    fn batched(&self) -> bool {
        J::BATCHED
    }

    fn run_first_attempts<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        worker: &'a str,
        jobs: &'a [store::Taken],
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            // A payload that does not parse fails the batch: its job then fails on its own in
            // `run`, permanently.
            let jobs = jobs
                .iter()
                .map(|job| {
                    Ok(FirstAttempt {
                        id: job.id,
                        payload: serde_json::from_str(&job.payload)?,
                    })
                })
                .collect::<Result<Vec<_>, serde_json::Error>>()?;
            self.0.run_first_attempts(conn, worker, jobs).await
        })
    }
}

/// The job kinds this service runs, and its recurring jobs. Modules add theirs in their startup
/// snippets (`let job_handlers = job_handlers.register(...)`), before the worker starts.
#[derive(Clone, Default)]
pub struct Handlers {
    by_kind: HashMap<&'static str, Arc<dyn Erased>>,
    schedules: Vec<Schedule>,
}

impl Handlers {
    /// Runs the jobs of kind `J::KIND` with `job`.
    pub fn register<J: Job>(mut self, job: J) -> Self {
        self.by_kind.insert(J::KIND, Arc::new(Typed(job)));
        self
    }

    /// Enqueues `job` at each time of `schedule` (see [`Schedule`]), once per time across every
    /// instance. `name` identifies the schedule in the database.
    pub fn schedule(mut self, name: &'static str, schedule: croner::Cron, job: NewJob) -> Self {
        self.schedules.push(Schedule::new(name, schedule, job));
        self
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> = self.by_kind.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    fn get(&self, kind: &str) -> Option<(&'static str, &Arc<dyn Erased>)> {
        self.by_kind
            .get_key_value(kind)
            .map(|(kind, job)| (*kind, job))
    }
}

/// Whether this process was started as `<service> worker`: the jobs worker alone, no HTTP.
pub fn worker_command() -> bool {
    std::env::args().nth(1).as_deref() == Some("worker")
}

/// The `JOBS_*` settings of the queue, and the `<SERVICE>_JOBS_*` ones of this service's worker.
/// Not `Debug`: it holds `DATABASE_URL`, which may hold a password.
#[derive(Clone)]
pub struct JobsConfig {
    /// Run a worker in the service's process (the `worker` command runs one regardless).
    worker: bool,
    concurrency: usize,
    batch_size: i64,
    /// The kinds this service's worker runs; empty for every registered one.
    kinds: Vec<String>,
    base_delay: Duration,
    max_delay: Duration,
    lease: Duration,
    poll_interval: Duration,
    shutdown_grace: Duration,
    retention_days: u64,
    purge_schedule: Option<croner::Cron>,
    /// `DATABASE_URL` when it is PostgreSQL's: the workers listen there for new jobs.
    listen_url: Option<String>,
}

impl JobsConfig {
    /// Reads the settings; `service_prefix` is the service's (`API` for `API_JOBS_WORKER`).
    pub fn from_env(env: &mut Env, service_prefix: &str) -> Self {
        let mut positive = |key: &str, default: u64| {
            let value: u64 = env.optional(key, default);
            if value == 0 {
                env.record(key, "must be at least 1");
            }
            value
        };
        let concurrency = positive(&format!("{service_prefix}_JOBS_CONCURRENCY"), 2);
        let batch_size = positive("JOBS_BATCH_SIZE", 100);
        let base_delay = positive("JOBS_RETRY_BASE_MS", 1_000);
        let max_delay = positive("JOBS_RETRY_MAX_MS", 3_600_000);
        let lease = positive("JOBS_LEASE_SECS", 60);
        let poll_interval = positive("JOBS_POLL_INTERVAL_MS", 500);
        let shutdown_grace = positive("JOBS_SHUTDOWN_GRACE_SECS", 20);
        let worker = env.optional(&format!("{service_prefix}_JOBS_WORKER"), true);
        let kinds: String = env.optional(&format!("{service_prefix}_JOBS_KINDS"), String::new());
        let retention_days = env.optional("JOBS_RETENTION_DAYS", 7);
        const PURGE: &str = "JOBS_PURGE_SCHEDULE";
        let purge: String = env.optional(PURGE, "@hourly".to_owned());
        let purge_schedule = if purge.trim() == "off" {
            None
        } else {
            match schedule::parse(&purge) {
                Ok(cron) => Some(cron),
                Err(error) => {
                    env.record(
                        PURGE,
                        format!("is not a cron expression ({error}), nor `off`"),
                    );
                    None
                }
            }
        };
        // Read here too (the `db` module reads it first): a PostgreSQL listener is a connection
        // of its own, outside the `Any` pool.
        let url: String = env.optional("DATABASE_URL", String::new());
        let listen_url =
            (url.starts_with("postgres://") || url.starts_with("postgresql://")).then_some(url);
        Self {
            worker,
            concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
            batch_size: i64::try_from(batch_size).unwrap_or(i64::MAX),
            kinds: kinds
                .split(',')
                .map(str::trim)
                .filter(|kind| !kind.is_empty())
                .map(str::to_owned)
                .collect(),
            base_delay: Duration::from_millis(base_delay),
            max_delay: Duration::from_millis(max_delay),
            lease: Duration::from_secs(lease),
            poll_interval: Duration::from_millis(poll_interval),
            shutdown_grace: Duration::from_secs(shutdown_grace),
            retention_days,
            purge_schedule,
            listen_url,
        }
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(
        "{key} names job kinds this service does not have: {unknown} (it has: {known})",
        unknown = unknown.join(", "),
        known = known.join(", ")
    )]
    UnknownKinds {
        key: String,
        unknown: Vec<String>,
        known: Vec<&'static str>,
    },
    #[error("cannot watch for the signals that stop the worker")]
    Signals(#[source] std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueueLabels {
    kind: String,
    state: String,
}

/// The queue of this service: what its worker needs, shared by its tasks. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    config: JobsConfig,
    service_prefix: String,
    /// Wakes one of this instance's idle worker loops: new jobs were committed. One, not all:
    /// the first takes what is due, and wakes another only when it found a full batch (more
    /// may be due); waking every loop made all but one look for work the first had taken.
    new_jobs: Notify,
    /// Whether the worker's PostgreSQL listener is connected: then every commit of new jobs
    /// wakes this instance through it, and [`Jobs::wake`] has nothing to add.
    listening: AtomicBool,
}

impl Jobs {
    pub fn new(db: Database, config: JobsConfig, service_prefix: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                config,
                service_prefix: service_prefix.to_owned(),
                new_jobs: Notify::new(),
                listening: AtomicBool::new(false),
            }),
        }
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Adds `job_queue_jobs` to `metrics`: the jobs by kind and state, counted in the database
    /// at each scrape (webhook processing is kind `webhooks.process`), so a growing backlog or
    /// dead jobs can be alerted on. One query per scrape, none on the path of a request.
    pub fn register_metrics(&self, metrics: &Metrics) {
        let jobs = Family::<QueueLabels, Gauge>::default();
        metrics.register(
            "job_queue_jobs",
            "Jobs in the queue, by kind and state (queued, running, succeeded, dead)",
            jobs.clone(),
        );
        let db = self.inner.db.clone();
        metrics.refresh_on_scrape(move || {
            let (db, jobs) = (db.clone(), jobs.clone());
            Box::pin(async move {
                match store::counts(&db).await {
                    Ok(counts) => {
                        // A kind and state with no job left is gone from the next scrape.
                        jobs.clear();
                        for count in counts {
                            let labels = QueueLabels {
                                kind: count.kind,
                                state: count.state,
                            };
                            jobs.get_or_create(&labels).set(count.jobs);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot count the jobs for /metrics"),
                }
            })
        });
    }

    /// The built-in kinds, to which modules add theirs: the purge of old finished jobs, and its
    /// schedule (`JOBS_PURGE_SCHEDULE`).
    pub fn handlers(&self) -> Handlers {
        let config = &self.inner.config;
        let handlers = Handlers::default().register(purge::Purge);
        match &config.purge_schedule {
            Some(cron) => handlers.schedule(
                purge::SCHEDULE,
                cron.clone(),
                purge::Purge::job(config.retention_days),
            ),
            None => handlers,
        }
    }

    /// Enqueues `job` in a transaction of its own and wakes this instance's worker at once.
    pub async fn enqueue_now(&self, job: &NewJob) -> sqlx::Result<Enqueued> {
        let mut tx = self.inner.db.begin_write().await?;
        let enqueued = enqueue(&mut tx, job).await?;
        tx.commit().await?;
        self.wake();
        Ok(enqueued)
    }

    /// Wakes an idle loop of this instance's worker at once: jobs were just committed here (on
    /// SQLite they would otherwise wait for the next poll). Nothing while the worker listens
    /// on PostgreSQL, which notifies every instance, this one included: a second wake for the
    /// same jobs would only send a second loop looking for them.
    pub fn wake(&self) {
        if !self.inner.listening.load(Ordering::Relaxed) {
            self.inner.new_jobs.notify_one();
        }
    }

    /// Starts the worker with `handlers` unless this service runs none
    /// (`<SERVICE>_JOBS_WORKER=false`); stop it with [`Worker::shutdown`].
    pub fn start_worker(&self, handlers: Handlers) -> Result<Worker, JobsError> {
        if self.inner.config.worker {
            Worker::start(self.clone(), handlers)
        } else {
            tracing::info!(
                "no jobs worker in this process ({}_JOBS_WORKER=false)",
                self.inner.service_prefix
            );
            Ok(Worker::idle())
        }
    }

    /// The `worker` command: runs the worker until SIGTERM or Ctrl-C, then stops it gracefully.
    pub async fn run_worker(&self, handlers: Handlers) -> Result<(), JobsError> {
        let worker = Worker::start(self.clone(), handlers)?;
        crate::http::shutdown_signal()
            .map_err(JobsError::Signals)?
            .await;
        worker.shutdown().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
