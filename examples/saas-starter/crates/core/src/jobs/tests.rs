//! The queue against a real SQLite database, with handlers of the tests' own kinds. The
//! end-to-end tests run the same properties on both backends, with the built-in kinds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::worker::runs as worker_kinds;
use super::*;
use crate::db::DatabaseConfig;

/// A fresh migrated SQLite database and the queue's settings, changed by `vars`.
async fn setup(name: &str, vars: &[(&str, &str)]) -> (Jobs, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("shared-jobs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("sqlite://{}/test.db?mode=rwc", dir.display());
    let mut all = vec![
        ("DATABASE_URL", url.as_str()),
        ("JOBS_POLL_INTERVAL_MS", "20"),
        ("JOBS_RETRY_BASE_MS", "10"),
        ("JOBS_RETRY_MAX_MS", "20"),
        ("JOBS_PURGE_SCHEDULE", "off"),
    ];
    all.extend_from_slice(vars);
    let mut env = Env::from_vars(all);
    let db_config = DatabaseConfig::from_env(&mut env);
    let config = JobsConfig::from_env(&mut env, "TEST");
    env.finish().unwrap();
    let db = Database::connect(&db_config).await.unwrap();
    db.migrate().await.unwrap();
    (Jobs::new(db, config, "TEST"), dir)
}

/// What the tests' jobs did: each run's job id, and the jobs running right now.
#[derive(Clone, Default)]
struct Journal {
    runs: Arc<Mutex<Vec<i64>>>,
    running: Arc<Mutex<HashSet<i64>>>,
    overlaps: Arc<Mutex<Vec<i64>>>,
}

impl Journal {
    fn runs(&self) -> Vec<i64> {
        self.runs.lock().unwrap().clone()
    }
}

/// Records its runs, takes a little time, and fails as its payload says.
struct Recorded(Journal);

#[derive(serde::Serialize, serde::Deserialize)]
struct Step {
    fail: Option<bool>,
}

impl Job for Recorded {
    const KIND: &'static str = "test.recorded";
    const MAX_ATTEMPTS: i64 = 3;
    type Payload = Step;

    async fn run(&self, ctx: &JobContext, step: Step) -> Result<(), JobError> {
        let id = ctx.id();
        if !self.0.running.lock().unwrap().insert(id) {
            self.0.overlaps.lock().unwrap().push(id);
        }
        self.0.runs.lock().unwrap().push(id);
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.running.lock().unwrap().remove(&id);
        match step.fail {
            Some(true) => Err(JobError::permanent("refused for good")),
            Some(false) => Err(JobError::retry("not yet")),
            None => Ok(()),
        }
    }
}

fn recorded(fail: Option<bool>) -> NewJob {
    NewJob::of::<Recorded>(&Step { fail }).unwrap()
}

/// What [`state_of`] says of a job that has no row: a batched first attempt that succeeded.
const GONE: &str = "gone";

async fn state_of(jobs: &Jobs, id: i64) -> (String, i64) {
    match store::detail(jobs.db(), id).await.unwrap() {
        Some(job) => (job.summary.state, job.summary.attempts),
        None => (GONE.to_owned(), 0),
    }
}

async fn wait_for(jobs: &Jobs, id: i64, state: &str) -> (String, i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = state_of(jobs, id).await;
        if now.0 == state {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is {now:?}, not {state}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn created(enqueued: Enqueued) -> i64 {
    match enqueued {
        Enqueued::Created(id) => id,
        Enqueued::Duplicate => panic!("the job was not created"),
    }
}

#[tokio::test]
async fn a_job_exists_only_if_its_transaction_commits() {
    let (jobs, dir) = setup("commit", &[]).await;
    let journal = Journal::default();
    let mut tx = jobs.db().begin_write().await.unwrap();
    let rolled_back = created(enqueue(&mut tx, &recorded(None)).await.unwrap());
    tx.rollback().await.unwrap();
    let mut tx = jobs.db().begin_write().await.unwrap();
    let committed = created(enqueue(&mut tx, &recorded(None)).await.unwrap());
    tx.commit().await.unwrap();

    let worker = jobs
        .start_worker(jobs.handlers().register(Recorded(journal.clone())))
        .unwrap();
    wait_for(&jobs, committed, "succeeded").await;
    worker.shutdown().await;
    let gone = store::detail(jobs.db(), rolled_back).await.unwrap();
    jobs.db().close().await;
    std::fs::remove_dir_all(dir).unwrap();

    // SQLite may hand the rolled-back id out again: what matters is that one job ran, once.
    assert!(gone.is_none() || rolled_back == committed);
    assert_eq!(journal.runs(), [committed]);
}

#[tokio::test]
async fn a_unique_key_is_free_again_once_its_job_finished() {
    let (jobs, dir) = setup("unique", &[]).await;
    let job = recorded(None).unique("report:42");
    let first = created(jobs.enqueue_now(&job).await.unwrap());
    let again = jobs.enqueue_now(&job).await.unwrap();
    let worker = jobs
        .start_worker(jobs.handlers().register(Recorded(Journal::default())))
        .unwrap();
    wait_for(&jobs, first, "succeeded").await;
    let after = jobs.enqueue_now(&job).await.unwrap();
    worker.shutdown().await;
    jobs.db().close().await;
    std::fs::remove_dir_all(dir).unwrap();

    assert_eq!(again, Enqueued::Duplicate);
    assert!(matches!(after, Enqueued::Created(id) if id != first));
}

#[tokio::test]
async fn concurrent_loops_run_each_job_once_and_never_twice_at_a_time() {
    let (jobs, dir) = setup(
        "concurrent",
        &[("TEST_JOBS_CONCURRENCY", "4"), ("JOBS_BATCH_SIZE", "8")],
    )
    .await;
    let journal = Journal::default();
    let mut tx = jobs.db().begin_write().await.unwrap();
    let all: Vec<NewJob> = (0..200).map(|_| recorded(None)).collect();
    let ids: Vec<i64> = enqueue_all(&mut tx, &all)
        .await
        .unwrap()
        .into_iter()
        .map(created)
        .collect();
    tx.commit().await.unwrap();

    let worker = jobs
        .start_worker(jobs.handlers().register(Recorded(journal.clone())))
        .unwrap();
    for id in &ids {
        wait_for(&jobs, *id, "succeeded").await;
    }
    worker.shutdown().await;
    jobs.db().close().await;
    std::fs::remove_dir_all(dir).unwrap();

    let mut runs: HashMap<i64, usize> = HashMap::new();
    for id in journal.runs() {
        *runs.entry(id).or_default() += 1;
    }
    assert_eq!(runs.len(), ids.len());
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
    assert!(journal.overlaps.lock().unwrap().is_empty());
}

/// A wake rouses one idle loop; a loop that finds a full batch rouses another, so that one wake
/// gets a backlog done by every loop, with no loop waiting for its next poll (a minute here).
#[tokio::test]
async fn one_wake_gets_a_backlog_done_by_every_loop_without_polling() {
    let (jobs, dir) = setup(
        "wake",
        &[
            ("TEST_JOBS_CONCURRENCY", "2"),
            ("JOBS_BATCH_SIZE", "4"),
            ("JOBS_POLL_INTERVAL_MS", "60000"),
        ],
    )
    .await;
    let worker = jobs
        .start_worker(jobs.handlers().register(Recorded(Journal::default())))
        .unwrap();
    // Both loops find the queue empty and wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut tx = jobs.db().begin_write().await.unwrap();
    let all: Vec<NewJob> = (0..40).map(|_| recorded(None)).collect();
    let ids: Vec<i64> = enqueue_all(&mut tx, &all)
        .await
        .unwrap()
        .into_iter()
        .map(created)
        .collect();
    tx.commit().await.unwrap();
    jobs.wake();

    for id in &ids {
        wait_for(&jobs, *id, "succeeded").await;
    }
    let loops: i64 = sqlx::query_scalar("SELECT count(DISTINCT lease_owner) FROM jobs")
        .fetch_one(jobs.db().pool())
        .await
        .unwrap();
    worker.shutdown().await;
    jobs.db().close().await;
    std::fs::remove_dir_all(dir).unwrap();

    assert_eq!(loops, 2, "the backlog was not shared by both loops");
}

#[tokio::test]
async fn failures_are_retried_then_dead_and_permanent_ones_dead_at_once() {
    let (jobs, dir) = setup("failures", &[]).await;
    let retried = created(jobs.enqueue_now(&recorded(Some(false))).await.unwrap());
    let refused = created(jobs.enqueue_now(&recorded(Some(true))).await.unwrap());
    let worker = jobs
        .start_worker(jobs.handlers().register(Recorded(Journal::default())))
        .unwrap();
    let retried_state = wait_for(&jobs, retried, "dead").await;
    let refused_state = wait_for(&jobs, refused, "dead").await;
    worker.shutdown().await;
    let detail = store::detail(jobs.db(), retried).await.unwrap().unwrap();
    jobs.db().close().await;
    std::fs::remove_dir_all(dir).unwrap();

    assert_eq!(retried_state.1, Recorded::MAX_ATTEMPTS);
    assert_eq!(refused_state.1, 1);
    let attempts: Vec<i64> = detail.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(detail.summary.last_error.as_deref(), Some("not yet"));
}

#[test]
fn an_unknown_kind_in_the_kinds_setting_is_refused() {
    let handlers = Handlers::default().register(Recorded(Journal::default()));

    assert_eq!(
        worker_kinds(&handlers, &["test.recorded".into()]),
        Ok(vec!["test.recorded"])
    );
    assert_eq!(
        worker_kinds(&handlers, &["test.recorded".into(), "nope".into()]),
        Err(vec!["nope".to_owned()])
    );
    assert_eq!(worker_kinds(&handlers, &[]), Ok(vec!["test.recorded"]));
}

#[test]
fn backoff_doubles_with_jitter_and_a_cap() {
    let policy = Backoff {
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(60),
    };
    // The fixed half, and the random half at its extremes.
    assert_eq!(policy.delay_after(1, 0), Duration::from_secs(1));
    assert_eq!(policy.delay_after(1, 1_000), Duration::from_secs(2));
    assert_eq!(policy.delay_after(2, 0), Duration::from_secs(2));
    assert_eq!(policy.delay_after(3, 0), Duration::from_secs(4));
    assert_eq!(policy.delay_after(30, 0), Duration::from_secs(30));
    assert_eq!(policy.delay_after(1_000, 30_000), Duration::from_secs(60));
}

#[test]
fn a_bad_purge_schedule_is_reported_by_its_key() {
    let mut env = Env::from_vars([("JOBS_PURGE_SCHEDULE", "every hour")]);
    JobsConfig::from_env(&mut env, "API");

    let message = env.finish().unwrap_err().to_string();

    assert!(message.contains("JOBS_PURGE_SCHEDULE"), "{message}");
}

/// A batched kind: its first attempts run in batches, and a batch fails when one of its jobs
/// says so; every attempt that runs alone goes through `run`.
struct Batched {
    batches: Arc<Mutex<Vec<Vec<i64>>>>,
    runs: Arc<Mutex<Vec<i64>>>,
}

impl Job for Batched {
    const KIND: &'static str = "test.batched";
    const BATCHED: bool = true;
    type Payload = Step;

    async fn run(&self, ctx: &JobContext, step: Step) -> Result<(), JobError> {
        self.runs.lock().unwrap().push(ctx.id());
        match step.fail {
            Some(_) => Err(JobError::permanent("refused for good")),
            None => Ok(()),
        }
    }

    async fn run_first_attempts(
        &self,
        conn: &mut AnyConnection,
        _worker: &str,
        jobs: Vec<FirstAttempt<Step>>,
    ) -> Result<(), BoxError> {
        self.batches
            .lock()
            .unwrap()
            .push(jobs.iter().map(|job| job.id).collect());
        // The jobs and their payloads are already taken off the queue in the batch's
        // transaction.
        for job in &jobs {
            let left: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM jobs WHERE id = $1) \
                     + (SELECT count(*) FROM job_payloads WHERE job_id = $1)",
            )
            .bind(job.id)
            .fetch_one(&mut *conn)
            .await?;
            assert_eq!(left, 0, "job {} is still in the queue", job.id);
        }
        match jobs.iter().find(|job| job.payload.fail.is_some()) {
            Some(job) => Err(format!("job {} fails the batch", job.id).into()),
            None => Ok(()),
        }
    }
}

/// First attempts of a batched kind run together, in one transaction with their removal from
/// the queue; a batch that fails changes nothing, and its jobs then run one by one (leased,
/// left `succeeded` or `dead`), each failure its own.
#[tokio::test]
async fn first_attempts_of_a_batched_kind_run_together_and_a_failed_batch_runs_one_by_one() {
    let (jobs, dir) = setup("batched", &[]).await;
    let batched = Batched {
        batches: Arc::default(),
        runs: Arc::default(),
    };
    let (batches, runs) = (batched.batches.clone(), batched.runs.clone());
    let job = |fail| NewJob::of::<Batched>(&Step { fail }).unwrap();

    // Queued before the worker starts: its first look takes them together.
    let mut tx = jobs.db().begin_write().await.unwrap();
    let together: Vec<i64> = enqueue_all(&mut tx, &[job(None), job(None), job(None)])
        .await
        .unwrap()
        .into_iter()
        .map(created)
        .collect();
    tx.commit().await.unwrap();
    let worker = jobs
        .start_worker(jobs.handlers().register(batched))
        .unwrap();
    // Succeeded in their batch: taken off the queue with the batch's commit.
    for id in &together {
        wait_for(&jobs, *id, GONE).await;
    }
    assert_eq!(*batches.lock().unwrap(), std::slice::from_ref(&together));
    assert!(runs.lock().unwrap().is_empty());

    let mut tx = jobs.db().begin_write().await.unwrap();
    let second: Vec<i64> = enqueue_all(&mut tx, &[job(None), job(Some(true)), job(None)])
        .await
        .unwrap()
        .into_iter()
        .map(created)
        .collect();
    tx.commit().await.unwrap();
    jobs.wake();
    let states = [
        (second[0], "succeeded"),
        (second[1], "dead"),
        (second[2], "succeeded"),
    ];
    for (id, state) in states {
        // One attempt each: the failed batch's did not count.
        assert_eq!(wait_for(&jobs, id, state).await.1, 1, "job {id}");
    }
    worker.shutdown().await;
    let mut ran = runs.lock().unwrap().clone();
    ran.sort_unstable();
    assert_eq!(ran, second, "each job of the failed batch ran alone");
    // The failed batch, perhaps taken again by the other loop before its jobs were leased.
    let later = batches.lock().unwrap()[1..].to_vec();
    assert!(
        !later.is_empty() && later.iter().all(|batch| *batch == second),
        "{later:?}"
    );
    jobs.db().close().await;
    std::fs::remove_dir_all(dir).unwrap();
}
