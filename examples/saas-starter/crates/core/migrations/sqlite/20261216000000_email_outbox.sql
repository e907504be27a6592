-- The development outbox (module email; see src/email/outbox.rs): the messages a service without
-- SMTP_URL would have sent, for the admin panel's Outbox page. Times are Unix seconds.
CREATE TABLE email_outbox (
    -- The message's id (its Message-ID without the domain): a job that runs again after a crash
    -- finds its message already there instead of adding it twice.
    id TEXT PRIMARY KEY,
    to_address TEXT NOT NULL,
    from_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX email_outbox_created_at ON email_outbox (created_at);
