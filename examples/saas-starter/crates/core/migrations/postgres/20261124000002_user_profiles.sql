-- The profile fields users edit through /api/users/profile (the `users` module).
ALTER TABLE users ADD COLUMN display_name TEXT;
ALTER TABLE users ADD COLUMN timezone TEXT;
ALTER TABLE users ADD COLUMN locale TEXT;
