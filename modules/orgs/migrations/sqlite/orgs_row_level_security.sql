-- SQLite has no row-level security: the application alone enforces tenancy there (see the
-- PostgreSQL version of this migration and docs/orgs.md). This statement keeps the migration's
-- version in step on both backends.
SELECT 1;
