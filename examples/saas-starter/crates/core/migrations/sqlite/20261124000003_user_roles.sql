-- Staff roles (see src/auth/accounts.rs): every account starts as a customer.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'customer'
    CHECK (role IN ('customer', 'support', 'admin'));
