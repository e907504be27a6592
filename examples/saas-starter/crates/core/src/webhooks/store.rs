//! The webhook tables: `webhook_events` (every event received and its status),
//! `webhook_payloads` (each event's body byte for byte, written once, unless the event's row
//! holds it), `webhook_attempts` (every processing attempt, its times and its error, but a first
//! attempt that succeeded at receipt, which the event's row holds) and `webhook_replays` (who asked for which
//! replay, and when). The events waiting for a worker are `webhooks.process` jobs of the queue
//! ([`crate::jobs`]).
//!
//! Times of jobs and attempts are Unix milliseconds (`_ms`), other times Unix seconds.

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use serde::Serialize;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::QueryScalar;
use sqlx::{Any, AnyConnection, AssertSqlSafe, Row};

use super::WebhookError;
use super::process::{self, ProcessEvent};
use crate::audit::{self, Action, Actor};
use crate::db::{Backend, Database};
use crate::jobs::{self, Enqueued, NewJob};

/// Where an event is in its life; see the module documentation of [`super`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Retrying,
    Processed,
    Ignored,
    DeadLetter,
}

impl Status {
    /// Every status, for error messages.
    pub const LIST: &'static str = "pending, retrying, processed, ignored, dead_letter";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Processed => "processed",
            Self::Ignored => "ignored",
            Self::DeadLetter => "dead_letter",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Retrying,
            Self::Processed,
            Self::Ignored,
            Self::DeadLetter,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to store, as read from its envelope.
#[derive(Clone, Copy)]
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub created: i64,
    pub livemode: bool,
    /// The raw body, byte for byte.
    pub payload: &'a str,
}

/// What [`ingest`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    Stored,
    /// An event with this id was stored before: nothing was written.
    Duplicate,
}

/// Stores `events`, their payloads and a job for each, skipping the ids stored before, in one
/// transaction; returns the ids it stored. The ids must be distinct (see
/// `ingest::first_copies`); `max_attempts` is each job's.
///
/// Concurrent transactions storing one id wait on the unique index, and all but the first find
/// it taken: an id is stored, and enqueued, once.
pub async fn ingest(
    db: &Database,
    events: &[NewEvent<'_>],
    max_attempts: i64,
    now_ms: i64,
) -> sqlx::Result<HashSet<String>> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let mut tx = db.begin_write().await?;
    let stored = insert_events(&mut tx, events, &StoredAs::Queued { max_attempts }, now_ms).await?;
    tx.commit().await?;
    Ok(stored.into_iter().collect())
}

/// The status the events of [`insert_events`] are stored in.
pub enum StoredAs<'a> {
    /// `pending`, each with its `webhooks.process` job of `max_attempts`.
    Queued { max_attempts: i64 },
    /// Already processed, in the inserting transaction, before it commits: each in its status
    /// (`processed` or `ignored`, in the events' order), with its first attempt, succeeded, and
    /// no job.
    Processed(ReceiptAttempt<'a>),
}

/// The attempts at receipt of a batch: what [`StoredAs::Processed`] writes in the events' rows.
pub struct ReceiptAttempt<'a> {
    /// Each event's status, in the events' order.
    pub statuses: &'a [Status],
    pub worker: &'a str,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

/// Inserts `events` and their payloads on `conn` (in a transaction), skipping the ids stored
/// before, in `stored`'s status; returns the ids it inserted. The ids must be distinct.
///
/// Queued, the payloads go to `webhook_payloads`, so that processing's updates of the events'
/// rows do not rewrite them; processed, nothing rewrites the row, which takes the payload and
/// the first attempt itself: one row and two index entries per event (its id, the log's
/// order) where the payload's and the attempt's rows took two more of each.
pub async fn insert_events(
    conn: &mut AnyConnection,
    events: &[NewEvent<'_>],
    stored: &StoredAs<'_>,
    now_ms: i64,
) -> sqlx::Result<Vec<String>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let received_at = now_ms / 1000;
    let postgres = conn.backend_name() == "PostgreSQL";
    let receipt = match stored {
        StoredAs::Queued { .. } => None,
        StoredAs::Processed(receipt) => Some(receipt),
    };
    let status_of = |n: usize| receipt.map_or(Status::Pending, |receipt| receipt.statuses[n]);
    if let Some(receipt) = receipt {
        // `new` is named for PostgreSQL's sake; SQLite's `VALUES` columns are `column1`...
        let (source, columns) = if postgres {
            (
                "(VALUES {}) AS new (id, type, created, livemode, payload, status)",
                "id, type, created, livemode, $1, status, 1, $1, payload, $2, $3, $4",
            )
        } else {
            (
                "(VALUES {}) WHERE true",
                "column1, column2, column3, column4, $1, column6, 1, $1, column5, $2, $3, $4",
            )
        };
        let sql = format!(
            "INSERT INTO webhook_events \
                 (id, type, created, livemode, received_at, status, attempts, processed_at, \
                 payload, receipt_worker, receipt_started_at_ms, receipt_finished_at_ms) \
             SELECT {columns} FROM {} \
             ON CONFLICT (id) DO NOTHING RETURNING id",
            source.replace("{}", &values_rows(events.len(), EVENT_PARAMETERS, 5, ""))
        );
        // The attempt's end is written before the statements that follow it, but it is the
        // caller's to run them (the handlers) first.
        let query = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(received_at)
            .bind(receipt.worker)
            .bind(receipt.started_at_ms)
            .bind(receipt.finished_at_ms);
        return bind_events(query, events, status_of).fetch_all(conn).await;
    }
    let StoredAs::Queued { max_attempts } = *stored else {
        unreachable!("processed events were stored above")
    };
    if postgres {
        // One statement, so one round trip, for the events, their payloads and their jobs: the
        // payloads' and the jobs' inserts take the ids the events' inserted, and only those.
        // The job is the one `event_job` makes: its payload the id as JSON, its unique key
        // `job_key`'s.
        let sql = format!(
            "WITH new (id, type, created, livemode, payload, status) AS (VALUES {}), \
             stored AS ( \
                 INSERT INTO webhook_events \
                     (id, type, created, livemode, received_at, status, attempts) \
                 SELECT id, type, created, livemode, $1, status, 0 FROM new \
                 ON CONFLICT (id) DO NOTHING RETURNING id), \
             job_rows AS ( \
                 SELECT row_number() OVER () AS n, $3::text AS kind, \
                     to_json(id)::text AS payload, $2::bigint AS max_attempts, \
                     $4::bigint AS run_at_ms, $5::text || id AS unique_key, \
                     $4::bigint AS created_at_ms \
                 FROM stored), \
             {}, \
             payloads AS ( \
                 INSERT INTO webhook_payloads (event_id, payload) \
                 SELECT id, payload FROM new JOIN stored USING (id)) \
             SELECT id FROM stored",
            values_rows(events.len(), EVENT_PARAMETERS, 6, ""),
            jobs::store::enqueue_ctes("job_rows")
        );
        let query = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(received_at)
            .bind(max_attempts)
            .bind(process::KIND)
            .bind(now_ms)
            .bind(process::job_key(""));
        return bind_events(query, events, status_of).fetch_all(conn).await;
    }
    // SQLite has no data-modifying CTE; statements cost no round trip there.
    let sql = format!(
        "INSERT INTO webhook_events \
             (id, type, created, livemode, received_at, status, attempts) \
         SELECT column1, column2, column3, column4, $1, column6, 0 \
         FROM (VALUES {}) WHERE true \
         ON CONFLICT (id) DO NOTHING RETURNING id",
        values_rows(events.len(), EVENT_PARAMETERS, 2, "")
    );
    let query = sqlx::query_scalar(AssertSqlSafe(sql)).bind(received_at);
    let stored_ids: Vec<String> = bind_events(query, events, status_of)
        .fetch_all(&mut *conn)
        .await?;
    let stored_set: HashSet<&str> = stored_ids.iter().map(String::as_str).collect();
    for event in events.iter().filter(|event| stored_set.contains(event.id)) {
        sqlx::query("INSERT INTO webhook_payloads (event_id, payload) VALUES ($1, $2)")
            .bind(event.id)
            .bind(event.payload)
            .execute(&mut *conn)
            .await?;
    }
    let jobs = stored_ids
        .iter()
        .map(|id| event_job(id, max_attempts))
        .collect::<sqlx::Result<Vec<_>>>()?;
    jobs::enqueue_all(conn, &jobs).await?;
    Ok(stored_ids)
}

/// Of `ids`, those stored already, in one query.
pub async fn stored_already(conn: &mut AnyConnection, ids: &[&str]) -> sqlx::Result<Vec<String>> {
    // The ids as one JSON array, looked up in the primary key (see `load_events`).
    let sql = if conn.backend_name() == "PostgreSQL" {
        "SELECT id FROM webhook_events \
         WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1::json)))"
    } else {
        "SELECT id FROM webhook_events WHERE id IN (SELECT value FROM json_each($1))"
    };
    let ids = serde_json::to_string(ids).map_err(|error| sqlx::Error::Encode(error.into()))?;
    sqlx::query_scalar(sql).bind(ids).fetch_all(conn).await
}

/// The `webhooks.process` job of the event `id`.
fn event_job(id: &str, max_attempts: i64) -> sqlx::Result<NewJob> {
    // An id always serializes (a JSON string): the error only satisfies the types.
    ProcessEvent::job(id, max_attempts).map_err(|error| sqlx::Error::Encode(error.into()))
}

/// The parameters of an event's row, in the order [`bind_events`] binds them.
const EVENT_PARAMETERS: usize = 6;

/// `count` rows of a `VALUES` list: `per_row` parameters each, numbered from `$first` on, then
/// `shared`, what every row has alike (if not empty). For 2 rows of 2 from `$2` with `$1`
/// shared: `($2, $3, $1), ($4, $5, $1)`.
fn values_rows(count: usize, per_row: usize, first: usize, shared: &str) -> String {
    let rows: Vec<String> = (0..count)
        .map(|row| {
            let start = first + row * per_row;
            let mut columns: Vec<String> =
                (start..start + per_row).map(|n| format!("${n}")).collect();
            if !shared.is_empty() {
                columns.push(shared.to_owned());
            }
            format!("({})", columns.join(", "))
        })
        .collect();
    rows.join(", ")
}

/// Binds the [`EVENT_PARAMETERS`] of each event (id, type, created, livemode, payload, and the
/// status `status_of` its position), after those `query` already has.
fn bind_events<'q, O>(
    query: QueryScalar<'q, Any, O, AnyArguments>,
    events: &[NewEvent<'q>],
    status_of: impl Fn(usize) -> Status,
) -> QueryScalar<'q, Any, O, AnyArguments> {
    events.iter().enumerate().fold(query, |query, (n, event)| {
        query
            .bind(event.id)
            .bind(event.event_type)
            .bind(event.created)
            .bind(i64::from(event.livemode))
            .bind(event.payload)
            .bind(status_of(n).as_str())
    })
}

/// An event as stored: what its handler gets.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub livemode: bool,
    /// The body as received.
    pub payload: String,
}

/// An event's payload, as `payload`, wherever it is (see [`insert_events`]): in the event's row
/// (processed at receipt) or in `webhook_payloads`; then the tables it is read from.
macro_rules! stored_payload {
    () => {
        "COALESCE(webhook_events.payload, webhook_payloads.payload) AS payload \
         FROM webhook_events \
         LEFT JOIN webhook_payloads ON webhook_payloads.event_id = webhook_events.id"
    };
}

/// The stored events with these ids and their payloads, in any order, in one query on `conn`
/// (a stored event's fields and payload never change: any connection reads them alike).
pub async fn load_events(conn: &mut AnyConnection, ids: &[&str]) -> sqlx::Result<Vec<StoredEvent>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The ids as one JSON array: one statement text whatever their number, so one prepared
    // statement per connection rather than one per batch size, each parsed and planned. On
    // PostgreSQL `= ANY(ARRAY(...))`: `IN (SELECT ...)` is planned as a hash join with a scan
    // of every event; an array is looked up in the primary key.
    let sql = if conn.backend_name() == "PostgreSQL" {
        concat!(
            "SELECT id, type, created, livemode, ",
            stored_payload!(),
            " WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1::json)))"
        )
    } else {
        concat!(
            "SELECT id, type, created, livemode, ",
            stored_payload!(),
            " WHERE id IN (SELECT value FROM json_each($1))"
        )
    };
    let ids = serde_json::to_string(ids).map_err(|error| sqlx::Error::Encode(error.into()))?;
    sqlx::query(sql)
        .bind(ids)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|row| {
            Ok(StoredEvent {
                id: row.try_get("id")?,
                event_type: row.try_get("type")?,
                created: row.try_get("created")?,
                livemode: row.try_get::<i64, _>("livemode")? != 0,
                payload: row.try_get("payload")?,
            })
        })
        .collect()
}

/// One processing attempt, as recorded.
pub struct AttemptRecord<'a> {
    pub worker: &'a str,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub outcome: Outcome,
    pub error: Option<&'a str>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// The worker's lease expired before it finished: it stopped or crashed.
    Abandoned,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }
}

/// A successful attempt of a batch ([`record_successes`]).
pub struct Success<'a> {
    pub event_id: &'a str,
    /// `processed` or `ignored`.
    pub status: Status,
    pub worker: &'a str,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

/// [`record_attempt`] for the successful attempts of a batch: on PostgreSQL one statement for all
/// of them rather than one each (a round trip each); on SQLite, where statements cost no round
/// trip, one each.
pub async fn record_successes(
    conn: &mut AnyConnection,
    backend: Backend,
    successes: &[Success<'_>],
) -> sqlx::Result<()> {
    if successes.is_empty() {
        return Ok(());
    }
    match backend {
        // The rows as one JSON array: one statement text whatever their number, and the
        // events looked up through an array (see `load_events`).
        Backend::Postgres => {
            let done: Vec<serde_json::Value> = successes
                .iter()
                .map(|success| {
                    serde_json::json!({
                        "id": success.event_id,
                        "status": success.status.as_str(),
                        "processed_at": success.finished_at_ms / 1000,
                        "worker": success.worker,
                        "started_at_ms": success.started_at_ms,
                        "finished_at_ms": success.finished_at_ms,
                    })
                })
                .collect();
            sqlx::query(
                "WITH done AS ( \
                     SELECT * FROM json_to_recordset($1::json) AS d (id text, status text, \
                         processed_at bigint, worker text, started_at_ms bigint, \
                         finished_at_ms bigint)), \
                 event AS ( \
                     UPDATE webhook_events SET status = done.status, \
                         attempts = webhook_events.attempts + 1, \
                         processed_at = done.processed_at, last_error = NULL \
                     FROM done WHERE webhook_events.id = done.id \
                         AND webhook_events.id = ANY(ARRAY(SELECT id FROM done)) \
                     RETURNING webhook_events.id, webhook_events.attempts) \
                 INSERT INTO webhook_attempts \
                     (event_id, number, worker, started_at_ms, finished_at_ms, outcome) \
                 SELECT event.id, event.attempts, done.worker, done.started_at_ms, \
                     done.finished_at_ms, 'succeeded' \
                 FROM event JOIN done ON done.id = event.id",
            )
            .bind(serde_json::Value::Array(done).to_string())
            .execute(conn)
            .await?;
        }
        Backend::Sqlite => {
            for success in successes {
                let attempt = AttemptRecord {
                    worker: success.worker,
                    started_at_ms: success.started_at_ms,
                    finished_at_ms: success.finished_at_ms,
                    outcome: Outcome::Succeeded,
                    error: None,
                };
                record_attempt(
                    &mut *conn,
                    backend,
                    success.event_id,
                    success.status,
                    &attempt,
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Sets the event's status after an attempt and appends the attempt to its history, numbered
/// by the event's count of attempts, this one included.
pub async fn record_attempt(
    conn: &mut AnyConnection,
    backend: Backend,
    event_id: &str,
    status: Status,
    attempt: &AttemptRecord<'_>,
) -> sqlx::Result<()> {
    let processed_at = (status == Status::Processed || status == Status::Ignored)
        .then_some(attempt.finished_at_ms / 1000);
    match backend {
        // One round trip instead of two: this runs in every job's transaction.
        Backend::Postgres => {
            sqlx::query(
                "WITH event AS ( \
                     UPDATE webhook_events SET status = $2, attempts = attempts + 1, \
                         processed_at = COALESCE($3, processed_at), last_error = $4 \
                     WHERE id = $1 RETURNING attempts) \
                 INSERT INTO webhook_attempts \
                     (event_id, number, worker, started_at_ms, finished_at_ms, outcome, error) \
                 SELECT $1, attempts, $5, $6, $7, $8, $4 FROM event",
            )
            .bind(event_id)
            .bind(status.as_str())
            .bind(processed_at)
            .bind(attempt.error)
            .bind(attempt.worker)
            .bind(attempt.started_at_ms)
            .bind(attempt.finished_at_ms)
            .bind(attempt.outcome.as_str())
            .execute(conn)
            .await?;
        }
        // No data-modifying CTE; statements cost no round trip on SQLite anyway.
        Backend::Sqlite => {
            let number: i64 = sqlx::query_scalar(
                "UPDATE webhook_events SET status = $2, attempts = attempts + 1, \
                     processed_at = COALESCE($3, processed_at), last_error = $4 \
                 WHERE id = $1 RETURNING attempts",
            )
            .bind(event_id)
            .bind(status.as_str())
            .bind(processed_at)
            .bind(attempt.error)
            .fetch_one(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO webhook_attempts \
                     (event_id, number, worker, started_at_ms, finished_at_ms, outcome, error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(event_id)
            .bind(number)
            .bind(attempt.worker)
            .bind(attempt.started_at_ms)
            .bind(attempt.finished_at_ms)
            .bind(attempt.outcome.as_str())
            .bind(attempt.error)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// What [`logs`] returns.
#[derive(Debug, Clone)]
pub struct LogFilter {
    pub status: Option<Status>,
    pub event_type: Option<String>,
    pub limit: i64,
    pub cursor: Option<Cursor>,
}

/// Where a page of [`logs`] ends: the last event's `received_at` and id, in the newest-first
/// order. Encoded opaquely so that clients pass it back rather than build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    received_at: i64,
    id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        BASE64URL.encode(format!("{}:{}", self.received_at, self.id))
    }

    pub fn decode(text: &str) -> Option<Self> {
        let bytes = BASE64URL.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (received_at, id) = text.split_once(':')?;
        Some(Self {
            received_at: received_at.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

/// An event as lists show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookEvent)]
pub struct EventSummary {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: String,
    /// Stripe's creation time, Unix seconds.
    pub created: i64,
    pub livemode: bool,
    pub received_at: i64,
    pub attempts: i64,
    pub replays: i64,
    pub processed_at: Option<i64>,
    pub last_error: Option<String>,
}

macro_rules! summary_columns {
    () => {
        "id, type, status, created, livemode, received_at, attempts, replays, processed_at, \
         last_error"
    };
}

impl EventSummary {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            event_type: row.try_get("type")?,
            status: row.try_get("status")?,
            created: row.try_get("created")?,
            livemode: row.try_get::<i64, _>("livemode")? != 0,
            received_at: row.try_get("received_at")?,
            attempts: row.try_get("attempts")?,
            replays: row.try_get("replays")?,
            processed_at: row.try_get("processed_at")?,
            last_error: row.try_get("last_error")?,
        })
    }
}

/// A page of events and the cursor of the next one, if any.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookEventPage)]
pub struct LogPage {
    pub events: Vec<EventSummary>,
    pub next_cursor: Option<String>,
}

/// Events matching `filter`, newest first.
pub async fn logs(db: &Database, filter: &LogFilter) -> sqlx::Result<LogPage> {
    let (before_at, before_id) = filter
        .cursor
        .as_ref()
        .map_or((i64::MAX, String::new()), |c| (c.received_at, c.id.clone()));
    // One more than the page, to know whether another page follows.
    let rows = sqlx::query(concat!(
        "SELECT ",
        summary_columns!(),
        " FROM webhook_events \
         WHERE ($1 = '' OR status = $1) AND ($2 = '' OR type = $2) \
           AND (received_at < $3 OR (received_at = $3 AND id < $4)) \
         ORDER BY received_at DESC, id DESC LIMIT $5"
    ))
    .bind(filter.status.map_or("", Status::as_str))
    .bind(filter.event_type.as_deref().unwrap_or(""))
    .bind(before_at)
    .bind(before_id)
    .bind(filter.limit + 1)
    .fetch_all(db.pool())
    .await?;
    let mut events = rows
        .iter()
        .map(EventSummary::from_row)
        .collect::<sqlx::Result<Vec<_>>>()?;
    let more = events.len() > usize::try_from(filter.limit).unwrap_or(usize::MAX);
    events.truncate(usize::try_from(filter.limit).unwrap_or(usize::MAX));
    let next_cursor = more.then(|| events.last()).flatten().map(|last| {
        Cursor {
            received_at: last.received_at,
            id: last.id.clone(),
        }
        .encode()
    });
    Ok(LogPage {
        events,
        next_cursor,
    })
}

/// One attempt as the event page shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookAttempt)]
pub struct AttemptView {
    pub number: i64,
    pub worker: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub outcome: String,
    pub error: Option<String>,
}

/// One replay request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookReplay)]
pub struct ReplayView {
    pub requested_by: String,
    pub requested_at: i64,
}

/// An event with everything known about it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookEventDetail)]
pub struct EventDetail {
    #[serde(flatten)]
    pub summary: EventSummary,
    /// The payload as received (parsed, for reading; the stored text is byte for byte).
    pub payload: serde_json::Value,
    pub attempt_history: Vec<AttemptView>,
    pub replay_history: Vec<ReplayView>,
}

/// The event `id` with its payload, attempts and replays.
pub async fn event(db: &Database, id: &str) -> sqlx::Result<Option<EventDetail>> {
    let Some(row) = sqlx::query(concat!(
        "SELECT ",
        summary_columns!(),
        ", ",
        stored_payload!(),
        " WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(None);
    };
    let summary = EventSummary::from_row(&row)?;
    let payload: String = row.try_get("payload")?;
    let attempts = sqlx::query(
        // The first attempt, when it succeeded at receipt, is in the event's row.
        "SELECT 1 AS number, receipt_worker AS worker, receipt_started_at_ms AS started_at_ms, \
             receipt_finished_at_ms AS finished_at_ms, 'succeeded' AS outcome, NULL AS error \
         FROM webhook_events WHERE id = $1 AND receipt_worker IS NOT NULL \
         UNION ALL \
         SELECT number, worker, started_at_ms, finished_at_ms, outcome, error \
         FROM webhook_attempts WHERE event_id = $1 ORDER BY number",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        Ok(AttemptView {
            number: row.try_get("number")?,
            worker: row.try_get("worker")?,
            started_at_ms: row.try_get("started_at_ms")?,
            finished_at_ms: row.try_get("finished_at_ms")?,
            outcome: row.try_get("outcome")?,
            error: row.try_get("error")?,
        })
    })
    .collect::<sqlx::Result<Vec<_>>>()?;
    let replays = sqlx::query(
        "SELECT requested_by, requested_at FROM webhook_replays \
         WHERE event_id = $1 ORDER BY requested_at, requested_by",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        Ok(ReplayView {
            requested_by: row.try_get("requested_by")?,
            requested_at: row.try_get("requested_at")?,
        })
    })
    .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(Some(EventDetail {
        summary,
        // Stored only after it parsed: a failure here means the row was edited by hand.
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
        attempt_history: attempts,
        replay_history: replays,
    }))
}

/// The audit log's target type of replays.
pub const AUDIT_TARGET_TYPE: &str = "webhook_event";

/// What [`replay`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    Queued { replays: i64 },
    Unknown,
    AlreadyQueued,
}

impl Replay {
    /// How many times the event has been replayed, this one included; 404 when the event is
    /// unknown, 409 when it already waits for a worker (pending, or retrying).
    pub fn into_result(self) -> Result<i64, WebhookError> {
        match self {
            Self::Queued { replays } => Ok(replays),
            Self::Unknown => Err(WebhookError::UnknownEvent),
            Self::AlreadyQueued => Err(WebhookError::AlreadyQueued),
        }
    }
}

/// Queues the stored event `id` again on behalf of `actor`, counting the replay, recording who
/// asked, and auditing it (`webhook.replay`, with the replay count), in one transaction: a
/// replay refused (unknown event, already queued) is not audited.
pub async fn replay(
    db: &Database,
    id: &str,
    actor: Actor<'_>,
    max_attempts: i64,
    now_ms: i64,
) -> sqlx::Result<Replay> {
    let mut tx = db.begin_write().await?;
    let replayed = replay_in(&mut tx, id, &requested_by(actor), max_attempts, now_ms).await?;
    if let Replay::Queued { replays } = replayed {
        let details = serde_json::json!({ "replays": replays }).to_string();
        let action = Action {
            action: "webhook.replay",
            target_type: AUDIT_TARGET_TYPE,
            target_id: id,
            reason: None,
            details: Some(&details),
        };
        audit::record(&mut tx, actor, action, now_ms / 1000).await?;
    }
    tx.commit().await?;
    Ok(replayed)
}

/// Who a replay is recorded as in `webhook_replays`: `email (user id)`, or `API key <name>`.
fn requested_by(actor: Actor<'_>) -> String {
    match actor.user_id.strip_prefix(audit::API_KEY_PREFIX) {
        Some(name) => format!("API key {name}"),
        None => format!("{} ({})", actor.email, actor.user_id),
    }
}

/// The replay itself, in [`replay`]'s transaction.
async fn replay_in(
    conn: &mut AnyConnection,
    id: &str,
    requested_by: &str,
    max_attempts: i64,
    now_ms: i64,
) -> sqlx::Result<Replay> {
    let known = sqlx::query("SELECT id FROM webhook_events WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    if known.is_none() {
        return Ok(Replay::Unknown);
    }
    // The job's unique key refuses a second one while the first is queued or running.
    let job = event_job(id, max_attempts)?;
    if jobs::enqueue(&mut *conn, &job).await? == Enqueued::Duplicate {
        return Ok(Replay::AlreadyQueued);
    }
    let replays: i64 = sqlx::query_scalar(
        "UPDATE webhook_events SET status = 'pending', replays = replays + 1, last_error = NULL \
         WHERE id = $1 RETURNING replays",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO webhook_replays (event_id, requested_by, requested_at) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(requested_by)
    .bind(now_ms / 1000)
    .execute(conn)
    .await?;
    Ok(Replay::Queued { replays })
}

/// Queues every event in `status` again on behalf of `actor` and audits it
/// (`webhook.replay_all`, with the count, also when it is 0), in one transaction; returns how
/// many were queued.
pub async fn replay_all(
    db: &Database,
    status: Status,
    actor: Actor<'_>,
    max_attempts: i64,
    now_ms: i64,
) -> sqlx::Result<u64> {
    let mut tx = db.begin_write().await?;
    let queued = replay_all_in(&mut tx, status, &requested_by(actor), max_attempts, now_ms).await?;
    let details = serde_json::json!({ "status": status.as_str(), "queued": queued }).to_string();
    let action = Action {
        action: "webhook.replay_all",
        target_type: AUDIT_TARGET_TYPE,
        target_id: status.as_str(),
        reason: None,
        details: Some(&details),
    };
    audit::record(&mut tx, actor, action, now_ms / 1000).await?;
    tx.commit().await?;
    Ok(queued)
}

/// The replays themselves, in [`replay_all`]'s transaction.
async fn replay_all_in(
    conn: &mut AnyConnection,
    status: Status,
    requested_by: &str,
    max_attempts: i64,
    now_ms: i64,
) -> sqlx::Result<u64> {
    // A failing event has its `last_error`: for those, the partial index of the failing
    // events answers.
    let sql = if matches!(status, Status::Retrying | Status::DeadLetter) {
        "SELECT id FROM webhook_events WHERE last_error IS NOT NULL AND status = $1 \
         ORDER BY received_at, id"
    } else {
        "SELECT id FROM webhook_events WHERE status = $1 ORDER BY received_at, id"
    };
    let ids: Vec<String> = sqlx::query_scalar(sql)
        .bind(status.as_str())
        .fetch_all(&mut *conn)
        .await?;
    let mut queued = 0;
    for id in &ids {
        if let Replay::Queued { .. } =
            replay_in(&mut *conn, id, requested_by, max_attempts, now_ms).await?
        {
            queued += 1;
        }
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor {
            received_at: 1_700_000_000,
            id: "evt_1:with:colons".into(),
        };

        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("not base64!"), None);
        assert_eq!(Cursor::decode(&BASE64URL.encode("x:evt")), None);
    }

    #[test]
    fn values_rows_number_their_parameters_in_order() {
        assert_eq!(values_rows(1, 1, 1, ""), "($1)");
        assert_eq!(values_rows(2, 2, 2, ""), "($2, $3), ($4, $5)");
        assert_eq!(values_rows(3, 1, 2, "$1"), "($2, $1), ($3, $1), ($4, $1)");
        assert_eq!(
            values_rows(2, EVENT_PARAMETERS, 3, "$1"),
            "($3, $4, $5, $6, $7, $8, $1), ($9, $10, $11, $12, $13, $14, $1)"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for text in Status::LIST.split(", ") {
            assert_eq!(Status::parse(text).unwrap().as_str(), text);
        }
        assert_eq!(Status::parse("lost"), None);
    }
}
