//! Code shared by every service of the workspace: configuration, HTTP plumbing, errors and
//! telemetry, plus the domain and infrastructure that modules add (each as a module below).

pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod telemetry;

// saaskit declares the modules it adds after the next line: keep it.
// <<<inject:mods>>>
// <<<begin:db@mods>>>
pub mod db;
// <<<end:db@mods>>>
// <<<begin:jobs@mods>>>
pub mod jobs;
// <<<end:jobs@mods>>>
// <<<begin:email@mods>>>
pub mod email;
// <<<end:email@mods>>>
// <<<begin:auth@mods>>>
pub mod auth;
// <<<end:auth@mods>>>
// <<<begin:audit@mods>>>
pub mod audit;
// <<<end:audit@mods>>>
// <<<begin:admin/core@mods>>>
pub mod admin;
// <<<end:admin/core@mods>>>
// <<<begin:billing/stripe-webhooks@mods>>>
pub mod webhooks;
// <<<end:billing/stripe-webhooks@mods>>>
// <<<begin:billing/subscriptions@mods>>>
pub mod billing;
// <<<end:billing/subscriptions@mods>>>
// <<<begin:admin/billing@mods>>>
pub mod admin_billing;
// <<<end:admin/billing@mods>>>
// <<<begin:admin/feature-flags@mods>>>
pub mod flags;
// <<<end:admin/feature-flags@mods>>>
// <<<begin:admin/jobs@mods>>>
pub mod admin_jobs;
// <<<end:admin/jobs@mods>>>
// <<<begin:orgs@mods>>>
pub mod orgs;
// <<<end:orgs@mods>>>
// <<<begin:admin/orgs@mods>>>
pub mod admin_orgs;
// <<<end:admin/orgs@mods>>>
// <<<begin:billing/api@mods>>>
pub mod plans;
// <<<end:billing/api@mods>>>
// <<<begin:billing/orgs@mods>>>
pub mod org_billing;
// <<<end:billing/orgs@mods>>>
// <<<begin:admin/webhooks@mods>>>
pub mod admin_webhooks;
// <<<end:admin/webhooks@mods>>>
// <<<begin:security/rate-limiting@mods>>>
pub mod rate_limit;
// <<<end:security/rate-limiting@mods>>>
// <<<begin:users@mods>>>
pub mod profile;
// <<<end:users@mods>>>

pub use error::ApiError;
