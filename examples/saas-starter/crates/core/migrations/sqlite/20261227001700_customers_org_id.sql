-- The organization a Stripe customer belongs to (module billing/subscriptions; see src/billing.rs).
-- NULL while billing is per account: without module `orgs`, and for customers linked before it.
-- Module `billing/orgs` fills it (its migration maps existing customers to their account's
-- personal organization; its webhook handlers link new ones). Not a foreign key: the table of
-- organizations exists only with module `orgs`, and an organization's deletion leaves its Stripe
-- customer, whose subscription Stripe still bills, to be cancelled or moved in Stripe
-- (docs/orgs.md).
ALTER TABLE customers ADD COLUMN org_id TEXT;

-- The organization's customers, tenant first, as the tenant-owned tables' indexes are.
CREATE INDEX customers_by_org ON customers (org_id, stripe_customer_id);
