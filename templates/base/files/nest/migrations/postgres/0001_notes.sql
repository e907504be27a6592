-- The example resource: notes, each owned by one user of the shared `users` table, gone with
-- the account. Times are Unix seconds, ids UUIDs as text, as in the Rust services' tables.
CREATE TABLE notes (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A user's notes, newest first.
CREATE INDEX notes_user_id_created_at ON notes (user_id, created_at);
