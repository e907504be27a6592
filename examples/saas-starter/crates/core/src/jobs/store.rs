//! The queue's tables: `jobs` (one row per job: kind, state, attempts, when due, the lease),
//! `job_payloads` (each job's payload, written once), `job_errors` (each failed or abandoned
//! attempt) and `job_schedules` (the next time each recurring job fires). Times are Unix
//! milliseconds.
//!
//! A lease is a job's `lease_owner` (the worker) with its `attempts` (the attempt's number): the
//! fencing token every transition of a running job checks, so that a worker whose lease expired
//! and was taken over changes nothing.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::NewJob;
use crate::db::{Backend, Database};

/// Where a job is in its life; see the module documentation of [`super`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    Running,
    Succeeded,
    Dead,
}

impl State {
    pub const ALL: [State; 4] = [Self::Queued, Self::Running, Self::Succeeded, Self::Dead];
    /// Every state, for error messages.
    pub const LIST: &'static str = "queued, running, succeeded, dead";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`enqueue`] did with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored with this id.
    Created(i64),
    /// A queued or running job has its unique key: nothing was stored.
    Duplicate,
}

/// Which database a connection is to: statements differ a little between the two.
fn backend_of(conn: &AnyConnection) -> Backend {
    if conn.backend_name() == "PostgreSQL" {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Inserts `jobs` (and their payloads) on `conn`, in order; see [`super::enqueue`].
pub async fn enqueue(
    conn: &mut AnyConnection,
    jobs: &[NewJob],
    now_ms: i64,
) -> sqlx::Result<Vec<Enqueued>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    match backend_of(conn) {
        Backend::Postgres => enqueue_postgres(conn, jobs, now_ms).await,
        Backend::Sqlite => {
            let mut enqueued = Vec::with_capacity(jobs.len());
            // Statements cost no round trip on SQLite: one job at a time.
            for job in jobs {
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO jobs \
                         (kind, state, max_attempts, run_at_ms, unique_key, created_at_ms) \
                     VALUES ($1, 'queued', $2, $3, $4, $5) \
                     ON CONFLICT (unique_key) \
                         WHERE finished_at_ms IS NULL AND unique_key IS NOT NULL DO NOTHING \
                     RETURNING id",
                )
                .bind(job.kind)
                .bind(job.max_attempts)
                .bind(job.run_at_ms.unwrap_or(now_ms))
                .bind(job.unique_key.as_deref())
                .bind(now_ms)
                .fetch_optional(&mut *conn)
                .await?;
                let Some(id) = id else {
                    enqueued.push(Enqueued::Duplicate);
                    continue;
                };
                sqlx::query("INSERT INTO job_payloads (job_id, payload) VALUES ($1, $2)")
                    .bind(id)
                    .bind(&job.payload)
                    .execute(&mut *conn)
                    .await?;
                enqueued.push(Enqueued::Created(id));
            }
            Ok(enqueued)
        }
    }
}

/// The parameters of a job's row in [`enqueue_postgres`]'s `VALUES`.
const JOB_PARAMETERS: usize = 6;

/// One statement, so one round trip, for the whole list: the ids are drawn first, so that each
/// payload finds its job, and a job whose unique key is taken inserts nothing.
async fn enqueue_postgres(
    conn: &mut AnyConnection,
    jobs: &[NewJob],
    now_ms: i64,
) -> sqlx::Result<Vec<Enqueued>> {
    let rows: Vec<String> = (0..jobs.len())
        .map(|row| {
            let first = 2 + row * JOB_PARAMETERS;
            let columns: Vec<String> = (first..first + JOB_PARAMETERS)
                .map(|n| format!("${n}"))
                .collect();
            format!("({})", columns.join(", "))
        })
        .collect();
    let sql = format!(
        "WITH v (n, kind, payload, max_attempts, run_at_ms, unique_key) AS (VALUES {}), \
         source AS (SELECT v.*, $1::bigint AS created_at_ms FROM v), \
         {} \
         SELECT jobs_new.n AS n, jobs_stored.id AS id \
         FROM jobs_new LEFT JOIN jobs_stored USING (id)",
        rows.join(", "),
        enqueue_ctes("source")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(now_ms);
    for (n, job) in jobs.iter().enumerate() {
        query = query
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(job.kind)
            .bind(&job.payload)
            .bind(job.max_attempts)
            .bind(job.run_at_ms.unwrap_or(now_ms))
            .bind(job.unique_key.as_deref());
    }
    let mut enqueued = vec![Enqueued::Duplicate; jobs.len()];
    for row in query.fetch_all(conn).await? {
        let n: i64 = row.try_get("n")?;
        let id: Option<i64> = row.try_get("id")?;
        if let (Ok(n), Some(id)) = (usize::try_from(n), id) {
            enqueued[n] = Enqueued::Created(id);
        }
    }
    Ok(enqueued)
}

/// The common table expressions (PostgreSQL) that enqueue a job for each row of `source`, a
/// table expression with the columns `n` (the row's number, the order of the inserts), `kind`,
/// `payload`, `max_attempts`, `run_at_ms`, `unique_key` and `created_at_ms`: for a statement
/// that stores jobs along with rows of its own, so that both cost one round trip. They are
/// named `jobs_new` (the rows with their job ids drawn), `jobs_stored` (the ids inserted: a
/// row whose unique key is taken inserts nothing) and `jobs_payloads`.
pub fn enqueue_ctes(source: &str) -> String {
    format!(
        "jobs_new AS ( \
             SELECT nextval(pg_get_serial_sequence('jobs', 'id')) AS id, s.* FROM {source} AS s), \
         jobs_stored AS ( \
             INSERT INTO jobs \
                 (id, kind, state, max_attempts, run_at_ms, unique_key, created_at_ms) \
             OVERRIDING SYSTEM VALUE \
             SELECT id, kind, 'queued', max_attempts, run_at_ms, unique_key, created_at_ms \
             FROM jobs_new ORDER BY n \
             ON CONFLICT (unique_key) \
                 WHERE finished_at_ms IS NULL AND unique_key IS NOT NULL DO NOTHING \
             RETURNING id), \
         jobs_payloads AS ( \
             INSERT INTO job_payloads (job_id, payload) \
             SELECT id, payload FROM jobs_new JOIN jobs_stored USING (id))"
    )
}

/// A job's lease: the fencing token of its running attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    /// The attempt's number, from 1.
    pub attempt: i64,
    pub owner: String,
}

/// A job a worker claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub lease: Lease,
    pub kind: String,
    pub max_attempts: i64,
    /// Whether the previous attempt's lease expired: its worker stopped or crashed.
    pub abandoned: bool,
    /// The job's payload (empty if it has none, which its handler refuses).
    pub payload: String,
}

/// Leases up to `limit` due jobs of `kinds` to `worker` until `lease_until_ms`: queued jobs whose
/// time has come, and running jobs whose lease expired, oldest first. The first attempts of
/// `batched` kinds are left to [`take_first_attempts`].
pub async fn claim(
    db: &Database,
    worker: &str,
    kinds: &[&str],
    batched: &[&str],
    limit: i64,
    now_ms: i64,
    lease_until_ms: i64,
) -> sqlx::Result<Vec<Claimed>> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let batched_condition = if batched.is_empty() {
        String::new()
    } else {
        format!(
            " AND NOT (attempts = 0 AND kind IN ({}))",
            placeholders(5 + kinds.len(), batched.len())
        )
    };
    let due = format!(
        "SELECT id FROM jobs WHERE finished_at_ms IS NULL AND run_at_ms <= $3 \
             AND (state = 'queued' OR lease_until_ms <= $3) AND kind IN ({}){batched_condition} \
         ORDER BY run_at_ms LIMIT $4",
        placeholders(5, kinds.len())
    );
    // Only unindexed columns change: on PostgreSQL the row is updated in place (HOT).
    // `abandoned` reads the state before the update: SET sees the old values.
    let set = "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, \
                   lease_until_ms = $2, \
                   abandoned = CASE WHEN state = 'running' THEN 1 ELSE 0 END";
    let returning = "RETURNING id, kind, attempts, max_attempts, abandoned";
    let sql = match db.backend() {
        // `= ANY(ARRAY(...))` rather than `IN (...)`: a generic plan cannot see the LIMIT and
        // may join the ids to a scan of every job; an array is looked up in the primary key.
        // The payloads come with the claim: one round trip for both.
        Backend::Postgres => format!(
            "WITH claimed AS ({set} WHERE id = ANY(ARRAY({due} FOR UPDATE SKIP LOCKED)) \
                 {returning}) \
             SELECT claimed.*, job_payloads.payload AS payload FROM claimed \
             LEFT JOIN job_payloads ON job_payloads.job_id = claimed.id"
        ),
        // SQLite's RETURNING cannot join: the payloads are read next (no round trip there).
        Backend::Sqlite => format!("{set} WHERE id IN ({due}) {returning}"),
    };
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(worker)
        .bind(lease_until_ms)
        .bind(now_ms)
        .bind(limit);
    for kind in kinds.iter().chain(batched) {
        query = query.bind(*kind);
    }
    let rows = query.fetch_all(db.pool()).await?;
    let mut payloads = match db.backend() {
        Backend::Postgres => HashMap::new(),
        Backend::Sqlite => {
            let ids: Vec<i64> = rows
                .iter()
                .map(|row| row.try_get("id"))
                .collect::<sqlx::Result<_>>()?;
            payloads(db, &ids).await?
        }
    };
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            let payload = match db.backend() {
                Backend::Postgres => row.try_get::<Option<String>, _>("payload")?,
                Backend::Sqlite => payloads.remove(&id),
            };
            claimed(row, worker, payload)
        })
        .collect()
}

/// A claimed job from the row of an update's `RETURNING id, kind, attempts, max_attempts,
/// abandoned`, with its payload.
fn claimed(row: &AnyRow, worker: &str, payload: Option<String>) -> sqlx::Result<Claimed> {
    Ok(Claimed {
        payload: payload.unwrap_or_default(),
        lease: Lease {
            id: row.try_get("id")?,
            attempt: row.try_get("attempts")?,
            owner: worker.to_owned(),
        },
        kind: row.try_get("kind")?,
        max_attempts: row.try_get("max_attempts")?,
        abandoned: row.try_get::<i64, _>("abandoned")? != 0,
    })
}

/// A job [`take_first_attempts`] took: marked succeeded in the caller's transaction.
#[derive(Debug, Clone)]
pub struct Taken {
    pub id: i64,
    pub kind: String,
    /// The job's payload (empty if it has none, which its handler refuses).
    pub payload: String,
}

/// Takes up to `limit` due first attempts of `kinds` (queued, never attempted) off the queue on
/// `conn`, a transaction whose work is theirs, and returns them with their payloads, oldest
/// first: their job rows and payloads are deleted. Until the transaction ends the deleted rows
/// stay locked: other workers skip them (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one
/// writer at a time). A rollback leaves them as they were, queued; a commit leaves no row of a
/// first attempt that succeeded in its batch: the kind's own records are its history.
///
/// Deleted rather than marked succeeded: on PostgreSQL an update that sets `finished_at_ms`
/// (a column of the partial indexes' conditions) writes a new row version with an entry in two
/// indexes, and the purge deletes it later anyway; a delete only marks the row. One statement
/// on PostgreSQL, where the claim and the success of a leased job are two updates, each
/// committed.
pub async fn take_first_attempts(
    conn: &mut AnyConnection,
    kinds: &[&str],
    limit: i64,
    now_ms: i64,
) -> sqlx::Result<Vec<Taken>> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let due = format!(
        "SELECT id FROM jobs WHERE finished_at_ms IS NULL AND run_at_ms <= $1 \
             AND state = 'queued' AND attempts = 0 AND kind IN ({}) \
         ORDER BY run_at_ms LIMIT $2",
        placeholders(3, kinds.len())
    );
    let backend = backend_of(conn);
    let sql = match backend {
        // The payloads are looked up through an array of the taken ids: `IN (SELECT ...)`
        // may be planned as a scan of every payload (see `claim`).
        Backend::Postgres => format!(
            "WITH taken AS ( \
                 DELETE FROM jobs WHERE id = ANY(ARRAY({due} FOR UPDATE SKIP LOCKED)) \
                 RETURNING id, kind, run_at_ms), \
             payloads AS ( \
                 DELETE FROM job_payloads WHERE job_id = ANY(ARRAY(SELECT id FROM taken)) \
                 RETURNING job_id, payload) \
             SELECT taken.id, taken.kind, payloads.payload FROM taken \
             LEFT JOIN payloads ON payloads.job_id = taken.id \
             ORDER BY taken.run_at_ms, taken.id"
        ),
        Backend::Sqlite => format!("DELETE FROM jobs WHERE id IN ({due}) RETURNING id, kind"),
    };
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(now_ms).bind(limit);
    for kind in kinds {
        query = query.bind(*kind);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut taken = rows
        .iter()
        .map(|row| {
            let payload = match backend {
                Backend::Postgres => row.try_get::<Option<String>, _>("payload")?,
                Backend::Sqlite => None,
            };
            Ok(Taken {
                id: row.try_get("id")?,
                kind: row.try_get("kind")?,
                payload: payload.unwrap_or_default(),
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    if backend == Backend::Sqlite && !taken.is_empty() {
        // SQLite's RETURNING cannot join: the payloads are taken next (no round trip there).
        let ids: Vec<i64> = taken.iter().map(|job| job.id).collect();
        let mut payloads = payloads_on(conn, &ids, Payloads::Take).await?;
        for job in &mut taken {
            job.payload = payloads.remove(&job.id).unwrap_or_default();
        }
        taken.sort_by_key(|job| job.id);
    }
    Ok(taken)
}

/// Leases the queued jobs among `ids` to `worker` until `lease_until_ms`, whatever their kind
/// and time: the jobs of a batch of first attempts that failed ([`take_first_attempts`]), to
/// run one by one. Jobs another worker took meanwhile are left out.
pub async fn claim_ids(
    db: &Database,
    worker: &str,
    ids: &[i64],
    lease_until_ms: i64,
) -> sqlx::Result<Vec<Claimed>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, \
             lease_until_ms = $2, abandoned = 0 \
         WHERE id IN ({}) AND state = 'queued' AND finished_at_ms IS NULL \
         RETURNING id, kind, attempts, max_attempts, abandoned",
        placeholders(3, ids.len())
    );
    let query = ids.iter().fold(
        sqlx::query(AssertSqlSafe(sql))
            .bind(worker)
            .bind(lease_until_ms),
        |query, id| query.bind(*id),
    );
    let rows = query.fetch_all(db.pool()).await?;
    let claimed_ids: Vec<i64> = rows
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<sqlx::Result<_>>()?;
    let mut payloads = payloads(db, &claimed_ids).await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("id")?;
            claimed(row, worker, payloads.remove(&id))
        })
        .collect()
}

/// The payloads of jobs `ids`, by id, in one query. Read outside any transaction: a payload
/// never changes.
async fn payloads(db: &Database, ids: &[i64]) -> sqlx::Result<HashMap<i64, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut conn = db.pool().acquire().await?;
    payloads_on(&mut conn, ids, Payloads::Read).await
}

/// What [`payloads_on`] does with the payloads it returns.
#[derive(Clone, Copy)]
enum Payloads {
    Read,
    /// Deletes them: their jobs are taken off the queue ([`take_first_attempts`]).
    Take,
}

/// [`payloads`] on `conn`, read or taken.
async fn payloads_on(
    conn: &mut AnyConnection,
    ids: &[i64],
    access: Payloads,
) -> sqlx::Result<HashMap<i64, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list = placeholders(1, ids.len());
    let sql = match access {
        Payloads::Read => {
            format!("SELECT job_id, payload FROM job_payloads WHERE job_id IN ({list})")
        }
        Payloads::Take => {
            format!("DELETE FROM job_payloads WHERE job_id IN ({list}) RETURNING job_id, payload")
        }
    };
    let query = ids
        .iter()
        .fold(sqlx::query(AssertSqlSafe(sql)), |query, id| query.bind(*id));
    query
        .fetch_all(conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("job_id")?, row.try_get("payload")?)))
        .collect()
}

/// `$first, $first+1, ...`: `count` placeholders.
fn placeholders(first: usize, count: usize) -> String {
    let all: Vec<String> = (first..first + count).map(|n| format!("${n}")).collect();
    all.join(", ")
}

/// `(id, attempts, lease_owner) IN (VALUES ...)` for `leases`, from placeholder `$first` on,
/// with the query binding them.
fn leases_condition(first: usize, count: usize) -> String {
    let rows: Vec<String> = (0..count)
        .map(|row| {
            let n = first + row * 3;
            format!("(${n}, ${}, ${})", n + 1, n + 2)
        })
        .collect();
    format!(
        "(id, attempts, lease_owner) IN (VALUES {})",
        rows.join(", ")
    )
}

/// Marks the jobs of `leases` succeeded, in one statement; returns the ids whose lease still
/// held (the others were taken over, and are left alone).
pub async fn succeed(
    conn: &mut AnyConnection,
    leases: &[Lease],
    now_ms: i64,
) -> sqlx::Result<Vec<i64>> {
    finish_leases(
        conn,
        "state = 'succeeded', finished_at_ms = $1, lease_until_ms = NULL",
        now_ms,
        leases,
    )
    .await
}

/// Gives the jobs of `leases` back to the queue unfinished, due at once, their attempt not
/// counted: the worker is stopping. Returns the ids whose lease still held.
pub async fn release(db: &Database, leases: &[Lease], now_ms: i64) -> sqlx::Result<Vec<i64>> {
    let mut conn = db.pool().acquire().await?;
    finish_leases(
        &mut conn,
        // The job keeps its place in the queue: `run_at_ms` stays as it was.
        "state = 'queued', attempts = attempts - 1, lease_until_ms = NULL",
        now_ms,
        leases,
    )
    .await
}

/// Extends the leases of `leases` to `until_ms`: their handlers are still running.
pub async fn extend(db: &Database, leases: &[Lease], until_ms: i64) -> sqlx::Result<Vec<i64>> {
    let mut conn = db.pool().acquire().await?;
    finish_leases(&mut conn, "lease_until_ms = $1", until_ms, leases).await
}

/// `UPDATE jobs SET <set>` (which may use `$1`, `value`) for the running jobs of `leases`.
async fn finish_leases(
    conn: &mut AnyConnection,
    set: &str,
    value: i64,
    leases: &[Lease],
) -> sqlx::Result<Vec<i64>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE jobs SET {set} WHERE state = 'running' AND {} RETURNING id",
        leases_condition(2, leases.len())
    );
    let query = leases.iter().fold(
        sqlx::query_scalar(AssertSqlSafe(sql)).bind(value),
        |query, lease| {
            query
                .bind(lease.id)
                .bind(lease.attempt)
                .bind(lease.owner.as_str())
        },
    );
    query.fetch_all(conn).await
}

/// What happens to a job after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Queued again, due at this time.
    RetryAt(i64),
    Dead,
}

/// Records the failed attempt of `lease` with its `error` and schedules the next one, or marks
/// the job dead; `false` (and no change) when the lease no longer holds.
pub async fn fail(
    conn: &mut AnyConnection,
    lease: &Lease,
    error: &str,
    after: AfterFailure,
    now_ms: i64,
) -> sqlx::Result<bool> {
    let (state, run_at_ms, finished_at_ms) = match after {
        AfterFailure::RetryAt(at_ms) => (State::Queued, Some(at_ms), None),
        AfterFailure::Dead => (State::Dead, None, Some(now_ms)),
    };
    let updated = sqlx::query(
        "UPDATE jobs SET state = $1, run_at_ms = COALESCE($2, run_at_ms), finished_at_ms = $3, \
             last_error = $4, lease_until_ms = NULL \
         WHERE id = $5 AND attempts = $6 AND lease_owner = $7 AND state = 'running'",
    )
    .bind(state.as_str())
    .bind(run_at_ms)
    .bind(finished_at_ms)
    .bind(error)
    .bind(lease.id)
    .bind(lease.attempt)
    .bind(lease.owner.as_str())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    record_error(conn, lease.id, lease.attempt, &lease.owner, error, now_ms).await?;
    Ok(true)
}

/// Appends an attempt's error to the job's history (once per attempt).
pub async fn record_error(
    conn: &mut AnyConnection,
    id: i64,
    attempt: i64,
    worker: &str,
    error: &str,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO job_errors (job_id, attempt, worker, at_ms, error) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, attempt) DO NOTHING",
    )
    .bind(id)
    .bind(attempt)
    .bind(worker)
    .bind(now_ms)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes up to `limit` jobs that succeeded before `before_ms`, with their payloads and
/// errors, oldest first; returns how many.
pub async fn purge_succeeded(
    conn: &mut AnyConnection,
    before_ms: i64,
    limit: i64,
) -> sqlx::Result<u64> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE finished_at_ms < $1 AND state = 'succeeded' \
         ORDER BY finished_at_ms LIMIT $2",
    )
    .bind(before_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    delete_jobs(conn, &ids).await
}

/// Deletes jobs `ids` with their payloads and errors; returns how many jobs.
async fn delete_jobs(conn: &mut AnyConnection, ids: &[i64]) -> sqlx::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let list = placeholders(1, ids.len());
    let mut deleted = 0;
    for table in [
        "job_payloads WHERE job_id",
        "job_errors WHERE job_id",
        "jobs WHERE id",
    ] {
        let sql = format!("DELETE FROM {table} IN ({list})");
        let query = ids
            .iter()
            .fold(sqlx::query(AssertSqlSafe(sql)), |query, id| query.bind(*id));
        deleted = query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(deleted)
}

/// What an operator's action on a dead job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadAction {
    Done,
    /// No job has this id.
    Unknown,
    /// The job is not dead (queued, running or succeeded): nothing was changed.
    NotDead,
    /// A retry would make a second unfinished job with the unique key of one queued since.
    DuplicateKey,
}

/// Queues dead job `id` again, due now, with as many attempts again as it had.
pub async fn retry_dead(
    conn: &mut AnyConnection,
    id: i64,
    now_ms: i64,
) -> sqlx::Result<DeadAction> {
    let Some(state) = state_of(conn, id).await? else {
        return Ok(DeadAction::Unknown);
    };
    if state != State::Dead.as_str() {
        return Ok(DeadAction::NotDead);
    }
    let key: Option<String> = sqlx::query_scalar("SELECT unique_key FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    if let Some(key) = key {
        let taken = sqlx::query(
            "SELECT id FROM jobs WHERE unique_key = $1 AND finished_at_ms IS NULL AND id <> $2",
        )
        .bind(key)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        if taken.is_some() {
            return Ok(DeadAction::DuplicateKey);
        }
    }
    sqlx::query(
        "UPDATE jobs SET state = 'queued', finished_at_ms = NULL, run_at_ms = $2, \
             max_attempts = attempts + max_attempts, lease_until_ms = NULL \
         WHERE id = $1 AND state = 'dead'",
    )
    .bind(id)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(DeadAction::Done)
}

/// Deletes dead job `id`, with its payload and errors.
pub async fn discard_dead(conn: &mut AnyConnection, id: i64) -> sqlx::Result<DeadAction> {
    match state_of(conn, id).await? {
        None => Ok(DeadAction::Unknown),
        Some(state) if state != State::Dead.as_str() => Ok(DeadAction::NotDead),
        Some(_) => {
            delete_jobs(conn, &[id]).await?;
            Ok(DeadAction::Done)
        }
    }
}

async fn state_of(conn: &mut AnyConnection, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// How many jobs of a kind are in a state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = JobCount)]
pub struct Count {
    pub kind: String,
    pub state: String,
    pub jobs: i64,
}

/// The jobs by kind and state.
pub async fn counts(db: &Database) -> sqlx::Result<Vec<Count>> {
    sqlx::query(
        "SELECT kind, state, count(*) AS jobs FROM jobs GROUP BY kind, state ORDER BY kind, state",
    )
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        Ok(Count {
            kind: row.try_get("kind")?,
            state: row.try_get("state")?,
            jobs: row.try_get("jobs")?,
        })
    })
    .collect()
}

/// A job as lists show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Job)]
pub struct JobSummary {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at_ms: i64,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub unique_key: Option<String>,
    /// The worker that holds, or last held, the job.
    pub worker: Option<String>,
    pub last_error: Option<String>,
}

const SUMMARY_COLUMNS: &str = "id, kind, state, attempts, max_attempts, run_at_ms, \
     created_at_ms, finished_at_ms, unique_key, lease_owner, last_error";

impl JobSummary {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            state: row.try_get("state")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            run_at_ms: row.try_get("run_at_ms")?,
            created_at_ms: row.try_get("created_at_ms")?,
            finished_at_ms: row.try_get("finished_at_ms")?,
            unique_key: row.try_get("unique_key")?,
            worker: row.try_get("lease_owner")?,
            last_error: row.try_get("last_error")?,
        })
    }
}

/// Which jobs a list shows: newest first, from before job `before` when set.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<State>,
    pub kind: Option<String>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// A page of jobs and the `before` of the next page, if any.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    pub next_before: Option<i64>,
}

/// Jobs matching `filter`, newest first.
pub async fn list(db: &Database, filter: &ListFilter) -> sqlx::Result<JobPage> {
    // One more than the page, to know whether another follows.
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM jobs \
         WHERE ($1 = '' OR state = $1) AND ($2 = '' OR kind = $2) AND id < $3 \
         ORDER BY id DESC LIMIT $4"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(filter.state.map_or("", State::as_str))
        .bind(filter.kind.as_deref().unwrap_or(""))
        .bind(filter.before.unwrap_or(i64::MAX))
        .bind(filter.limit + 1)
        .fetch_all(db.pool())
        .await?;
    let mut jobs = rows
        .iter()
        .map(JobSummary::from_row)
        .collect::<sqlx::Result<Vec<_>>>()?;
    let page = usize::try_from(filter.limit).unwrap_or(usize::MAX);
    let more = jobs.len() > page;
    jobs.truncate(page);
    let next_before = more.then(|| jobs.last().map(|job| job.id)).flatten();
    Ok(JobPage { jobs, next_before })
}

/// A failed or abandoned attempt.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = JobAttemptError)]
pub struct AttemptError {
    pub attempt: i64,
    pub worker: String,
    pub at_ms: i64,
    pub error: String,
}

/// A job with its payload and the errors of its attempts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    /// The payload (parsed for reading; kept as text when it is not JSON).
    pub payload: serde_json::Value,
    pub errors: Vec<AttemptError>,
}

/// Job `id` with its payload and errors.
pub async fn detail(db: &Database, id: i64) -> sqlx::Result<Option<JobDetail>> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM jobs WHERE id = $1");
    let Some(row) = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(db.pool())
        .await?
    else {
        return Ok(None);
    };
    let summary = JobSummary::from_row(&row)?;
    let payload: Option<String> =
        sqlx::query_scalar("SELECT payload FROM job_payloads WHERE job_id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    let errors = sqlx::query(
        "SELECT attempt, worker, at_ms, error FROM job_errors WHERE job_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        Ok(AttemptError {
            attempt: row.try_get("attempt")?,
            worker: row.try_get("worker")?,
            at_ms: row.try_get("at_ms")?,
            error: row.try_get("error")?,
        })
    })
    .collect::<sqlx::Result<Vec<_>>>()?;
    let payload = payload.unwrap_or_default();
    Ok(Some(JobDetail {
        summary,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
        errors,
    }))
}

/// The next time schedule `name` fires, as stored; inserted as `next_at_ms` (with its cron
/// expression) when the schedule is new or its expression changed.
pub async fn schedule_next(
    db: &Database,
    name: &str,
    cron: &str,
    next_at_ms: i64,
) -> sqlx::Result<i64> {
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO job_schedules (name, cron, next_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, next_at_ms = excluded.next_at_ms \
             WHERE job_schedules.cron <> excluded.cron \
         RETURNING next_at_ms",
    )
    .bind(name)
    .bind(cron)
    .bind(next_at_ms)
    .fetch_optional(db.pool())
    .await?;
    match inserted {
        Some(next_at_ms) => Ok(next_at_ms),
        None => {
            sqlx::query_scalar("SELECT next_at_ms FROM job_schedules WHERE name = $1")
                .bind(name)
                .fetch_one(db.pool())
                .await
        }
    }
}

/// Moves schedule `name` on from `from_ms` to `to_ms` on `conn`; `false` when another instance
/// moved it first (its `next_at_ms` is no longer `from_ms`).
pub async fn advance_schedule(
    conn: &mut AnyConnection,
    name: &str,
    from_ms: i64,
    to_ms: i64,
) -> sqlx::Result<bool> {
    let moved =
        sqlx::query("UPDATE job_schedules SET next_at_ms = $3 WHERE name = $1 AND next_at_ms = $2")
            .bind(name)
            .bind(from_ms)
            .bind(to_ms)
            .execute(conn)
            .await?;
    Ok(moved.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_matched_by_id_attempt_and_owner() {
        assert_eq!(
            leases_condition(2, 2),
            "(id, attempts, lease_owner) IN (VALUES ($2, $3, $4), ($5, $6, $7))"
        );
        assert_eq!(placeholders(3, 2), "$3, $4");
    }

    #[test]
    fn states_round_trip() {
        for text in State::LIST.split(", ") {
            assert_eq!(State::parse(text).unwrap().as_str(), text);
        }
        assert_eq!(State::parse("lost"), None);
    }
}
