-- Webhook processing moves onto the job queue (module jobs): an event waiting for a worker is a
-- `webhooks.process` job whose payload is the event id (as JSON) and whose unique key is
-- `webhook:<event id>`. The body moves to a table of its own, written once (see the PostgreSQL
-- migration).

CREATE TABLE webhook_payloads (
    event_id TEXT PRIMARY KEY,
    -- The body as received, byte for byte.
    payload TEXT NOT NULL
);

INSERT INTO webhook_payloads (event_id, payload) SELECT id, payload FROM webhook_events;

ALTER TABLE webhook_events DROP COLUMN payload;

-- The old worker's jobs go onto the queue, due when they were, with their attempts counted. 8 is
-- the default of WEBHOOKS_MAX_ATTEMPTS. SQLite has no data-modifying CTE: the payloads are found
-- again by their key.
INSERT INTO jobs (kind, state, attempts, max_attempts, run_at_ms, unique_key, created_at_ms)
SELECT 'webhooks.process', 'queued', attempt, 8, run_at_ms, 'webhook:' || event_id, run_at_ms
FROM webhook_jobs;

INSERT INTO job_payloads (job_id, payload)
SELECT jobs.id, json_quote(webhook_jobs.event_id)
FROM webhook_jobs JOIN jobs ON jobs.unique_key = 'webhook:' || webhook_jobs.event_id
    AND jobs.finished_at_ms IS NULL;

DROP TABLE webhook_jobs;
