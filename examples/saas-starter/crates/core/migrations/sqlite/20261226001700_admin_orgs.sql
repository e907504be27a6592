-- SQLite has no row-level security (see the PostgreSQL version of this migration and
-- docs/orgs.md). This statement keeps the migration's version in step on both backends.
SELECT 1;
