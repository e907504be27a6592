-- The membership check of every org-scoped request in one round trip (src/orgs.rs, `membership`):
-- the organization `org` as user `member` sees it, with their role, or no row when they are not a
-- member.
--
-- Row-level security on `memberships` (migration `orgs_row_level_security`) shows a transaction
-- only the rows of the user it names with `set_config('app.user_id', ..., true)`. Done from the
-- application that is a transaction of four round trips (BEGIN, set_config, the lookup, COMMIT).
-- This function does the same in one statement, in this order, which PL/pgSQL guarantees: each
-- statement of its body runs after the one before, so the setting is in place before the query's
-- plan is executed and its policy compares rows with it (within a single SQL statement, a
-- `set_config` in a subquery beside the policy's `current_setting` has no order the planner
-- promises). `true` ends the setting with the transaction: called on its own, the function runs
-- in the statement's implicit transaction, which ends with it, so the pooled connection carries
-- no user over to the next request.
--
-- SECURITY INVOKER (the default): the query runs as the caller, under the policies, and the
-- function opens nothing a transaction naming the user could not see. Functions are executable
-- by PUBLIC, so the services' role needs no grant (docs/orgs.md).
CREATE FUNCTION org_membership(org TEXT, member TEXT)
RETURNS TABLE (role TEXT, id TEXT, name TEXT, slug TEXT, kind TEXT, created_at BIGINT)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM set_config('app.user_id', member, true);
    RETURN QUERY
        SELECT m.role, o.id, o.name, o.slug, o.kind, o.created_at
        FROM memberships m JOIN organizations o ON o.id = m.org_id
        WHERE m.org_id = org AND m.user_id = member;
END
$$;
