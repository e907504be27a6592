-- Billing per organization (module billing/orgs; see src/org_billing.rs): the customers linked
-- to an account before, or without, organizations now belong to that account's personal
-- organization, which stands for a single user. An account without one (created with
-- ORGS_PERSONAL_ORGANIZATION=false, or before module `orgs`) keeps its customers per account
-- (`org_id` NULL), and `GET /api/billing/subscription` still finds them by account.
UPDATE customers SET org_id = (
    SELECT o.id FROM memberships m JOIN organizations o ON o.id = m.org_id
    WHERE m.user_id = customers.user_id AND m.role = 'owner' AND o.kind = 'personal'
    ORDER BY o.created_at, o.id LIMIT 1
)
WHERE org_id IS NULL;
