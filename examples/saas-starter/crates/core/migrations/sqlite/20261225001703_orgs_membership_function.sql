-- PostgreSQL only: the membership check's function, one round trip under row-level security (see
-- the PostgreSQL version of this migration). On SQLite the check is one join on the calling
-- thread (src/orgs.rs, `membership`). This statement keeps the migration's version in step on
-- both backends.
SELECT 1;
