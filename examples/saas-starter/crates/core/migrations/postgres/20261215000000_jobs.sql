-- The durable job queue (module jobs; see src/jobs.rs). Times are Unix milliseconds.
--
-- Built so that PostgreSQL can update a job in place (a HOT update, no new index entries) when a
-- worker claims it: no index covers `state`, `attempts` or the lease columns, which the claim
-- rewrites. Finishing a job sets `finished_at_ms`, which takes it out of the partial indexes
-- below; the payload, in a table of its own, is written once and never rewritten.

CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The handler's name, e.g. `email.send`.
    kind TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'dead')),
    -- Attempts started, the running one included: with `lease_owner`, the lease's fencing token.
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    -- When the job is due (the next attempt's time after a failure).
    run_at_ms BIGINT NOT NULL,
    -- The worker that holds (or last held) the job, and until when; an expired lease makes a
    -- running job claimable again.
    lease_owner TEXT,
    lease_until_ms BIGINT,
    -- 1 when the claim found the previous attempt's lease expired (its worker died).
    abandoned BIGINT NOT NULL DEFAULT 0,
    -- At most one unfinished job has a given key.
    unique_key TEXT,
    last_error TEXT,
    created_at_ms BIGINT NOT NULL,
    -- When the job succeeded or died: set once, NULL while it is queued or running.
    finished_at_ms BIGINT
) WITH (fillfactor = 70);

-- The claimable jobs: unfinished, in due order. A claim scans it from the oldest `run_at_ms`.
CREATE INDEX jobs_open ON jobs (run_at_ms) WHERE finished_at_ms IS NULL;

-- "No duplicate while one is pending": the key is free again once its job finished.
CREATE UNIQUE INDEX jobs_unique_open ON jobs (unique_key)
    WHERE finished_at_ms IS NULL AND unique_key IS NOT NULL;

-- The purge of old finished jobs, oldest first.
CREATE INDEX jobs_finished ON jobs (finished_at_ms) WHERE finished_at_ms IS NOT NULL;

-- The payload as enqueued (JSON), written once. No foreign key: the row is inserted in the same
-- statement as its job and deleted with it, and a key would cost a lookup on every insert.
CREATE TABLE job_payloads (
    job_id BIGINT PRIMARY KEY,
    payload TEXT NOT NULL
);

-- Each failed or abandoned attempt, for operators. Successful attempts leave no row.
CREATE TABLE job_errors (
    job_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    worker TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

-- Recurring jobs: the next time each schedule fires. An instance enqueues a schedule's job only
-- by moving `next_at_ms` on from the value it read, in the job's transaction: of several
-- instances, one wins each period.
CREATE TABLE job_schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    next_at_ms BIGINT NOT NULL
);

-- Wakes the workers listening on channel `jobs` when jobs are inserted: delivered at commit, so
-- never for a job whose transaction rolled back. One notification per statement, and PostgreSQL
-- folds identical ones of a transaction into one.
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobs', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify();
