//! Group commit: the events that arrive together are stored in one transaction.
//!
//! A commit waits for the database to flush its log to disk, a few milliseconds whatever the
//! transaction holds. Committing each request on its own caps ingestion at the flushes per second
//! the disk allows, times the connections committing at once. Here, requests hand their event to
//! a queue instead, and one task takes whatever is queued as a batch ([`store::ingest`]: one
//! transaction for the events, their payloads and their jobs). Each request is answered after its batch
//! commits, so an event acknowledged to Stripe is on disk, as before: the queue holds only events
//! whose request is still waiting, and a crash loses none that Stripe will not send again.
//!
//! There is no timer. The writer takes what is queued as soon as it is free, so a lone event is
//! written at once; while a batch is being written, arrivals queue up and the next batch takes
//! them all. Batches grow with the load, up to [`MAX_BATCH_EVENTS`] events and
//! [`MAX_BATCH_BYTES`] of payload, and a request waits for at most the batch in progress and its
//! own.
//!
//! On PostgreSQL, two batches may be written at once ([`POSTGRES_WRITERS`]): with the processing
//! in the transaction, a batch's statements take about as long as its commit's log flush, and a
//! lone writer would leave the database idle during one or the other; the second batch takes
//! what arrived while the first was being written. (Before processing at receipt, when a batch
//! was one statement, several writers only split the same arrivals into smaller batches that
//! cost more per event.) SQLite has one writer at a time anyway: one there.
//!
//! Processing at receipt: when this instance processes events (its `webhooks.process` kind is
//! registered, `WEBHOOKS_PROCESS_ON_RECEIPT` on), the batch's new events are processed in the
//! transaction that stores them ([`process::Received`]): their handlers run, then they are
//! stored already `processed` (or `ignored`), each row with its payload and its first attempt,
//! and no job (an event stored before makes the batch roll back and go again without it). One
//! commit, one log
//! flush, per batch for both, where storing then processing took two transactions, a job row
//! and its payload written then deleted, and a read of the events back. Should anything fail (a
//! handler's error, a deadlock with another instance's batch), the transaction rolls back as if
//! it never ran and the batch is stored again as before: `pending`, with jobs, for the queue's
//! retries. The answers still wait for the commit.
//!
//! Idempotence is unchanged: copies of one event within a batch are stored once (the first copy
//! is answered `received`, the others `duplicate`), and across batches, requests and instances
//! the unique index on the event id decides.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::now_ms;
use super::process::{Handlers, Received};
use super::store::{self, Ingested, NewEvent, ReceiptAttempt, StoredAs};
use crate::db::{Backend, Database};
use crate::error::BoxError;
use crate::jobs::Jobs;

/// The most events one transaction stores: enough that a batch amortises its commit over many
/// events, few enough that it stays a statement of modest size (5 parameters per event).
pub const MAX_BATCH_EVENTS: usize = 128;

/// The most payload bytes one transaction stores; a larger event still goes, alone.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The batches written at once on PostgreSQL (see the module's documentation).
pub const POSTGRES_WRITERS: usize = 2;

/// Requests that may wait for the writer before new ones wait for room in the queue.
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH_EVENTS;

/// An event read from a verified request, waiting to be stored.
#[derive(Debug)]
pub struct PendingEvent {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub livemode: bool,
    /// The raw body, byte for byte.
    pub payload: String,
}

/// Why an event could not be stored; the request fails (500) and Stripe delivers it again.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("cannot store the event")]
    Database(#[source] Arc<sqlx::Error>),
    #[error("the ingestion task has stopped")]
    Stopped,
}

/// The queue in front of the batch writer. Dropping it stops the writer once the queue is empty.
pub(super) struct Ingestor {
    queue: mpsc::Sender<Delivery>,
}

/// A queued event and where its request waits for the outcome.
struct Delivery {
    event: PendingEvent,
    reply: oneshot::Sender<Result<Ingested, IngestError>>,
}

impl Ingestor {
    /// Starts the writer (on the current tokio runtime). Each event's job gets `max_attempts`;
    /// this instance's jobs worker is woken after a batch queued at least one. Once `receipt`
    /// holds handlers, events are processed at receipt with them.
    pub(super) fn start(
        db: Database,
        jobs: Jobs,
        max_attempts: i64,
        receipt: Arc<OnceLock<Arc<Handlers>>>,
    ) -> Self {
        let (queue, arrivals) = mpsc::channel(QUEUE_CAPACITY);
        let writer = Writer {
            db,
            jobs,
            max_attempts,
            receipt,
            // Named like the jobs worker's loops (`<process id>-<instance>/<loop>`), so that
            // an attempt's worker tells the instance either way.
            worker: format!(
                "{}-{}/receipt",
                std::process::id(),
                uuid::Uuid::now_v7().simple()
            ),
        };
        let writers = match writer.db.backend() {
            Backend::Postgres => POSTGRES_WRITERS,
            Backend::Sqlite => 1,
        };
        tokio::spawn(write_batches(Arc::new(writer), arrivals, writers));
        Self { queue }
    }

    /// Stores `event` with its job, in the next batch, and waits until that batch is committed.
    pub(super) async fn ingest(&self, event: PendingEvent) -> Result<Ingested, IngestError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Delivery { event, reply })
            .await
            .map_err(|_| IngestError::Stopped)?;
        outcome.await.unwrap_or(Err(IngestError::Stopped))
    }
}

/// The writer: forms a batch of what is queued as soon as one of its `writers` is free, writes
/// it, and again, until every [`Ingestor`] is gone and the queue is empty.
async fn write_batches(
    writer: Arc<Writer>,
    mut arrivals: mpsc::Receiver<Delivery>,
    writers: usize,
) {
    let free = Arc::new(Semaphore::new(writers));
    // A delivery taken from the queue that did not fit in the previous batch.
    let mut left_over = None;
    loop {
        let first = match left_over.take() {
            Some(delivery) => delivery,
            None => match arrivals.recv().await {
                Some(delivery) => delivery,
                None => return,
            },
        };
        // Once a writer is free, the batch takes whatever arrived while none was.
        let Ok(permit) = free.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Batch::new(first);
        while let Ok(delivery) = arrivals.try_recv() {
            if batch.has_room_for(&delivery.event) {
                batch.push(delivery);
            } else {
                left_over = Some(delivery);
                break;
            }
        }
        // A task of its own, so that a panic loses this batch (its requests fail) rather than
        // the writer; the writer is free again when it ends, however.
        let writer = writer.clone();
        tokio::spawn(async move {
            let written = tokio::spawn(async move { batch.write(&writer).await });
            if let Err(error) = written.await {
                tracing::error!(%error, "a batch of webhook events failed to be written");
            }
            drop(permit);
        });
    }
}

/// What the writer stores with.
struct Writer {
    db: Database,
    jobs: Jobs,
    max_attempts: i64,
    /// The handlers that process events at receipt, once registered (and if enabled).
    receipt: Arc<OnceLock<Arc<Handlers>>>,
    /// The attempts at receipt's worker.
    worker: String,
}

/// Deliveries stored in one transaction.
struct Batch {
    deliveries: Vec<Delivery>,
    payload_bytes: usize,
}

impl Batch {
    fn new(first: Delivery) -> Self {
        let payload_bytes = first.event.payload.len();
        Self {
            deliveries: vec![first],
            payload_bytes,
        }
    }

    fn has_room_for(&self, event: &PendingEvent) -> bool {
        self.deliveries.len() < MAX_BATCH_EVENTS
            && self.payload_bytes + event.payload.len() <= MAX_BATCH_BYTES
    }

    fn push(&mut self, delivery: Delivery) {
        self.payload_bytes += delivery.event.payload.len();
        self.deliveries.push(delivery);
    }

    /// Stores the batch and answers every delivery.
    async fn write(self, writer: &Writer) {
        let events: Vec<&PendingEvent> = self.deliveries.iter().map(|d| &d.event).collect();
        let outcomes = match store_events(writer, &events).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            // The database refused the statement: perhaps because of one event in it. Each is
            // tried alone, so that such an event fails only its own request.
            Err(sqlx::Error::Database(_)) if events.len() > 1 => {
                let mut outcomes = Vec::with_capacity(events.len());
                for event in &events {
                    outcomes.push(match store_events(writer, &[event]).await {
                        Ok(mut outcome) => Ok(outcome.remove(0)),
                        Err(error) => Err(IngestError::Database(Arc::new(error))),
                    });
                }
                outcomes
            }
            Err(error) => {
                let error = IngestError::Database(Arc::new(error));
                vec![Err(error); events.len()]
            }
        };
        for (delivery, outcome) in self.deliveries.into_iter().zip(outcomes) {
            let event = &delivery.event;
            match outcome {
                Ok(Ingested::Stored) => {
                    tracing::info!(event = %event.id, r#type = %event.event_type, "event received");
                }
                Ok(Ingested::Duplicate) => {
                    tracing::info!(event = %event.id, "duplicate event ignored");
                }
                // Logged with its cause when the request fails.
                Err(_) => {}
            }
            // Fails only when the request is gone (its client hung up): nobody to tell.
            let _ = delivery.reply.send(outcome);
        }
    }
}

/// Stores `events` in one transaction; the outcome of each, in order.
async fn store_events(writer: &Writer, events: &[&PendingEvent]) -> sqlx::Result<Vec<Ingested>> {
    let ids: Vec<&str> = events.iter().map(|event| event.id.as_str()).collect();
    let firsts = first_copies(&ids);
    let distinct: Vec<NewEvent<'_>> = events
        .iter()
        .zip(&firsts)
        .filter(|&(_, &first)| first)
        .map(|(event, _)| NewEvent {
            id: &event.id,
            event_type: &event.event_type,
            created: event.created,
            livemode: event.livemode,
            payload: &event.payload,
        })
        .collect();
    let db = &writer.db;
    let _turn = db.turns().take().await;
    let processed = match writer.receipt.get() {
        Some(handlers) => match store_processed(writer, handlers, &distinct).await {
            Ok(stored) => Some(stored),
            Err(error) => {
                tracing::info!(%error, events = distinct.len(), "processing at receipt failed; the events go through the queue");
                None
            }
        },
        None => None,
    };
    let stored = match processed {
        Some(stored) => stored,
        None => {
            let stored = store::ingest(db, &distinct, writer.max_attempts, now_ms()).await?;
            if !stored.is_empty() {
                writer.jobs.wake();
            }
            stored
        }
    };
    Ok(outcomes(&ids, &firsts, &stored))
}

/// How many times [`store_processed`] tries a batch again without the events another
/// transaction stored meanwhile, before the batch goes through the queue.
const RECEIPT_TRIES: usize = 3;

/// Stores `events` and processes the new ones in one transaction, with `handlers`; the ids it
/// stored. Nothing is written if it fails. The caller holds the database's turn.
///
/// The handlers run first, then the events are inserted with their first attempt, whose end
/// the handlers' statements fixed: each event's row is written once, complete. An event stored
/// before (a copy delivered again, or stored meanwhile by another batch or instance) must not
/// be handled again: the insert skips it, the transaction is rolled back, and the batch is
/// tried again without the events found stored. Copies arriving at once share a batch and
/// never get here (`first_copies`).
async fn store_processed(
    writer: &Writer,
    handlers: &Handlers,
    events: &[NewEvent<'_>],
) -> Result<HashSet<String>, BoxError> {
    let mut events = events.to_vec();
    for _ in 0..RECEIPT_TRIES {
        if events.is_empty() {
            break;
        }
        if let Some(stored) = process_at_receipt(writer, handlers, &events).await? {
            return Ok(stored);
        }
        let ids: Vec<&str> = events.iter().map(|event| event.id).collect();
        let before: HashSet<String> =
            store::stored_already(&mut *writer.db.pool().acquire().await?, &ids)
                .await?
                .into_iter()
                .collect();
        events.retain(|event| !before.contains(event.id));
    }
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    Err("events of the batch kept being stored by other transactions".into())
}

/// One try of [`store_processed`]: the ids stored, or `None` (and nothing written) when one of
/// `events` was stored before.
async fn process_at_receipt(
    writer: &Writer,
    handlers: &Handlers,
    events: &[NewEvent<'_>],
) -> Result<Option<HashSet<String>>, BoxError> {
    let received = Received::prepare(handlers, events);
    let started_at_ms = now_ms();
    let mut tx = writer.db.begin_write().await?;
    received.apply(&mut tx).await?;
    let receipt = ReceiptAttempt {
        statuses: received.statuses(),
        worker: &writer.worker,
        started_at_ms,
        finished_at_ms: now_ms(),
    };
    let stored = store::insert_events(
        &mut tx,
        events,
        &StoredAs::Processed(receipt),
        started_at_ms,
    )
    .await?;
    if stored.len() < events.len() {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    for (event, status) in events.iter().zip(received.statuses()) {
        tracing::info!(event = %event.id, %status, "event processed");
    }
    Ok(Some(stored.into_iter().collect()))
}

/// For each id, whether it is the first with its value: the copy that is stored.
fn first_copies(ids: &[&str]) -> Vec<bool> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().map(|id| seen.insert(*id)).collect()
}

/// Each event's outcome, given the ids the transaction stored: only the first copy of a stored
/// id was `Stored`; later copies, and ids stored before, are duplicates.
fn outcomes(ids: &[&str], firsts: &[bool], stored: &HashSet<String>) -> Vec<Ingested> {
    ids.iter()
        .zip(firsts)
        .map(|(id, &first)| {
            if first && stored.contains(*id) {
                Ingested::Stored
            } else {
                Ingested::Duplicate
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, payload_bytes: usize) -> Delivery {
        Delivery {
            event: PendingEvent {
                id: id.into(),
                event_type: "ping".into(),
                created: 0,
                livemode: false,
                payload: "x".repeat(payload_bytes),
            },
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn the_first_copy_of_each_id_is_the_one_stored() {
        let ids = ["a", "b", "a", "c", "b"];
        let firsts = first_copies(&ids);
        assert_eq!(firsts, [true, true, false, true, false]);

        // `c` was stored before this batch: the database skipped it.
        let stored = HashSet::from(["a".to_owned(), "b".to_owned()]);
        use Ingested::{Duplicate, Stored};
        assert_eq!(
            outcomes(&ids, &firsts, &stored),
            [Stored, Stored, Duplicate, Duplicate, Duplicate]
        );
    }

    #[test]
    fn batches_are_bounded_by_events_and_bytes() {
        let mut batch = Batch::new(delivery("evt_0", 10));
        for n in 1..MAX_BATCH_EVENTS {
            assert!(batch.has_room_for(&delivery("evt", 10).event));
            batch.push(delivery(&format!("evt_{n}"), 10));
        }
        assert!(!batch.has_room_for(&delivery("evt", 0).event));

        let batch = Batch::new(delivery("evt_0", MAX_BATCH_BYTES / 2));
        assert!(batch.has_room_for(&delivery("evt", MAX_BATCH_BYTES / 2).event));
        assert!(!batch.has_room_for(&delivery("evt", MAX_BATCH_BYTES / 2 + 1).event));
    }

    #[test]
    fn an_event_larger_than_a_batch_goes_alone() {
        let batch = Batch::new(delivery("big", 2 * MAX_BATCH_BYTES));
        assert_eq!(batch.deliveries.len(), 1);
        assert!(!batch.has_room_for(&delivery("small", 1).event));
    }
}
