-- The audit log (module audit; see src/audit.rs). Times are Unix seconds. `IF NOT EXISTS`
-- throughout: admin/core's migration creates the same table, and ran first where it is
-- installed.

-- Every audited action, appended and never changed: the code has no UPDATE or DELETE for it,
-- and the triggers below refuse them from anywhere else too.
CREATE TABLE IF NOT EXISTS audit_log (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    -- Who acted: a user's id and their email as it was then (no foreign key: the record
    -- outlives the account), or `api-key:<name>` and the name for an internal API key.
    actor_id TEXT NOT NULL,
    actor_email TEXT NOT NULL,
    -- What was done, e.g. `customer.disable` or `webhook.replay`.
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    reason TEXT,
    client_ip TEXT,
    -- Anything else worth keeping about the action, as a JSON object.
    details TEXT
);

CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (created_at, id);
CREATE INDEX IF NOT EXISTS audit_log_by_target ON audit_log (target_id, created_at);
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor_id, created_at);

CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
