//! Stripe webhooks: verified, durable, idempotent ingestion, and processing with retries.
//!
//! The life of an event:
//!
//! 1. `POST /api/webhooks/stripe` checks the signature against the raw body ([`signature`]),
//!    then stores the event and a job for it ([`store::ingest`]), in one transaction with the
//!    other events arriving at the same time ([`ingest`]). Stripe gets its 2xx only once both
//!    are committed; a repeated event id stores nothing and enqueues nothing, whether the copies
//!    arrive one after another or at once.
//!    By default the instance processes the batch's new events in that same transaction,
//!    before it commits and answers ([`ingest`], "processing at receipt"): steps 2 and 3 then
//!    happen there, with no job; if that fails, the batch is stored with its jobs as below.
//! 2. The jobs worker ([`crate::jobs`]) of any instance of the service runs the event's
//!    `webhooks.process` job ([`ProcessEvent`]): its first attempt in a batch of first
//!    attempts, in a transaction that took their jobs off the queue (deleted, locked until it
//!    ends: the event's attempts are its history); later
//!    attempts (and a failed batch's jobs, one by one) with a lease.
//! 3. The event's [`Handler`] runs in that transaction, which also marks the event processed
//!    and commits once (for a leased job, only if this worker still holds the lease): effects
//!    are applied once, even when a lease expired and another worker took the job over.
//! 4. A handler error rolls its effects back and the queue schedules a retry with exponential
//!    backoff and jitter; after the last attempt the event is `dead_letter`. A worker that dies
//!    mid-job loses nothing: the lease expires and the job is claimed again.
//! 5. Operators list events, read their attempts, and replay them (one, or all dead-lettered).
//!
//! Event statuses: `pending` (waiting for a worker), `retrying` (an attempt failed, another is
//! scheduled), `processed`, `ignored` (no handler for its type), `dead_letter` (out of attempts).

pub mod ingest;
pub mod process;
pub mod signature;
pub mod store;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use process::{Event, Handler, HandlerError, Handlers, ProcessEvent};
pub use signature::{Secrets, SignatureError};
pub use store::{EventDetail, EventSummary, Ingested, LogFilter, LogPage, Status};

use crate::audit::{self, Actor};
use crate::config::Env;
use crate::db::Database;
use crate::error::{BoxError, FieldErrors};
use crate::jobs::{Backoff, Jobs};

/// The largest page of `logs`.
pub const MAX_LOG_LIMIT: i64 = 200;

/// The `STRIPE_WEBHOOK_*` and `WEBHOOKS_*` settings. Not `Debug`: it holds secrets.
pub struct WebhooksConfig {
    /// `None` only when the setting is invalid, which [`Env::finish`] reports before it is used.
    secrets: Option<Secrets>,
    tolerance_secs: i64,
    /// Attempts before an event is dead-lettered, the first included.
    max_attempts: i64,
    /// The delays between attempts (the job queue's leases and workers run them).
    backoff: Backoff,
    operations_api_key: Option<String>,
    /// The audit log's actor id of the key, `api-key:<WEBHOOKS_OPERATIONS_API_KEY_NAME>`.
    operations_api_key_actor: String,
    /// Whether an instance that processes events does so in the transaction that stores them
    /// ([`ingest`]), rather than through the queue.
    process_on_receipt: bool,
}

impl WebhooksConfig {
    pub fn from_env(env: &mut Env) -> Self {
        const SECRETS: &str = "STRIPE_WEBHOOK_SECRETS";
        let secrets = env.required_secret(SECRETS).and_then(|list| {
            let secrets = Secrets::parse(&list);
            if secrets.is_none() {
                env.record(SECRETS, "must hold at least one secret (comma-separated)");
            }
            secrets
        });
        let mut positive = |key: &str, default: u64| {
            let value: u64 = env.optional(key, default);
            if value == 0 {
                env.record(key, "must be at least 1");
            }
            value
        };
        let tolerance_secs = positive("STRIPE_WEBHOOK_TOLERANCE_SECS", 300);
        let max_attempts = positive(
            "WEBHOOKS_MAX_ATTEMPTS",
            process::DEFAULT_MAX_ATTEMPTS.unsigned_abs(),
        );
        let base_delay = positive("WEBHOOKS_RETRY_BASE_MS", 2_000);
        let max_delay = positive("WEBHOOKS_RETRY_MAX_MS", 3_600_000);
        let operations_api_key = env.optional_secret("WEBHOOKS_OPERATIONS_API_KEY");
        if !operations_api_key.is_empty() && operations_api_key.len() < 32 {
            env.record(
                "WEBHOOKS_OPERATIONS_API_KEY",
                "must be at least 32 characters long (or empty to accept admins' tokens only)",
            );
        }
        // Replays by the key are audited under this name: the tool (or team) holding the key.
        const KEY_NAME: &str = "WEBHOOKS_OPERATIONS_API_KEY_NAME";
        let key_name: String = env.optional(KEY_NAME, "internal-tools".to_owned());
        if key_name.trim().is_empty() || key_name.len() > 64 {
            env.record(KEY_NAME, "must be a name of 1 to 64 characters");
        }
        // Off for handlers too slow to hold a request (calls to other services): they then run
        // on the queue only, after the answer.
        let process_on_receipt = env.optional("WEBHOOKS_PROCESS_ON_RECEIPT", true);
        Self {
            secrets,
            tolerance_secs: i64::try_from(tolerance_secs).unwrap_or(i64::MAX),
            max_attempts: i64::try_from(max_attempts).unwrap_or(i64::MAX),
            backoff: Backoff {
                base_delay: Duration::from_millis(base_delay),
                max_delay: Duration::from_millis(max_delay),
            },
            operations_api_key: Some(operations_api_key).filter(|key| !key.is_empty()),
            operations_api_key_actor: format!("{}{}", audit::API_KEY_PREFIX, key_name.trim()),
            process_on_receipt,
        }
    }
}

/// Why webhooks could not be prepared at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the STRIPE_WEBHOOK_* configuration is invalid: check `Env::finish` first")]
    InvalidConfig,
}

/// Why an event could not be ingested, read or replayed, in the domain's terms; the service
/// edge (`crate::error::webhooks`) says how each is answered over HTTP. The messages of the
/// malformed-event variants are the ones Stripe's dashboard shows for a refused delivery.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the event is not UTF-8 JSON")]
    NotUtf8,
    #[error("the event is not valid: {0}")]
    InvalidEvent(serde_json::Error),
    #[error("the event id must be 1 to {MAX_EVENT_ID_LEN} characters long")]
    InvalidEventId,
    /// Query parameters are invalid, each explained by name.
    #[error("invalid fields: {0:?}")]
    Invalid(FieldErrors),
    /// No stored event has this id.
    #[error("event not found")]
    UnknownEvent,
    /// The event already waits for a worker (pending, or retrying).
    #[error("the event is already queued for processing")]
    AlreadyQueued,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The ingestion could not commit the event.
    #[error(transparent)]
    Internal(BoxError),
}

/// Webhook ingestion and operations, shared by the handlers. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    secrets: Secrets,
    /// The settings (their `secrets` taken out, above).
    config: WebhooksConfig,
    /// Stores events in batches ([`ingest`]).
    ingestor: ingest::Ingestor,
    /// The queue the events' jobs go on: replays wake its worker here.
    jobs: Jobs,
    /// The handlers that process events at receipt ([`ingest`]), set by [`Webhooks::processor`]
    /// when that is on.
    receipt: Arc<OnceLock<Arc<Handlers>>>,
}

/// An event envelope as Stripe sends it: the fields ingestion reads before storing the payload
/// whole. Borrowed from the body where they can be (Stripe's ids and types hold no escapes); the
/// rest, the `data` object mostly, is checked to be JSON and skipped.
#[derive(Debug, Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    created: i64,
    #[serde(default)]
    livemode: bool,
}

/// The longest event id accepted (Stripe's are about 30 characters).
const MAX_EVENT_ID_LEN: usize = 255;

impl Webhooks {
    /// Prepares ingestion and starts its batch writer, on the current tokio runtime. Events are
    /// processed by `jobs`'s worker, once [`Webhooks::processor`] is registered with it.
    pub fn new(db: Database, config: WebhooksConfig, jobs: Jobs) -> Result<Self, SetupError> {
        let mut config = config;
        let secrets = config.secrets.take().ok_or(SetupError::InvalidConfig)?;
        let receipt = Arc::new(OnceLock::new());
        let ingestor = ingest::Ingestor::start(
            db.clone(),
            jobs.clone(),
            config.max_attempts,
            receipt.clone(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                secrets,
                config,
                ingestor,
                jobs,
                receipt,
            }),
        })
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Checks a request's `Stripe-Signature` header against its raw body.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let inner = &*self.inner;
        signature::verify(
            header,
            body,
            &inner.secrets,
            inner.config.tolerance_secs,
            crate::auth::now(),
        )
    }

    /// Stores a verified event and enqueues its processing, unless its id was seen before.
    /// Returns once the event and its job are committed.
    pub async fn ingest(&self, body: &[u8]) -> Result<Ingested, WebhookError> {
        let payload = std::str::from_utf8(body).map_err(|_| WebhookError::NotUtf8)?;
        let envelope: Envelope<'_> =
            serde_json::from_str(payload).map_err(WebhookError::InvalidEvent)?;
        if envelope.id.is_empty() || envelope.id.len() > MAX_EVENT_ID_LEN {
            return Err(WebhookError::InvalidEventId);
        }
        let event = ingest::PendingEvent {
            id: envelope.id.into_owned(),
            event_type: envelope.event_type.into_owned(),
            created: envelope.created,
            livemode: envelope.livemode,
            payload: payload.to_owned(),
        };
        self.inner
            .ingestor
            .ingest(event)
            .await
            .map_err(|error| WebhookError::Internal(error.into()))
    }

    /// The internal API key as the audit log names it, calling from `client_ip`.
    pub fn operations_api_key_actor(&self, client_ip: Option<IpAddr>) -> Actor<'_> {
        let id = &self.inner.config.operations_api_key_actor;
        Actor {
            user_id: id,
            email: &id[audit::API_KEY_PREFIX.len()..],
            client_ip,
        }
    }

    /// Whether `token` is the configured operations API key, compared in constant time.
    pub fn is_operations_api_key(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.inner
            .config
            .operations_api_key
            .as_deref()
            .is_some_and(|key| bool::from(key.as_bytes().ct_eq(token.as_bytes())))
    }

    /// A page of events, newest first.
    pub async fn logs(&self, filter: &LogFilter) -> Result<LogPage, WebhookError> {
        Ok(store::logs(&self.inner.db, filter).await?)
    }

    /// One event with its payload, attempts and replays; 404 when unknown.
    pub async fn event(&self, id: &str) -> Result<EventDetail, WebhookError> {
        store::event(&self.inner.db, id)
            .await?
            .ok_or(WebhookError::UnknownEvent)
    }

    /// Queues a stored event for processing again on behalf of `actor`, audited. 404 when
    /// unknown, 409 when already queued.
    pub async fn replay(&self, id: &str, actor: Actor<'_>) -> Result<i64, WebhookError> {
        let inner = &*self.inner;
        let replays = {
            let _turn = inner.db.turns().take().await;
            store::replay(&inner.db, id, actor, inner.config.max_attempts, now_ms()).await?
        }
        .into_result()?;
        tracing::info!(event = %id, actor = actor.user_id, replays, "event replay queued");
        inner.jobs.wake();
        Ok(replays)
    }

    /// Queues every event in `status` for processing again on behalf of `actor`, audited;
    /// returns how many.
    pub async fn replay_all(&self, status: Status, actor: Actor<'_>) -> Result<u64, WebhookError> {
        let inner = &*self.inner;
        let queued = {
            let _turn = inner.db.turns().take().await;
            let max_attempts = inner.config.max_attempts;
            store::replay_all(&inner.db, status, actor, max_attempts, now_ms()).await?
        };
        tracing::info!(%status, actor = actor.user_id, queued, "bulk replay queued");
        if queued > 0 {
            inner.jobs.wake();
        }
        Ok(queued)
    }

    /// The `webhooks.process` job kind, which processes events with `handlers`: register it
    /// with the service's jobs worker (`job_handlers.register(...)`). From then on, unless
    /// `WEBHOOKS_PROCESS_ON_RECEIPT` is off, this instance also processes the events it
    /// receives as it stores them ([`ingest`]).
    pub fn processor(&self, handlers: Handlers) -> ProcessEvent {
        let handlers = Arc::new(handlers);
        if self.inner.config.process_on_receipt {
            // Set once: a second processor (not something a service does) keeps the first's.
            let _ = self.inner.receipt.set(handlers.clone());
        }
        ProcessEvent::new(self.clone(), handlers)
    }
}

impl LogFilter {
    /// Reads the `status`, `type`, `limit` and `cursor` query parameters.
    pub fn from_query(query: &LogQuery) -> Result<Self, WebhookError> {
        let mut fields = FieldErrors::new();
        let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => {
                let status = Status::parse(text);
                if status.is_none() {
                    fields.insert("status".into(), format!("must be one of {}", Status::LIST));
                }
                status
            }
        };
        let limit = query.limit.unwrap_or(50);
        if !(1..=MAX_LOG_LIMIT).contains(&limit) {
            fields.insert("limit".into(), format!("must be 1 to {MAX_LOG_LIMIT}"));
        }
        let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(text) => {
                let cursor = store::Cursor::decode(text);
                if cursor.is_none() {
                    fields.insert(
                        "cursor".into(),
                        "is not a cursor this service issued".into(),
                    );
                }
                cursor
            }
        };
        if !fields.is_empty() {
            return Err(WebhookError::Invalid(fields));
        }
        Ok(Self {
            status,
            event_type: query.event_type.clone().filter(|t| !t.is_empty()),
            limit,
            cursor,
        })
    }
}

/// The query string of `GET /api/webhooks/logs`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only events in this status: `pending`, `retrying`, `processed`, `ignored`, `dead_letter`.
    pub status: Option<String>,
    /// Only events of this Stripe type, e.g. `customer.subscription.updated`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// How many events a page has: 1 to 200 (50 when absent).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The answer to a replay of one event: `{"status": "queued", "replays": n}`, with 202.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    #[schema(example = "queued")]
    pub status: &'static str,
    /// How many times the event has been replayed, this one included.
    pub replays: i64,
}

impl Replayed {
    pub fn queued(replays: i64) -> Self {
        Self {
            status: "queued",
            replays,
        }
    }
}

/// The query string of the bulk replay, `?status=dead_letter`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BulkReplayQuery {
    /// Must be `dead_letter`.
    pub status: Option<String>,
}

impl BulkReplayQuery {
    /// The status to replay, which must be `dead_letter` (422 otherwise): the only bulk replay,
    /// so that a typo cannot run every processed event again.
    pub fn dead_letter(&self) -> Result<Status, WebhookError> {
        if self.status.as_deref() == Some(Status::DeadLetter.as_str()) {
            Ok(Status::DeadLetter)
        } else {
            Err(WebhookError::Invalid(FieldErrors::from([(
                "status".into(),
                "must be dead_letter".into(),
            )])))
        }
    }
}

/// The answer to a bulk replay: `{"queued": n}`, with 202.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkReplayed {
    pub queued: u64,
}

/// The current time in Unix milliseconds: the unit of the attempt times, where seconds would be
/// too coarse for retries a few hundred milliseconds apart.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_queries_are_validated() {
        let query = LogQuery {
            status: Some("lost".into()),
            limit: Some(0),
            cursor: Some("garbage".into()),
            ..LogQuery::default()
        };

        let Err(WebhookError::Invalid(fields)) = LogFilter::from_query(&query) else {
            panic!("expected a validation error");
        };

        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["cursor", "limit", "status"]
        );
    }

    #[test]
    fn the_operations_key_needs_32_characters() {
        let mut env = Env::from_vars([
            ("STRIPE_WEBHOOK_SECRETS", "whsec_a"),
            ("WEBHOOKS_OPERATIONS_API_KEY", "short"),
        ]);
        WebhooksConfig::from_env(&mut env);

        let message = env.finish().unwrap_err().to_string();

        assert!(message.contains("WEBHOOKS_OPERATIONS_API_KEY"), "{message}");
    }
}
