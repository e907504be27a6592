-- Verified addresses, and the tokens of the account emails (see src/auth/tokens.rs): address
-- verification, password reset, email change. Times are Unix seconds.

-- Set when the address was proven to be the user's (a verification or email change link, or a
-- password reset through it); NULL for accounts from before this migration too.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;

CREATE TABLE account_tokens (
    -- The SHA-256 of the token (base64url): the token itself is only in the email.
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'change_email')),
    -- The address the token was sent to: the one it verifies, resets the password through, or
    -- changes the account's to.
    email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE INDEX account_tokens_user_id ON account_tokens (user_id, purpose);
