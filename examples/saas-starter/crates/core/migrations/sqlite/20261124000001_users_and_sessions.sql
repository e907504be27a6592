-- Accounts, their sessions, and the refresh tokens of each session (see src/auth.rs).
-- Times are Unix seconds; ids are UUIDs (v7) as text; token hashes are base64url SHA-256.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- Trimmed and lower-cased before it is stored, so that the unique index is case-insensitive.
    email TEXT NOT NULL UNIQUE,
    -- An argon2id PHC string.
    password_hash TEXT NOT NULL,
    full_name TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- Set when the account is disabled: it can no longer sign in, and its sessions stop working.
    disabled_at BIGINT
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The SHA-256 of the cookie's token: a leaked table does not let anyone sign in.
    token_hash TEXT NOT NULL UNIQUE,
    user_agent TEXT,
    created_at BIGINT NOT NULL,
    -- Updated at most once a minute while the session is used; drives the idle timeout.
    last_seen_at BIGINT NOT NULL,
    -- The absolute timeout: the session ends then, used or not.
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX sessions_user_id ON sessions (user_id);

-- Every refresh token of a session: the session is the token family, so revoking the session
-- revokes every refresh token issued in it.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    -- Set when the token is exchanged; presenting it again revokes the session.
    used_at BIGINT
);

CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
