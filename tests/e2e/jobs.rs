//! The job queue (module `jobs`), black box: services of the default workspace on one database,
//! running the built-in kind `jobs.purge` (docs/jobs.md). Jobs are put in the queue the way
//! another process would, by inserting rows; faults come from the database (a trigger that
//! refuses the purge's deletes, a lock that holds a job mid-run).
//!
//! What needs a job kind of the tests' own (a transaction that rolls back, handlers that run at
//! once) is tested by the `jobs` module's unit tests, which the `health` tests run.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::admin::{PanelSession, StaffMember, create_staff, start_admin};
use crate::api::{Api, KEY, on_each_database, seed, str_of};
use crate::support::Database;

/// How long a job may take to reach a state before a test gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// No purge on a schedule unless a test asks for one; quick polls and retries.
const QUIET: [(&str, &str); 4] = [
    ("JOBS_PURGE_SCHEDULE", "off"),
    ("JOBS_POLL_INTERVAL_MS", "50"),
    ("JOBS_RETRY_BASE_MS", "200"),
    ("JOBS_RETRY_MAX_MS", "400"),
];

#[test]
fn concurrent_workers_of_two_instances_run_each_job_once() {
    on_each_database(concurrent_workers);
}

#[test]
fn a_recurring_job_fires_once_per_period_across_two_instances() {
    on_each_database(recurring_once);
}

#[test]
fn failing_jobs_are_retried_with_backoff_then_dead_and_admins_retry_or_discard_them() {
    on_each_database(retries_and_admin);
}

#[test]
fn a_job_whose_lease_expired_runs_again() {
    on_each_database(expired_lease);
}

#[test]
fn a_job_of_a_worker_killed_mid_job_runs_again_after_its_lease() {
    kill_nine(&Database::postgres());
}

#[test]
fn the_worker_command_runs_jobs_without_serving_http() {
    worker_command(&Database::sqlite());
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn concurrent_workers(db: &Database) {
    const JOBS: usize = 400;
    // The first instance creates the schema; its worker stays off until the jobs are in.
    let _schema = Api::start(db, &with(&[("API_JOBS_WORKER", "false")]));
    let first_id = insert_purges(db, JOBS, 36_500, 3);
    let env = with(&[("API_JOBS_CONCURRENCY", "4"), ("JOBS_BATCH_SIZE", "8")]);
    let _one = Api::start(db, &env);
    let _two = Api::start(db, &env);
    wait_for_count(
        db,
        &format!("state = 'succeeded' AND id >= {first_id}"),
        JOBS,
    );
    // A job claimed twice would have two attempts: the claim counts them.
    assert_eq!(
        count(db, &format!("id >= {first_id} AND attempts <> 1")),
        0,
        "every job ran once"
    );
    // `<pid>-<uuid>/<loop>`: the instance, without its loop's number (one digit here).
    let workers = db.query_value(&format!(
        "SELECT count(DISTINCT substr(lease_owner, 1, length(lease_owner) - 2)) FROM jobs \
         WHERE id >= {first_id}"
    ));
    assert_eq!(workers, "2", "both instances ran jobs on {}", db.kind());
}

fn recurring_once(db: &Database) {
    let env = [
        ("JOBS_PURGE_SCHEDULE", "* * * * * *"),
        ("JOBS_POLL_INTERVAL_MS", "50"),
        // The purges keep every job, so that each period's job can be counted.
        ("JOBS_RETENTION_DAYS", "36500"),
    ];
    let first = Api::start(db, &env);
    let second = Api::start(db, &env);
    wait_for_count(db, "kind = 'jobs.purge' AND state = 'succeeded'", 6);
    drop((first, second));
    let keys: Vec<String> = db
        .query_value("SELECT count(*) FROM jobs WHERE kind = 'jobs.purge'")
        .parse::<usize>()
        .map(|total| {
            (0..total)
                .map(|n| {
                    db.query_value(&format!(
                        "SELECT unique_key FROM jobs WHERE kind = 'jobs.purge' \
                         ORDER BY unique_key LIMIT 1 OFFSET {n}"
                    ))
                })
                .collect()
        })
        .unwrap();
    let distinct: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "one job per second: {keys:?}");
    // Consecutive seconds, each fired by one of the two instances.
    let seconds: Vec<i64> = keys
        .iter()
        .map(|key| key.rsplit('@').next().unwrap().parse::<i64>().unwrap() / 1000)
        .collect();
    for pair in seconds.windows(2) {
        assert_eq!(pair[1] - pair[0], 1, "no second skipped: {keys:?}");
    }
}

fn retries_and_admin(db: &Database) {
    let api = Api::start(db, &with(&[]));
    // A purge that succeeds, so that the next one has a job to delete.
    let kept = insert_purges(db, 1, 36_500, 3);
    wait_for_state(db, kept, "succeeded");
    refuse_payload_deletes(db, true);
    // Deletes every succeeded job: refused by the trigger, three times.
    let refused = insert_purges(db, 1, 0, 3);
    wait_for_state(db, refused, "dead");
    let errors: Vec<String> = (1..=3)
        .map(|attempt| {
            db.query_value(&format!(
                "SELECT error FROM job_errors WHERE job_id = {refused} AND attempt = {attempt}"
            ))
        })
        .collect();
    for error in &errors {
        assert!(error.contains("purge refused by the test"), "{errors:?}");
    }
    // Backoff: each retry waited at least half the delay (equal jitter), which doubles.
    let at = |attempt: i64| -> i64 {
        db.query_value(&format!(
            "SELECT at_ms FROM job_errors WHERE job_id = {refused} AND attempt = {attempt}"
        ))
        .parse()
        .unwrap()
    };
    assert!(at(2) - at(1) >= 100, "{} ms", at(2) - at(1));
    assert!(at(3) - at(2) >= 200, "{} ms", at(3) - at(2));

    // Payloads that are not a purge's: dead at the first attempt.
    let malformed = insert_job(db, "jobs.purge", r#"{"retention":"forever"}"#, 3, 0);
    wait_for_state(db, malformed, "dead");
    assert_eq!(attempts(db, malformed), 1);
    let in_panel = insert_job(db, "jobs.purge", r#"[]"#, 3, 0);
    wait_for_state(db, in_panel, "dead");

    let admin = start_admin(db, &with(&[]));
    create_staff(db, "jobs-admin@example.com", "admin").unwrap();
    create_staff(db, "jobs-support@example.com", "support").unwrap();
    let staff = StaffMember::sign_in(&api, &admin, "jobs-admin@example.com");
    let support = StaffMember::sign_in(&api, &admin, "jobs-support@example.com");
    let get = |path: &str| {
        admin
            .get(path)
            .bearer(&staff.access)
            .send()
            .expect_json(200)
    };

    let detail = get(&format!("/api/admin/jobs/{refused}"));
    assert_eq!(detail["state"], "dead", "{detail}");
    assert_eq!(detail["errors"].as_array().unwrap().len(), 3, "{detail}");
    assert_eq!(detail["payload"], json!({"retention_days": 0}));
    let counts = get("/api/admin/jobs/counts");
    assert!(
        counts["counts"]
            .as_array()
            .unwrap()
            .contains(&json!({"kind": "jobs.purge", "state": "dead", "jobs": 3})),
        "{counts}"
    );
    // The panel: the counts, the dead jobs, a dead job's page with its actions.
    let panel = PanelSession::sign_in(&admin, "jobs-admin@example.com");
    let page = panel.get(&admin, "/admin/jobs?state=dead").expect(200);
    assert!(page.body.contains(r#"id="job-counts""#), "{}", page.body);
    assert!(
        page.body
            .contains(&format!(r#"href="/admin/jobs/{in_panel}""#))
    );
    let page = panel
        .get(&admin, &format!("/admin/jobs/{in_panel}"))
        .expect(200);
    assert!(page.body.contains(r#"id="retry""#) && page.body.contains(r#"id="discard""#));
    assert!(
        page.body.contains("is not a jobs.purge payload"),
        "{}",
        page.body
    );

    let dead = get("/api/admin/jobs?state=dead");
    let ids: Vec<i64> = dead["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [in_panel, malformed, refused]);
    admin
        .get("/api/admin/jobs?state=lost")
        .bearer(&staff.access)
        .send()
        .expect_error(422, "validation_failed");

    // Support staff read, but do not act.
    admin
        .post(&format!("/api/admin/jobs/{refused}/retry"))
        .bearer(&support.access)
        .send()
        .expect_error(403, "forbidden");
    // Only dead jobs: `kept` succeeded.
    admin
        .post(&format!("/api/admin/jobs/{kept}/retry"))
        .bearer(&staff.access)
        .send()
        .expect_error(409, "conflict");
    // The fault is gone: the retried job succeeds (and purges `kept`).
    refuse_payload_deletes(db, false);
    let retried = admin
        .post(&format!("/api/admin/jobs/{refused}/retry"))
        .bearer(&staff.access)
        .send()
        .expect_json(202);
    assert_eq!(retried, json!({"job": refused, "status": "queued"}));
    wait_for_state(db, refused, "succeeded");
    // Discarding deletes the payload: possible again now that the trigger is gone.
    let discarded = panel.submit(&admin, &format!("/admin/jobs/{in_panel}/discard"), &[]);
    assert_eq!(
        discarded.expect(303).header("location"),
        Some("/admin/jobs?state=dead&notice=discarded")
    );
    assert_eq!(count(db, &format!("id = {in_panel}")), 0);

    let discarded = admin
        .post(&format!("/api/admin/jobs/{malformed}/discard"))
        .bearer(&staff.access)
        .send()
        .expect_json(200);
    assert_eq!(discarded["status"], "discarded");
    admin
        .get(&format!("/api/admin/jobs/{malformed}"))
        .bearer(&staff.access)
        .send()
        .expect_error(404, "not_found");

    let audit = get("/api/admin/audit?action=job.");
    let actions: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (str_of(&entry["action"]), str_of(&entry["target_id"])))
        .collect();
    let (refused, malformed, in_panel) = (
        refused.to_string(),
        malformed.to_string(),
        in_panel.to_string(),
    );
    assert_eq!(
        actions,
        [
            ("job.discard", malformed.as_str()),
            ("job.discard", in_panel.as_str()),
            ("job.retry", refused.as_str()),
        ],
        "{audit}"
    );
}

fn expired_lease(db: &Database) {
    let _schema = Api::start(db, &with(&[("API_JOBS_WORKER", "false")]));
    // A job a crashed worker held: running, its lease run out.
    let id = insert_purges(db, 1, 36_500, 3);
    db.execute(&format!(
        "UPDATE jobs SET state = 'running', attempts = 1, lease_owner = '1-crashed/0', \
         lease_until_ms = 1 WHERE id = {id}"
    ));
    let _worker = Api::start(db, &with(&[]));
    wait_for_state(db, id, "succeeded");
    assert_eq!(attempts(db, id), 2);
    let error = db.query_value(&format!(
        "SELECT error FROM job_errors WHERE job_id = {id} AND attempt = 1"
    ));
    assert!(error.contains("lease expired"), "{error}");
}

fn kill_nine(db: &Database) {
    let lease = [("JOBS_LEASE_SECS", "2")];
    let doomed = Api::start(db, &with(&lease));
    // A purge that succeeds, so that the next one has a job to delete.
    let kept = insert_purges(db, 1, 36_500, 3);
    wait_for_state(db, kept, "succeeded");
    // Due in a few seconds, once the errors table is locked away: the worker claims it, and
    // its purge, which deletes `kept`'s errors with `kept`, waits mid-job for the lock.
    let due = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 10_000;
    let id = insert_job(db, "jobs.purge", r#"{"retention_days":0}"#, 3, due);
    let mut lock = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &pg_name(db)])
        .args(["-v", "ON_ERROR_STOP=1", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut sql = lock.stdin.take().unwrap();
    writeln!(
        sql,
        "BEGIN; LOCK TABLE job_errors IN ACCESS EXCLUSIVE MODE;"
    )
    .unwrap();
    sql.flush().unwrap();
    wait_until(|| {
        db.query_value(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' \
             AND relation = 'job_errors'::regclass",
        ) == "1"
    });
    wait_for_state(db, id, "running");
    // Dropping the instance sends SIGKILL and waits for the process to end.
    drop(doomed);
    writeln!(sql, "ROLLBACK;").unwrap();
    drop(sql);
    lock.wait().unwrap();
    assert_eq!(
        state(db, id),
        "running",
        "the killed worker's job is still leased"
    );

    let _survivor = Api::start(db, &with(&lease));
    wait_for_state(db, id, "succeeded");
    assert_eq!(attempts(db, id), 2);
}

fn worker_command(db: &Database) {
    let _schema = Api::start(db, &with(&[("API_JOBS_WORKER", "false")]));
    let id = insert_purges(db, 1, 36_500, 3);
    let url = db.url();
    let key = seed(KEY);
    let env = with(&[
        ("DATABASE_URL", url.as_str()),
        ("AUTH_SIGNING_KEY", key.as_str()),
    ]);
    let mut worker = Command::new(crate::support::service_binary("api"));
    worker
        .arg("worker")
        .current_dir(crate::support::default_workspace())
        .env("APP_ENV", "development")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in &env {
        worker.env(key, value);
    }
    let mut worker = worker.spawn().unwrap();
    wait_for_state(db, id, "succeeded");
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    let status = worker.wait().unwrap();
    assert!(
        status.success(),
        "the worker stops on SIGTERM with 0: {status}"
    );
}

// ---------------------------------------------------------------------------------------------
// The queue, through the database

/// [`QUIET`] with `env` over it.
fn with<'a>(env: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = QUIET.to_vec();
    all.extend_from_slice(env);
    all
}

/// Inserts `count` purge jobs keeping `retention_days`, due now; the first one's id (the others
/// follow it). The payloads go in first, so that a worker never claims a job without its payload
/// (an enqueuer inserts both in one transaction).
fn insert_purges(db: &Database, count: usize, retention_days: u64, max_attempts: i64) -> i64 {
    let first = next_id(db);
    let numbers = format!(
        "WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n \
         WHERE i < {first} + {count} - 1)"
    );
    db.execute(&format!(
        "{numbers} INSERT INTO job_payloads (job_id, payload) \
         SELECT i, '{{\"retention_days\":{retention_days}}}' FROM n"
    ));
    db.execute(&format!(
        "{numbers} INSERT INTO jobs (kind, state, max_attempts, run_at_ms, created_at_ms) \
         SELECT 'jobs.purge', 'queued', {max_attempts}, 0, 0 FROM n"
    ));
    first
}

/// Inserts one job of `kind` with `payload`, due at `run_at_ms`; its id.
fn insert_job(db: &Database, kind: &str, payload: &str, max_attempts: i64, run_at_ms: u128) -> i64 {
    let id = next_id(db);
    db.execute(&format!(
        "INSERT INTO job_payloads (job_id, payload) VALUES ({id}, '{payload}')"
    ));
    db.execute(&format!(
        "INSERT INTO jobs (kind, state, max_attempts, run_at_ms, created_at_ms) \
         VALUES ('{kind}', 'queued', {max_attempts}, {run_at_ms}, 0)"
    ));
    id
}

/// The id the next job gets: the tests insert jobs one statement at a time, and the services
/// enqueue none while they run (their purge schedule is off).
fn next_id(db: &Database) -> i64 {
    db.query_value("SELECT coalesce(max(id), 0) + 1 FROM jobs")
        .parse()
        .unwrap()
}

/// Makes the database refuse (or stop refusing) every delete of a payload.
fn refuse_payload_deletes(db: &Database, refuse: bool) {
    let sql = match (db, refuse) {
        (Database::Sqlite { .. }, true) => {
            "CREATE TRIGGER refuse BEFORE DELETE ON job_payloads \
             BEGIN SELECT RAISE(ABORT, 'purge refused by the test'); END"
        }
        (Database::Sqlite { .. }, false) => "DROP TRIGGER refuse",
        (Database::Postgres(_), true) => {
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'purge refused by the test'; END; $$; \
             CREATE TRIGGER refuse BEFORE DELETE ON job_payloads \
             FOR EACH ROW EXECUTE FUNCTION refuse()"
        }
        (Database::Postgres(_), false) => "DROP TRIGGER refuse ON job_payloads",
    };
    db.execute(sql);
}

fn pg_name(db: &Database) -> String {
    db.url().rsplit('/').next().unwrap().to_string()
}

fn count(db: &Database, condition: &str) -> usize {
    db.query_value(&format!("SELECT count(*) FROM jobs WHERE {condition}"))
        .parse()
        .unwrap()
}

fn state(db: &Database, id: i64) -> String {
    db.query_value(&format!("SELECT state FROM jobs WHERE id = {id}"))
}

fn attempts(db: &Database, id: i64) -> i64 {
    db.query_value(&format!("SELECT attempts FROM jobs WHERE id = {id}"))
        .parse()
        .unwrap()
}

fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_state(db: &Database, id: i64, wanted: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = state(db, id);
        if now == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is {now:?}, not {wanted}, on {}: {}",
            db.kind(),
            db.query_value(&format!("SELECT last_error FROM jobs WHERE id = {id}"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_count(db: &Database, condition: &str, wanted: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = count(db, condition);
        if now >= wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{now} jobs where {condition}, not {wanted}, on {}",
            db.kind()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
