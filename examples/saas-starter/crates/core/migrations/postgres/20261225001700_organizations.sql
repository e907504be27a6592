-- Organizations (the tenants), who belongs to each and with which role, and the invitations to
-- join one (see src/orgs.rs and docs/orgs.md). Times are Unix seconds; ids are UUIDs (v7) as text.
--
-- Every table a tenant owns has `org_id` as the first column of its primary key and of its
-- indexes, and tables that point at a tenant's rows do so by a composite key that includes
-- `org_id` (`(org_id, user_id)`, `(org_id, id)`): a row of one organization cannot reference a
-- row of another, whatever the application does.

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- Lower-case letters, digits and dashes, unique across the product.
    slug TEXT NOT NULL UNIQUE,
    -- `personal`: the one registration made for a new account (ORGS_PERSONAL_ORGANIZATION).
    kind TEXT NOT NULL DEFAULT 'team' CHECK (kind IN ('personal', 'team')),
    created_at BIGINT NOT NULL,
    -- Also bumped by every change of the organization's members: that write takes the row's lock,
    -- which serializes the changes that must keep an owner (see src/orgs.rs, `lock`).
    updated_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

-- "My organizations": the one lookup that crosses tenants by design (which tenants a user is in).
CREATE INDEX memberships_user_id ON memberships (user_id, org_id);

CREATE TABLE invitations (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    -- Normalized as account emails are (trimmed, lower-cased).
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    -- The SHA-256 (base64url) of the token in the email; NULL until the email job mints it, so the
    -- token itself is stored nowhere but in the message.
    token_hash TEXT UNIQUE,
    -- The user id of whoever invited; kept after they leave (history, not a reference).
    invited_by TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'accepted', 'revoked', 'expired')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    accepted_by TEXT,
    accepted_at BIGINT,
    PRIMARY KEY (org_id, id)
);

-- One pending invitation per address and organization: inviting again replaces it.
CREATE UNIQUE INDEX invitations_pending_email ON invitations (org_id, email) WHERE state = 'pending';
