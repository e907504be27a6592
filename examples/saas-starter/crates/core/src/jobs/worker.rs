//! The worker: loops that claim due jobs in batches, run their handlers, and record the
//! outcomes; the scheduler of recurring jobs; and, on PostgreSQL, the listener that wakes the
//! loops when jobs are committed anywhere.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::store::{self, AfterFailure, Claimed, Lease};
use super::{Backoff, Erased, Handlers, JobContext, JobError, Jobs, JobsError};

/// How long a loop waits after a database error before trying again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The running worker: [`Worker::shutdown`] stops it.
pub struct Worker {
    stop: Option<watch::Sender<bool>>,
    tasks: JoinSet<()>,
}

impl Worker {
    /// A worker that runs nothing: the service leaves its jobs to other processes.
    pub(super) fn idle() -> Self {
        Self {
            stop: None,
            tasks: JoinSet::new(),
        }
    }

    pub(super) fn start(jobs: Jobs, handlers: Handlers) -> Result<Self, JobsError> {
        let config = &jobs.inner.config;
        let kinds = runs(&handlers, &config.kinds).map_err(|unknown| JobsError::UnknownKinds {
            key: format!("{}_JOBS_KINDS", jobs.inner.service_prefix),
            unknown,
            known: handlers.kinds(),
        })?;
        let (stop, stopped) = watch::channel(false);
        // Identifies this process in leases and in the errors of attempts.
        let instance = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
        let batched = kinds
            .iter()
            .copied()
            .filter(|kind| handlers.get(kind).is_some_and(|(_, job)| job.batched()))
            .collect();
        let shared = Arc::new(Shared {
            jobs: jobs.clone(),
            handlers: handlers.clone(),
            kinds,
            batched,
            backoff: Backoff {
                base_delay: config.base_delay,
                max_delay: config.max_delay,
            },
        });
        let mut tasks = JoinSet::new();
        for number in 0..config.concurrency {
            let run = Loop {
                shared: shared.clone(),
                name: format!("{instance}/{number}"),
                stopped: stopped.clone(),
            };
            tasks.spawn(run.run());
        }
        if !handlers.schedules.is_empty() {
            tasks.spawn(super::schedule::run(
                jobs.clone(),
                handlers.schedules.clone(),
                stopped.clone(),
            ));
        }
        if let Some(url) = config.listen_url.clone() {
            tasks.spawn(listen(jobs.clone(), url, stopped));
        }
        tracing::info!(
            loops = config.concurrency,
            kinds = %shared.kinds.join(","),
            "jobs worker started"
        );
        Ok(Self {
            stop: Some(stop),
            tasks,
        })
    }

    /// Stops claiming jobs, waits for those in progress (at most `JOBS_SHUTDOWN_GRACE_SECS`,
    /// after which the unfinished ones are given back to the queue), and returns.
    pub async fn shutdown(mut self) {
        let Some(stop) = self.stop.take() else {
            return;
        };
        // Fails only when every task has ended already.
        let _ = stop.send(true);
        while let Some(result) = self.tasks.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "a jobs worker task panicked");
            }
        }
        tracing::info!("jobs worker stopped");
    }
}

/// The kinds a worker runs: `only` (`<SERVICE>_JOBS_KINDS`) if set, every registered kind
/// otherwise; the kinds of `only` that are not registered as the error.
pub(super) fn runs(handlers: &Handlers, only: &[String]) -> Result<Vec<&'static str>, Vec<String>> {
    if only.is_empty() {
        return Ok(handlers.kinds());
    }
    let mut kinds = Vec::new();
    let mut unknown = Vec::new();
    for kind in only {
        match handlers.get(kind) {
            Some((kind, _)) => kinds.push(kind),
            None => unknown.push(kind.clone()),
        }
    }
    if unknown.is_empty() {
        Ok(kinds)
    } else {
        Err(unknown)
    }
}

/// What the loops of one worker share.
struct Shared {
    jobs: Jobs,
    handlers: Handlers,
    kinds: Vec<&'static str>,
    /// The kinds among `kinds` whose first attempts run in batches ([`super::Job::BATCHED`]).
    batched: Vec<&'static str>,
    backoff: Backoff,
}

/// One of the worker's loops: claims a batch of jobs, runs them all at once, records the
/// outcomes, and again.
struct Loop {
    shared: Arc<Shared>,
    name: String,
    stopped: watch::Receiver<bool>,
}

/// A claimed job, ready to run.
struct Ready {
    claimed: Claimed,
    ctx: JobContext,
    handler: Arc<dyn Erased>,
    payload: String,
}

impl Loop {
    async fn run(mut self) {
        let shared = self.shared.clone();
        let inner = &shared.jobs.inner;
        while !*self.stopped.borrow() {
            // Created before claiming, so that a job committed during the claim wakes it: a
            // notification meanwhile leaves a permit that this future takes.
            let notified = inner.new_jobs.notified();
            if !shared.batched.is_empty() {
                match self.run_first_attempts().await {
                    // A full batch: more are probably due, for another loop too. The leased
                    // claim below waits until the batched kinds' first attempts are drained
                    // (their retries and other kinds wait meanwhile), so that it does not scan
                    // a backlog it leaves.
                    Ok(taken) if taken >= inner.config.batch_size => {
                        inner.new_jobs.notify_one();
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(%error, "cannot run a batch of first attempts");
                        self.pause(ERROR_PAUSE).await;
                        continue;
                    }
                }
            }
            let batch = match self.claim().await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, "cannot claim jobs");
                    self.pause(ERROR_PAUSE).await;
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(inner.config.poll_interval) => {}
                    _ = self.stopped.changed() => {}
                }
                continue;
            }
            // A full batch: more may be due, for another loop (a notification wakes only one).
            if i64::try_from(batch.len()).unwrap_or(i64::MAX) >= inner.config.batch_size {
                inner.new_jobs.notify_one();
            }
            self.process(batch).await;
        }
    }

    async fn pause(&mut self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            _ = self.stopped.changed() => {}
        }
    }

    /// Leases a batch of due jobs to this loop, with their payloads and handlers.
    async fn claim(&self) -> sqlx::Result<Vec<Ready>> {
        let shared = &*self.shared;
        let inner = &shared.jobs.inner;
        let now = now_ms();
        let lease_ms = i64::try_from(inner.config.lease.as_millis()).unwrap_or(i64::MAX);
        let claimed = {
            let _turn = inner.db.turns().take().await;
            store::claim(
                &inner.db,
                &self.name,
                &shared.kinds,
                &shared.batched,
                inner.config.batch_size,
                now,
                now.saturating_add(lease_ms),
            )
            .await?
        };
        Ok(self.ready(claimed))
    }

    /// The handlers and contexts of `claimed` jobs.
    fn ready(&self, claimed: Vec<Claimed>) -> Vec<Ready> {
        let shared = &*self.shared;
        let inner = &shared.jobs.inner;
        let mut ready = Vec::with_capacity(claimed.len());
        for job in claimed {
            // Claimed only for the kinds this worker has, so a handler is always there.
            let Some((kind, handler)) = shared.handlers.get(&job.kind) else {
                continue;
            };
            ready.push(Ready {
                ctx: JobContext {
                    db: inner.db.clone(),
                    lease: job.lease.clone(),
                    kind,
                    max_attempts: job.max_attempts,
                    abandoned: job.abandoned,
                    completed: Arc::new(AtomicBool::new(false)),
                },
                handler: handler.clone(),
                payload: job.payload.clone(),
                claimed: job,
            });
        }
        ready
    }

    /// Runs a batch of due first attempts of the batched kinds in one transaction
    /// ([`store::take_first_attempts`], then each kind's [`super::Job::run_first_attempts`],
    /// then one commit); returns how many it took. If the batch fails, it rolls back and its
    /// jobs run again one by one, leased, through [`Loop::process`].
    async fn run_first_attempts(&mut self) -> sqlx::Result<i64> {
        let shared = self.shared.clone();
        let inner = &shared.jobs.inner;
        let mut tx = inner.db.turns().begin(&inner.db).await?;
        let taken =
            store::take_first_attempts(&mut tx, &shared.batched, inner.config.batch_size, now_ms())
                .await?;
        if taken.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let count = i64::try_from(taken.len()).unwrap_or(i64::MAX);
        let mut result = Ok(());
        let mut rest = taken.as_slice();
        // Each kind's jobs in one call (usually there is one kind), in the order taken.
        while let Some(first) = rest.first() {
            let length = rest.iter().take_while(|job| job.kind == first.kind).count();
            let (run, next) = rest.split_at(length);
            rest = next;
            // Taken only for the kinds this worker has, so a handler is always there; were it
            // not, the jobs must not commit as taken without having run.
            result = match shared.handlers.get(&first.kind) {
                Some((_, handler)) => handler.run_first_attempts(&mut tx, &self.name, run).await,
                None => Err(format!("no handler for kind {}", first.kind).into()),
            };
            if result.is_err() {
                break;
            }
        }
        let result = match result {
            Ok(()) => tx.commit().await.map_err(Into::into),
            Err(error) => {
                // Also a connection that failed: then the transaction is lost anyway.
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(error = %rollback, "cannot roll a failed batch back");
                }
                Err(error)
            }
        };
        let Err(error) = result else {
            return Ok(count);
        };
        tracing::info!(%error, jobs = count, "a batch of first attempts failed; running its jobs one by one");
        let ids: Vec<i64> = taken.iter().map(|job| job.id).collect();
        let lease_ms = i64::try_from(inner.config.lease.as_millis()).unwrap_or(i64::MAX);
        let claimed = {
            let _turn = inner.db.turns().take().await;
            store::claim_ids(
                &inner.db,
                &self.name,
                &ids,
                now_ms().saturating_add(lease_ms),
            )
            .await?
        };
        let ready = self.ready(claimed);
        self.process(ready).await;
        Ok(count)
    }

    /// Runs a batch's handlers concurrently, extending their leases while they run, then
    /// records the successes in one statement and each failure on its own. Once stopping, it
    /// waits at most the shutdown grace, then gives the unfinished jobs back.
    async fn process(&mut self, batch: Vec<Ready>) {
        let shared = self.shared.clone();
        let inner = &shared.jobs.inner;
        for ready in batch.iter().filter(|ready| ready.claimed.abandoned) {
            self.record_abandoned(&ready.claimed).await;
        }
        // A job whose abandoned attempt was its last is dead without running again.
        let (spent, batch): (Vec<Ready>, Vec<Ready>) = batch
            .into_iter()
            .partition(|ready| ready.claimed.lease.attempt > ready.claimed.max_attempts);
        for ready in &spent {
            let error = "out of attempts: the last one's worker stopped or crashed mid-job";
            self.record_failure(&ready.claimed.lease, error, AfterFailure::Dead)
                .await;
        }
        let mut running: FuturesUnordered<_> = batch
            .iter()
            .map(|ready| async move {
                let result = ready.handler.run(&ready.ctx, &ready.payload).await;
                (ready, result)
            })
            .collect();
        let mut unfinished: HashMap<i64, &Lease> = batch
            .iter()
            .map(|ready| (ready.claimed.lease.id, &ready.claimed.lease))
            .collect();
        let mut succeeded: Vec<Lease> = Vec::new();
        let mut failed: Vec<(&Ready, JobError)> = Vec::new();
        // Leases are extended at a third of their length, long before they could run out.
        let mut renew = tokio::time::interval(inner.config.lease / 3);
        renew.tick().await;
        let mut stopped = self.stopped.clone();
        // Armed when the worker stops.
        let grace = tokio::time::sleep(Duration::from_secs(86_400 * 365));
        tokio::pin!(grace);
        let mut stopping = *stopped.borrow();
        let mut gave_up = false;
        if stopping {
            grace
                .as_mut()
                .reset(tokio::time::Instant::now() + inner.config.shutdown_grace);
        }
        loop {
            tokio::select! {
                next = running.next() => match next {
                    Some((ready, Ok(()))) => {
                        unfinished.remove(&ready.claimed.lease.id);
                        // A handler that completed the job in its own transaction did it all.
                        if !ready.ctx.completed() {
                            succeeded.push(ready.claimed.lease.clone());
                        }
                    }
                    Some((ready, Err(error))) => {
                        unfinished.remove(&ready.claimed.lease.id);
                        failed.push((ready, error));
                    }
                    None => break,
                },
                _ = renew.tick() => {
                    let leases: Vec<Lease> = unfinished.values().map(|lease| (*lease).clone()).collect();
                    // On a task of its own: awaited here, it would stop polling the handlers,
                    // and on SQLite wait for the write turn of one of them, which could not
                    // finish its transaction to give it back.
                    tokio::spawn(extend(shared.jobs.clone(), leases));
                }
                changed = stopped.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        grace.as_mut().reset(tokio::time::Instant::now() + inner.config.shutdown_grace);
                    }
                }
                () = &mut grace => {
                    gave_up = true;
                    break;
                }
            }
        }
        if gave_up {
            // The handlers still running stop here, dropped.
            drop(running);
            let leases: Vec<Lease> = unfinished.values().map(|lease| (*lease).clone()).collect();
            tracing::warn!(
                jobs = leases.len(),
                "shutdown grace over: giving unfinished jobs back"
            );
            if let Err(error) = store::release(&inner.db, &leases, now_ms()).await {
                tracing::error!(%error, "cannot give jobs back; their leases will expire");
            }
        }
        self.record_successes(&succeeded).await;
        for (ready, error) in failed {
            self.record_job_error(ready, &error).await;
        }
    }

    /// Marks `leases` succeeded in one transaction.
    async fn record_successes(&self, leases: &[Lease]) {
        if leases.is_empty() {
            return;
        }
        let inner = &self.shared.jobs.inner;
        // One statement, committed on its own: no transaction around it to begin and commit.
        let result = async {
            let _turn = inner.db.turns().take().await;
            let mut conn = inner.db.pool().acquire().await?;
            store::succeed(&mut conn, leases, now_ms()).await
        }
        .await;
        match result {
            Ok(done) if done.len() == leases.len() => {}
            Ok(done) => {
                let done: HashSet<i64> = done.into_iter().collect();
                for lease in leases.iter().filter(|lease| !done.contains(&lease.id)) {
                    tracing::warn!(
                        job = lease.id,
                        "lease lost to another worker; not marking the job"
                    );
                }
            }
            // The leases expire and the jobs run again: at least once.
            Err(error) => tracing::error!(%error, "cannot mark jobs succeeded"),
        }
    }

    /// Schedules the next attempt of a failed job, or marks it dead.
    async fn record_job_error(&self, ready: &Ready, error: &JobError) {
        let lease = &ready.claimed.lease;
        let message = error.to_string();
        let last = lease.attempt >= ready.claimed.max_attempts;
        let after = match error {
            JobError::Retry(_) if !last => {
                let backoff = ready.handler.backoff().unwrap_or(self.shared.backoff);
                let delay = backoff.delay_after(lease.attempt, getrandom::u64().unwrap_or(0));
                let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                tracing::warn!(
                    job = lease.id,
                    kind = %ready.claimed.kind,
                    attempt = lease.attempt,
                    retry_in_ms = delay_ms,
                    error = %message,
                    "job failed; retry scheduled"
                );
                AfterFailure::RetryAt(now_ms().saturating_add(delay_ms))
            }
            _ => {
                tracing::error!(
                    job = lease.id,
                    kind = %ready.claimed.kind,
                    attempt = lease.attempt,
                    error = %message,
                    "job dead"
                );
                AfterFailure::Dead
            }
        };
        self.record_failure(lease, &message, after).await;
    }

    async fn record_failure(&self, lease: &Lease, error: &str, after: AfterFailure) {
        let inner = &self.shared.jobs.inner;
        let result = async {
            let mut tx = inner.db.turns().begin(&inner.db).await?;
            let held = store::fail(&mut tx, lease, error, after, now_ms()).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(held)
        }
        .await;
        match result {
            Ok(true) => {}
            Ok(false) => tracing::warn!(job = lease.id, "lease lost to another worker"),
            Err(error) => tracing::error!(job = lease.id, %error, "cannot record a job's failure"),
        }
    }

    /// Records the attempt before `claimed`'s, which its worker left unfinished.
    async fn record_abandoned(&self, claimed: &Claimed) {
        let inner = &self.shared.jobs.inner;
        let lease = &claimed.lease;
        tracing::warn!(job = lease.id, kind = %claimed.kind, "taking over a job whose lease expired");
        let result = async {
            let mut conn = inner.db.pool().acquire().await?;
            store::record_error(
                &mut conn,
                lease.id,
                lease.attempt - 1,
                "-",
                "the lease expired before the attempt finished: its worker stopped or crashed",
                now_ms(),
            )
            .await
        }
        .await;
        if let Err(error) = result {
            tracing::error!(job = lease.id, %error, "cannot record an abandoned attempt");
        }
    }
}

/// Extends `leases` by a lease's length: their handlers are still running.
async fn extend(jobs: Jobs, leases: Vec<Lease>) {
    let inner = &jobs.inner;
    let lease_ms = i64::try_from(inner.config.lease.as_millis()).unwrap_or(i64::MAX);
    let until = now_ms().saturating_add(lease_ms);
    let extended = {
        let _turn = inner.db.turns().take().await;
        store::extend(&inner.db, &leases, until).await
    };
    match extended {
        Ok(held) => {
            let held: HashSet<i64> = held.into_iter().collect();
            for lease in leases.iter().filter(|lease| !held.contains(&lease.id)) {
                // Also a job that finished since the extension was sent: no cause for alarm.
                tracing::info!(
                    job = lease.id,
                    "lease not extended: the job finished, or another worker took it over"
                );
            }
        }
        Err(error) => tracing::error!(%error, "cannot extend job leases"),
    }
}

/// Wakes this instance's idle loops when jobs are committed, by any instance: PostgreSQL
/// notifies channel `jobs` at each commit of an insert into `jobs` (see the migration).
async fn listen(jobs: Jobs, url: String, mut stopped: watch::Receiver<bool>) {
    let inner = &jobs.inner;
    loop {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen("jobs").await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            listener = listener => match listener {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for new jobs; polling meanwhile");
                    tokio::select! {
                        () = tokio::time::sleep(ERROR_PAUSE * 5) => continue,
                        _ = stopped.changed() => return,
                    }
                }
            },
            _ = stopped.changed() => return,
        };
        inner.listening.store(true, Ordering::Relaxed);
        loop {
            tokio::select! {
                // `PgListener` reconnects by itself after an error.
                notification = listener.try_recv() => match notification {
                    Ok(Some(_)) => {
                        // Again after a reconnection (`Ok(None)` below).
                        inner.listening.store(true, Ordering::Relaxed);
                        inner.new_jobs.notify_one();
                    }
                    // The connection was lost: wake the loops, new jobs may have been missed
                    // (and until it is back, `Jobs::wake` wakes them for this instance's).
                    Ok(None) => {
                        inner.listening.store(false, Ordering::Relaxed);
                        inner.new_jobs.notify_waiters();
                    }
                    Err(error) => {
                        tracing::warn!(%error, "lost the listener for new jobs");
                        inner.listening.store(false, Ordering::Relaxed);
                        break;
                    }
                },
                _ = stopped.changed() => return,
            }
        }
    }
}

/// The current time in Unix milliseconds: the unit of the queue's times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
