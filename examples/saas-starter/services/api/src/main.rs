//! Product API: accounts, authentication and users.
//!
//! This is the one place where the service starts and stops: it reads the configuration,
//! connects to what the service depends on, builds the router, serves until it is asked to stop,
//! then releases what it holds. The behaviour lives in `saas_starter_core` and in this crate's modules.
//!
//! saaskit adds the code of each module after the `inject` marker comments below: keep them.

// <<<inject:mods>>>
// <<<begin:jobs@mods>>>
use saas_starter_core::jobs::{Jobs, JobsConfig};
// <<<end:jobs@mods>>>
// <<<begin:auth@mods>>>
mod auth;
mod state;
use saas_starter_core::auth::{Auth, AuthConfig};
// <<<end:auth@mods>>>
// <<<begin:admin/feature-flags@mods>>>
mod flags;
// <<<end:admin/feature-flags@mods>>>
// <<<begin:orgs@mods>>>
mod orgs;
use saas_starter_core::orgs::{InvitationEmails, OrgsConfig};
// <<<end:orgs@mods>>>
// <<<begin:billing/api@mods>>>
mod billing;
// <<<end:billing/api@mods>>>
// <<<begin:billing/orgs@mods>>>
mod org_billing;
// <<<end:billing/orgs@mods>>>
// <<<begin:security/rate-limiting@mods>>>
use saas_starter_core::rate_limit::{RateLimitConfig, RateLimits};
// <<<end:security/rate-limiting@mods>>>
// <<<begin:users@mods>>>
mod users;
// <<<end:users@mods>>>

use std::process::ExitCode;

use saas_starter_core::config::Env;
use saas_starter_core::http::{self, ApiDocsConfig, HttpConfig, Readiness, ServerConfig};
use saas_starter_core::metrics::{Metrics, MetricsConfig};
use saas_starter_core::telemetry::{self, TelemetryConfig};

/// Runs the service; a failure is reported as one line of causes on stderr, with exit code 1.
/// Not as `main` returning the error: that prints its `Debug` form, a stack backtrace included
/// whenever `RUST_BACKTRACE` is set, as it often is in developers' shells.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    // Every section reads its keys before `finish`, which names all the bad ones at once.
    let mut env = Env::load();
    let telemetry_config = TelemetryConfig::from_env(&mut env);
    let http_config = HttpConfig::from_env(&mut env, "API");
    let server_config = ServerConfig::from_env(&mut env, "API");
    let docs_config = ApiDocsConfig::from_env(&mut env);
    let metrics_config = MetricsConfig::from_env(&mut env, "API");
    // `healthcheck` asks the running service for its `/healthz` and exits 0 on a 200: a
    // container's health check, with no curl in the image. Before any module's command line.
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        env.finish()?;
        http::healthcheck(server_config.addr).await?;
        return Ok(());
    }
    // <<<inject:config>>>
    // <<<begin:db@config>>>
    let db_config = saas_starter_core::db::DatabaseConfig::from_env(&mut env);
    // <<<end:db@config>>>
    // <<<begin:jobs@config>>>
    let jobs_config = JobsConfig::from_env(&mut env, "API");
    // <<<end:jobs@config>>>
    // <<<begin:email@config>>>
    let email_config = saas_starter_core::email::EmailConfig::from_env(&mut env);
    // <<<end:email@config>>>
    // <<<begin:auth@config>>>
    let auth_config = AuthConfig::from_env(&mut env);
    // <<<end:auth@config>>>
    // <<<begin:orgs@config>>>
    let orgs_config = OrgsConfig::from_env(&mut env);
    // <<<end:orgs@config>>>
    // <<<begin:billing/api@config>>>
    let billing_plans = saas_starter_core::plans::Plans::from_env(&mut env);
    // <<<end:billing/api@config>>>
    // <<<begin:security/rate-limiting@config>>>
    let rate_limit_config = RateLimitConfig::from_env(&mut env);
    // <<<end:security/rate-limiting@config>>>
    env.finish()?;

    // `openapi` prints its document on stdout, where the logs go: it logs nothing.
    let openapi_command = http::OpenApiCommand::from_args();
    if openapi_command.is_none() {
        // Modules add their layers (trace export) here, once the configuration is known good.
        // <<<inject:telemetry>>>
        telemetry::init(telemetry_config);
    }

    // Modules register the dependencies `/readyz` checks as they connect to them.
    let readiness = Readiness::default();
    // Modules register their series as they start; served at `/metrics` on
    // `API_METRICS_ADDR` when it is set.
    let metrics = Metrics::default();
    // <<<inject:startup>>>
    // <<<begin:db@startup>>>
    let db = saas_starter_core::db::Database::connect(&db_config).await?;
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        let migrated = db.migrate().await;
        db.close().await;
        migrated?;
        return Ok(());
    }
    db.migrate_on_start(&db_config).await?;
    let readiness = readiness.with_check("database", db.clone());
    db.register_metrics(&metrics);
    // <<<end:db@startup>>>
    // <<<begin:jobs@startup>>>
    let jobs = Jobs::new(db.clone(), jobs_config, "API");
    let job_handlers = jobs.handlers();
    jobs.register_metrics(&metrics);
    // <<<end:jobs@startup>>>
    // <<<begin:email@startup>>>
    let mailer = saas_starter_core::email::Mailer::new(email_config)?;
    let send_email = saas_starter_core::email::SendEmail::new(mailer.clone());
    let job_handlers = job_handlers.register(send_email);
    // <<<end:email@startup>>>
    // <<<begin:auth@startup>>>
    let auth = Auth::new(db.clone(), auth_config, &http_config, &mailer)?;
    auth.register_metrics(&metrics);
    let job_handlers = job_handlers.register(auth.account_emails());
    // <<<end:auth@startup>>>
    // <<<begin:orgs@startup>>>
    let auth = orgs_config.hook(auth);
    let job_handlers = job_handlers.register(InvitationEmails::new(mailer.clone()));
    // <<<end:orgs@startup>>>
    // <<<begin:security/rate-limiting@startup>>>
    let rate_limits = RateLimits::connect(rate_limit_config).await?;
    // <<<end:security/rate-limiting@startup>>>

    let app = http::health_routes(readiness);
    // <<<inject:routes>>>
    // <<<begin:jobs@routes>>>
    if saas_starter_core::jobs::worker_command() {
        let ran = jobs.run_worker(job_handlers).await;
        db.close().await;
        ran?;
        return Ok(());
    }
    let job_worker = jobs.start_worker(job_handlers)?;
    // <<<end:jobs@routes>>>
    // <<<begin:auth@routes>>>
    let state = state::AppState::new(db.clone(), auth.clone());
    let app = app.merge(auth::routes(state.clone()));
    // <<<end:auth@routes>>>
    // <<<begin:admin/feature-flags@routes>>>
    let app = app.merge(flags::routes(state.clone()));
    // <<<end:admin/feature-flags@routes>>>
    // <<<begin:orgs@routes>>>
    let app = app.merge(orgs::routes(state.clone(), orgs_config));
    // <<<end:orgs@routes>>>
    // <<<begin:billing/api@routes>>>
    let app = app.merge(billing::routes(state.clone(), billing_plans));
    // <<<end:billing/api@routes>>>
    // <<<begin:users@routes>>>
    let app = app.merge(users::routes(state.clone()));
    // <<<end:users@routes>>>
    // Every route is in: the OpenAPI document is made from them, served at /openapi.json.
    let (app, openapi) = http::api_docs(app, &docs_config, "saas-starter api");
    // Layers that apply to the whole service go on here, after every module's routes: a layer
    // wraps only the routes merged before it, and modules are added in any order.
    // <<<inject:layers>>>
    // <<<begin:security/rate-limiting@layers>>>
    let app = rate_limits.protect(app, &http_config, &auth);
    // <<<end:security/rate-limiting@layers>>>
    let app = http::with_middleware(app, &http_config, &metrics);
    // Layers that must see a request before its span is made (the trace a caller continues)
    // go on here, around the whole stack.
    // <<<inject:outer-layers>>>

    // `openapi` prints the document instead of serving; `openapi --check` compares it with the
    // committed copy in this crate's `openapi/` folder (docs/openapi.md).
    if let Some(command) = openapi_command {
        command.run(&openapi, env!("CARGO_MANIFEST_DIR"))?;
    } else {
        metrics.serve(&metrics_config).await?;
        http::serve(&server_config, app).await?;
    }

    // <<<inject:shutdown>>>
    // <<<begin:jobs@shutdown>>>
    job_worker.shutdown().await;
    // <<<end:jobs@shutdown>>>
    // <<<begin:db@shutdown>>>
    db.close().await;
    // <<<end:db@shutdown>>>
    Ok(())
}
