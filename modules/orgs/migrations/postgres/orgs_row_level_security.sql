-- Row-level security on the tables organizations own, as defence in depth behind the application's
-- checks (docs/orgs.md): a transaction sees, and may write, only the rows of the scope it named
-- with `set_config(..., true)` (src/orgs.rs, `Scope`): one organization (`app.org_id`), one user's
-- memberships (`app.user_id`), or one invitation by its token hash (`app.invitation`). A query
-- that names no scope sees no rows.
--
-- FORCE applies the policies to the tables' owner too. Superusers and roles with BYPASSRLS are
-- never subject to them: the services must connect as a role that is neither (see docs/orgs.md for
-- the setup: the owner runs the migrations, the services connect as another role).
--
-- `current_setting(name, true)` is NULL (or '') when the setting is absent: it equals no row.

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY memberships_scope ON memberships
    USING (
        org_id = current_setting('app.org_id', true)
        OR user_id = current_setting('app.user_id', true)
    );

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY invitations_scope ON invitations
    USING (
        org_id = current_setting('app.org_id', true)
        OR token_hash = current_setting('app.invitation', true)
    );
