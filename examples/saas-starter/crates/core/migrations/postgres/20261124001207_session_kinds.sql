-- Whom each session is for (see src/auth/session.rs): `customer` for the api's sign-ins and
-- impersonations, `staff` for the admin panel's and staff tokens. Each service looks sessions up
-- in its own kind only, so a customer-facing credential of a staff account is never taken for a
-- staff one. Sessions from before this migration are customer-facing: staff sign in again.
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'customer'
    CHECK (kind IN ('customer', 'staff'));
