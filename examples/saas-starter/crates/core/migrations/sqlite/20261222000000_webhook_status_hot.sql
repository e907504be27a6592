-- The index on `status` becomes a partial index of the failing events (`retrying`,
-- `dead_letter`), which always carry their `last_error`: on PostgreSQL, so that marking an
-- event processed is a HOT update (see the PostgreSQL migration); the same index here, for the
-- same queries.

DROP INDEX webhook_events_by_status;

CREATE INDEX webhook_events_failing ON webhook_events (received_at) WHERE last_error IS NOT NULL;
