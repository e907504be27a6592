-- The orgs module: a note may belong to an organization, the active one of the token that wrote
-- it, and goes with it; `user_id` stays its author. NULL: the author's own note, written with a
-- token switched to no organization (and every note written before the module).
ALTER TABLE notes ADD COLUMN org_id TEXT REFERENCES organizations (id) ON DELETE CASCADE;

-- An organization's notes, newest first.
CREATE INDEX notes_org_id_created_at ON notes (org_id, created_at);
