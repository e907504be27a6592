-- An event processed in the transaction that stores it (processing at receipt, module
-- billing/stripe-webhooks) is written once and never rewritten by processing: its row carries
-- its body and its first attempt, where they took a row (and an index entry) each in
-- `webhook_payloads` and `webhook_attempts`. Events that go through the queue keep both there:
-- the status updates of processing rewrite the event's row, which stays small.
--
-- `payload`: the body as received when it is not in `webhook_payloads` (NULL when it is).
-- `receipt_*`: the first attempt, succeeded at receipt (NULL for the others); its number is 1,
-- later attempts (replays) are rows of `webhook_attempts` numbered from 2.

ALTER TABLE webhook_events ADD COLUMN payload TEXT;
ALTER TABLE webhook_events ADD COLUMN receipt_worker TEXT;
ALTER TABLE webhook_events ADD COLUMN receipt_started_at_ms BIGINT;
ALTER TABLE webhook_events ADD COLUMN receipt_finished_at_ms BIGINT;
