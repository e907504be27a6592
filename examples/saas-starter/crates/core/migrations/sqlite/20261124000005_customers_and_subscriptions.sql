-- Billing state kept from Stripe's events (module billing/subscriptions; see src/billing.rs).
-- Times are Unix seconds; amounts are in the currency's smallest unit; flags are 0 or 1.

-- A Stripe customer and the user it belongs to.
CREATE TABLE customers (
    stripe_customer_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    email TEXT,
    livemode BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX customers_by_user ON customers (user_id);

CREATE TABLE subscriptions (
    stripe_subscription_id TEXT PRIMARY KEY,
    -- Not a foreign key: a subscription's events may arrive before its checkout's.
    stripe_customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    price_id TEXT,
    product_id TEXT,
    unit_amount BIGINT,
    currency TEXT,
    billing_interval TEXT,
    interval_count BIGINT,
    quantity BIGINT NOT NULL,
    current_period_end BIGINT,
    cancel_at_period_end BIGINT NOT NULL,
    canceled_at BIGINT,
    livemode BIGINT NOT NULL,
    -- The event this state comes from: an older event must not overwrite it.
    state_event_id TEXT NOT NULL,
    state_event_created BIGINT NOT NULL,
    -- How far along its life the status is (0 incomplete, 1 running, 2 ended): the tie-breaker
    -- between events of the same second.
    state_rank BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX subscriptions_by_customer ON subscriptions (stripe_customer_id);
