-- Feature flags targeting organizations (module admin/feature-flags; see src/flags.rs and
-- docs/feature-flags.md): what a flag's rollout splits, and overrides per organization.

-- `user`: the rollout hashes the user's id; `org`: the id of the organization the request is
-- for (every member of an organization gets the same answer; off without an organization).
ALTER TABLE feature_flags ADD COLUMN rollout_by TEXT NOT NULL DEFAULT 'user'
    CHECK (rollout_by IN ('user', 'org'));

-- A flag forced on or off for the members of one organization, in requests for it. `org_id` is
-- not a foreign key: the module does not require the orgs module (without it no request names
-- an organization, and these rows decide nothing). An organization's ids are never reused.
CREATE TABLE feature_flag_org_overrides (
    flag_key TEXT NOT NULL REFERENCES feature_flags (key) ON DELETE CASCADE,
    org_id TEXT NOT NULL,
    enabled BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (flag_key, org_id)
);
