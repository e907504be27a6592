-- Stripe webhook events, their processing jobs, attempts and replays (module billing/stripe-webhooks).
-- Times ending in _ms are Unix milliseconds; other times are Unix seconds.

CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    created BIGINT NOT NULL,
    livemode BIGINT NOT NULL,
    -- The body as received, byte for byte.
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'retrying', 'processed', 'ignored', 'dead_letter')),
    attempts BIGINT NOT NULL DEFAULT 0,
    replays BIGINT NOT NULL DEFAULT 0,
    processed_at BIGINT,
    last_error TEXT
);

-- The operations log, newest first, and the failing events per status.
CREATE INDEX webhook_events_newest ON webhook_events (received_at DESC, id DESC);
CREATE INDEX webhook_events_by_status ON webhook_events (status, received_at);

-- One row per event waiting for a worker. A leased job's run_at_ms is its lease's end.
CREATE TABLE webhook_jobs (
    event_id TEXT PRIMARY KEY REFERENCES webhook_events (id),
    run_at_ms BIGINT NOT NULL,
    -- Attempts since the job was queued, the running one included.
    attempt BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    -- 1 when the job was claimed while a lease on it had expired.
    abandoned BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX webhook_jobs_due ON webhook_jobs (run_at_ms);

CREATE TABLE webhook_attempts (
    event_id TEXT NOT NULL REFERENCES webhook_events (id),
    -- Counts every attempt of the event, across replays.
    number BIGINT NOT NULL,
    worker TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'abandoned')),
    error TEXT,
    PRIMARY KEY (event_id, number)
);

CREATE TABLE webhook_replays (
    event_id TEXT NOT NULL REFERENCES webhook_events (id),
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL
);

CREATE INDEX webhook_replays_by_event ON webhook_replays (event_id);
