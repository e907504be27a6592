-- The subscription's status and period end get a clock of their own (module
-- billing/subscriptions; see src/billing.rs). Invoice events carry only part of a subscription's
-- state: they may move its status and period end, and must not make an older
-- `customer.subscription.*` event, which carries the whole object, look stale for the fields
-- that only it decides (price, quantity, cancellation). The same SQL for SQLite and PostgreSQL.

-- The event the status and period end come from: a subscription event or an invoice event.
ALTER TABLE subscriptions ADD COLUMN status_event_id TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN status_event_created BIGINT NOT NULL DEFAULT 0;

UPDATE subscriptions SET status_event_id = state_event_id,
    status_event_created = state_event_created;
