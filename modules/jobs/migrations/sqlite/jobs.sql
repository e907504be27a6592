-- The durable job queue (module jobs; see src/jobs.rs). Times are Unix milliseconds. The same
-- tables as on PostgreSQL (see its migration for why the indexes leave out `state`), without
-- the notification trigger: SQLite has no notifications, workers poll.

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'dead')),
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT,
    abandoned BIGINT NOT NULL DEFAULT 0,
    unique_key TEXT,
    last_error TEXT,
    created_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT
);

CREATE INDEX jobs_open ON jobs (run_at_ms) WHERE finished_at_ms IS NULL;

CREATE UNIQUE INDEX jobs_unique_open ON jobs (unique_key)
    WHERE finished_at_ms IS NULL AND unique_key IS NOT NULL;

CREATE INDEX jobs_finished ON jobs (finished_at_ms) WHERE finished_at_ms IS NOT NULL;

CREATE TABLE job_payloads (
    job_id BIGINT PRIMARY KEY,
    payload TEXT NOT NULL
);

CREATE TABLE job_errors (
    job_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    worker TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE job_schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    next_at_ms BIGINT NOT NULL
);
