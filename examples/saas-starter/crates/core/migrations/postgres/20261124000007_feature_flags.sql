-- Feature flags (module admin/feature-flags; see src/flags.rs). Times are Unix seconds;
-- booleans are BIGINT 0 or 1, as the `Any` driver reads them.

CREATE TABLE feature_flags (
    -- `^[a-z0-9][a-z0-9._-]{0,63}$`, checked by src/flags.rs before it is stored.
    key TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    enabled BIGINT NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    -- The share of users (by a stable hash of the flag's key and the user's id) an enabled flag
    -- is on for.
    rollout_percent BIGINT NOT NULL DEFAULT 100 CHECK (rollout_percent BETWEEN 0 AND 100),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A flag forced on or off for one user, whatever its rule says.
CREATE TABLE feature_flag_overrides (
    flag_key TEXT NOT NULL REFERENCES feature_flags (key) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    enabled BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (flag_key, user_id)
);

-- The flags of one user, for `GET /api/flags` and the customer page.
CREATE INDEX feature_flag_overrides_by_user ON feature_flag_overrides (user_id);
