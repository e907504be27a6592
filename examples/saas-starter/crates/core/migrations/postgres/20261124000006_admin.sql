-- The back office (module admin/core; see src/admin.rs). Times are Unix seconds.

-- Every staff action, appended and never changed: the code has no UPDATE or DELETE for it, and
-- the triggers below refuse them from anywhere else too.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    -- Who acted; the email as it was then (no foreign key: the record outlives the account).
    actor_id TEXT NOT NULL,
    actor_email TEXT NOT NULL,
    -- What was done, e.g. `customer.disable` (see src/admin/audit.rs).
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    reason TEXT,
    client_ip TEXT,
    -- Anything else worth keeping about the action, as a JSON object.
    details TEXT
);

CREATE INDEX audit_log_by_time ON audit_log (created_at, id);
CREATE INDEX audit_log_by_target ON audit_log (target_id, created_at);
CREATE INDEX audit_log_by_actor ON audit_log (actor_id, created_at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- A staff member acting as a customer: the session it runs in ends at `expires_at` or when it
-- is ended, whichever comes first.
CREATE TABLE impersonations (
    id TEXT PRIMARY KEY,
    staff_id TEXT NOT NULL REFERENCES users (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    session_id TEXT NOT NULL REFERENCES sessions (id),
    reason TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    ended_by TEXT
);

CREATE INDEX impersonations_by_staff ON impersonations (staff_id, ended_at);
