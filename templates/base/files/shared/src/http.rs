//! Serving HTTP: where a service listens, the middleware every route runs behind, the health
//! endpoints, and graceful shutdown.

mod health;
mod json;
mod middleware;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use futures_util::future::BoxFuture;
use tokio::net::TcpListener;

pub use health::{Readiness, ReadinessCheck, health_routes};
pub use json::JsonBody;
pub use middleware::with_middleware;

use crate::config::Env;

/// Where a service listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
}

impl ServerConfig {
    /// Reads `<PREFIX>_ADDR`, e.g. `API_ADDR=127.0.0.1:8080`: each service has its own prefix so
    /// that all the services of the workspace can share one `.env`.
    pub fn from_env(env: &mut Env, prefix: &str) -> Self {
        let addr = env
            .required(&format!("{prefix}_ADDR"))
            // A placeholder: when the key is bad, `Env::finish` stops start-up before it is used.
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        Self { addr }
    }
}

/// Limits applied to every request, and the browser origins a service trusts.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// How long a request may take, reading its body included (`HTTP_REQUEST_TIMEOUT_SECS`).
    pub request_timeout: Duration,
    /// The largest request body accepted, in bytes (`HTTP_BODY_LIMIT_BYTES`).
    pub body_limit: usize,
    /// The browser origins allowed to call this service from other sites, with credentials, e.g.
    /// `https://app.example.com` (`<PREFIX>_CORS_ALLOWED_ORIGINS`, comma-separated; empty for
    /// none). The CSRF check trusts them too.
    pub allowed_origins: Vec<HeaderValue>,
}

impl HttpConfig {
    /// Reads the limits, which all services share, and `<PREFIX>_CORS_ALLOWED_ORIGINS`, which
    /// each service has its own of: an origin trusted by the product's api must not be trusted by
    /// the admin service too.
    pub fn from_env(env: &mut Env, prefix: &str) -> Self {
        const TIMEOUT_KEY: &str = "HTTP_REQUEST_TIMEOUT_SECS";
        let timeout_secs = env.optional(TIMEOUT_KEY, 30);
        if timeout_secs == 0 {
            env.record(TIMEOUT_KEY, "must be at least 1");
        }
        Self {
            request_timeout: Duration::from_secs(timeout_secs),
            body_limit: env.optional("HTTP_BODY_LIMIT_BYTES", 1024 * 1024),
            allowed_origins: allowed_origins(env, prefix),
        }
    }
}

/// The key that configured the origins of every service at once, before each got its own.
const SHARED_ORIGINS_KEY: &str = "CORS_ALLOWED_ORIGINS";

/// Reads `<PREFIX>_CORS_ALLOWED_ORIGINS`: each entry must be an origin, `scheme://host[:port]`,
/// with no path, because browsers compare the `Origin` header with it byte for byte.
///
/// A value left in the former shared key is refused rather than ignored: the origins it listed
/// would otherwise stop working without a word, or be copied to every service.
pub fn allowed_origins(env: &mut Env, prefix: &str) -> Vec<HeaderValue> {
    let key = format!("{prefix}_CORS_ALLOWED_ORIGINS");
    if env.is_set(SHARED_ORIGINS_KEY) {
        env.record(
            SHARED_ORIGINS_KEY,
            format!(
                "is no longer read: each service has its own key. Move the origins this service \
                 must trust to {key} (and those of the other services to their \
                 <SERVICE>_CORS_ALLOWED_ORIGINS, e.g. API_CORS_ALLOWED_ORIGINS), then delete \
                 {SHARED_ORIGINS_KEY}"
            ),
        );
    }
    let list: String = env.optional(&key, String::new());
    let mut origins = Vec::new();
    for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let well_formed = ["http://", "https://"]
            .iter()
            .filter_map(|scheme| origin.strip_prefix(scheme))
            .any(|host| !host.is_empty() && !host.contains('/'));
        match HeaderValue::from_str(origin) {
            Ok(value) if well_formed => origins.push(value),
            _ => env.record(
                &key,
                format!("has `{origin}`, which is not an origin like https://app.example.com"),
            ),
        }
    }
    origins
}

/// Serves `app` on `config.addr` until the process receives Ctrl-C or SIGTERM, then stops
/// accepting connections and returns once in-flight requests have finished.
///
/// The future is boxed so that the server it drives is compiled once, in this crate, rather than
/// again in every service binary that awaits it.
pub fn serve(config: &ServerConfig, app: Router) -> BoxFuture<'static, io::Result<()>> {
    Box::pin(run(config.addr, app))
}

async fn run(addr: SocketAddr, app: Router) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await.map_err(|error| {
        io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
    })?;
    // Installed before serving, so that a failure stops start-up instead of a running server.
    let shutdown = shutdown_signal()?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    // Connection info lets handlers and middleware see the peer address (`ConnectInfo`).
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("stopped serving; in-flight requests finished");
    Ok(())
}

/// Completes on the first Ctrl-C (SIGINT) or SIGTERM, the signal orchestrators send to stop.
#[cfg(unix)]
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down: finishing in-flight requests");
    })
}

/// Completes on the first Ctrl-C, the only stop signal Windows has.
#[cfg(not(unix))]
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("shutting down: finishing in-flight requests");
        } else {
            std::future::pending::<()>().await;
        }
    })
}
