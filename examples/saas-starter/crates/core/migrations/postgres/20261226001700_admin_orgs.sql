-- The back office's list of organizations counts the members of many organizations at once,
-- which the `memberships_scope` policy (orgs_row_level_security) allows one organization or one
-- user at a time. This policy lets a transaction that names the staff scope
-- (`set_config('app.staff', 'on', true)`, src/orgs.rs `Scope::Staff`) read every membership,
-- and nothing more: policies are permissive (OR'ed), and this one is `FOR SELECT`, so writes
-- still need the organization named. The api never names this scope (docs/orgs.md).
CREATE POLICY memberships_staff_read ON memberships FOR SELECT
    USING (current_setting('app.staff', true) = 'on');
