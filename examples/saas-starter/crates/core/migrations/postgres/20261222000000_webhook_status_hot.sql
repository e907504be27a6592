-- Processing marks each event processed in place (module billing/stripe-webhooks): a HOT update
-- on PostgreSQL, which writes no index entry, when no index covers a column the update changes
-- and the row's page has room for its new version.
--
-- The index on `status` (every transition changes it) becomes a partial index of the failing
-- events, keyed on what the success of a first attempt does not change: failing events
-- (`retrying`, `dead_letter`) always carry their `last_error`, which a success finds NULL and
-- leaves NULL. Rows are inserted into pages half full, leaving each the room for its update.

DROP INDEX webhook_events_by_status;

CREATE INDEX webhook_events_failing ON webhook_events (received_at) WHERE last_error IS NOT NULL;

ALTER TABLE webhook_events SET (fillfactor = 50);
