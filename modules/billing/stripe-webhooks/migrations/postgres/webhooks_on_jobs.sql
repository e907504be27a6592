-- Webhook processing moves onto the job queue (module jobs): an event waiting for a worker is a
-- `webhooks.process` job whose payload is the event id (as JSON) and whose unique key is
-- `webhook:<event id>`. The body moves to a table of its own, written once, so that the status
-- updates of processing rewrite the event's row without it.

CREATE TABLE webhook_payloads (
    -- No foreign key: the payload is inserted in the event's statement and never deleted
    -- apart from it, and a key would cost a lookup on every insert.
    event_id TEXT PRIMARY KEY,
    -- The body as received, byte for byte.
    payload TEXT NOT NULL
);

INSERT INTO webhook_payloads (event_id, payload) SELECT id, payload FROM webhook_events;

ALTER TABLE webhook_events DROP COLUMN payload;

-- The old worker's jobs go onto the queue, due when they were (a job leased by the old version's
-- worker, which is gone, when its lease ends), with their attempts counted. 8 is the default of
-- WEBHOOKS_MAX_ATTEMPTS.
WITH moved AS (
    INSERT INTO jobs (kind, state, attempts, max_attempts, run_at_ms, unique_key, created_at_ms)
    SELECT 'webhooks.process', 'queued', attempt, 8, run_at_ms, 'webhook:' || event_id, run_at_ms
    FROM webhook_jobs
    RETURNING id, unique_key)
INSERT INTO job_payloads (job_id, payload)
SELECT id, to_json(substr(unique_key, 9))::text FROM moved;

DROP TABLE webhook_jobs;
