//! Serving HTTP: where a service listens, the middleware every route runs behind, the health
//! endpoints, the limits on slow clients, and graceful shutdown.

mod health;
mod json;
mod middleware;
pub mod openapi;

// saaskit declares the HTTP side of the modules it adds (their extractors, kept out of the
// domain modules) after the next line: keep it.
// <<<inject:mods>>>
// <<<begin:auth@mods>>>
mod auth;
// <<<end:auth@mods>>>
// <<<begin:admin/core@mods>>>
mod admin;
// <<<end:admin/core@mods>>>
// <<<begin:orgs@mods>>>
mod orgs;
// <<<end:orgs@mods>>>

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use futures_util::future::BoxFuture;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::{Service, ServiceExt};

pub use health::{Readiness, ReadinessCheck, health_routes, healthcheck};
pub use json::{JsonBody, Path, Query};
pub use middleware::with_middleware;
pub use openapi::{ApiDocsConfig, OpenApiCommand, api_docs};

use crate::config::Env;

/// Where a service listens, and how long it waits for a client's request headers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// How long a connection may take to send the headers of a request, from the moment it
    /// opens or, on a kept-alive connection, from the end of the previous response
    /// (`HTTP_HEADER_READ_TIMEOUT_SECS`). The connection is closed when they are not all in by
    /// then: a client sending them a byte at a time ("slowloris") cannot hold connections, and
    /// the file descriptors and tasks behind them, for ever. The request timeout only starts
    /// once the headers are in, so it cannot do this. On shutdown, a connection that has not
    /// sent its first request yet is waited for this long at most.
    pub header_read_timeout: Duration,
}

impl ServerConfig {
    /// Reads `<PREFIX>_ADDR`, e.g. `API_ADDR=127.0.0.1:8080`: each service has its own prefix so
    /// that all the services of the workspace can share one `.env`; and
    /// `HTTP_HEADER_READ_TIMEOUT_SECS`, which they share.
    pub fn from_env(env: &mut Env, prefix: &str) -> Self {
        const HEADER_TIMEOUT_KEY: &str = "HTTP_HEADER_READ_TIMEOUT_SECS";
        let addr = env
            .required(&format!("{prefix}_ADDR"))
            // A placeholder: when the key is bad, `Env::finish` stops start-up before it is used.
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let header_timeout_secs = env.optional(HEADER_TIMEOUT_KEY, 30);
        if header_timeout_secs == 0 {
            env.record(HEADER_TIMEOUT_KEY, "must be at least 1");
        }
        Self {
            addr,
            header_read_timeout: Duration::from_secs(header_timeout_secs),
        }
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
    env.retired(
        SHARED_ORIGINS_KEY,
        &format!(
            "each service has its own key. Move the origins this service must trust to {key} \
             (and those of the other services to their <SERVICE>_CORS_ALLOWED_ORIGINS, e.g. \
             API_CORS_ALLOWED_ORIGINS)"
        ),
    );
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

/// The peer address of a request's connection, for the audit log. Behind a reverse proxy it is
/// the proxy's: the log then shows where the proxy runs, which is honest, where a forwarded
/// header could be forged.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// Serves `app` on `config.addr` until the process receives Ctrl-C or SIGTERM, then stops
/// accepting connections and returns once in-flight requests have finished.
///
/// Started by systemd with a listening socket (socket activation: `LISTEN_FDS`, `LISTEN_PID`,
/// the socket at file descriptor 3), it serves on that socket instead of binding `config.addr`.
/// The socket outlives the process: a restart leaves connections waiting in its backlog for the
/// next process instead of refusing them (deploy/vps's `.socket` units).
///
/// The future is boxed so that the server it drives is compiled once, in this crate, rather than
/// again in every service binary that awaits it.
pub fn serve(config: &ServerConfig, app: Router) -> BoxFuture<'static, io::Result<()>> {
    Box::pin(run(config.clone(), app))
}

/// The accept loop `axum::serve` runs, written out because `axum::serve` offers no way to set
/// hyper's header read timeout: each connection is served by hyper's HTTP/1 server with a timer
/// (without one, hyper has no timeouts at all), and stopped gracefully on shutdown.
async fn run(config: ServerConfig, app: Router) -> io::Result<()> {
    let listener = listen(config.addr).await?;
    // Installed before serving, so that a failure stops start-up instead of a running server.
    let mut shutdown = pin!(shutdown_signal()?);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    // Connection info lets handlers and middleware see the peer address (`ConnectInfo`).
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    // Tells the connections to stop; each holds a receiver, so `closed` is when all have ended.
    let (stop, _) = watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // A connection that failed before it was accepted, or no file descriptor
                    // left: not a reason to stop serving. The pause lets descriptors free up.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(service) = make_service.call(peer).await;
        let first_request = Arc::new(Notify::new());
        let started = Arc::clone(&first_request);
        let service = service.map_request(move |request| {
            started.notify_one();
            request
        });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let mut stopping = stop.subscribe();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            // A connection is stopped once it has had its first request: stopped before, hyper
            // would close it unread, losing the request its client has sent or is sending (an
            // upgrade's restart would fail it). A client that sends nothing is closed by the
            // header read timeout.
            let stop_requested = async {
                first_request.notified().await;
                // An error: the server is gone, which it only is once every connection ended.
                let _ = stopping.changed().await;
            };
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop_requested => {
                    // The request being served is answered, then the connection closes.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                // Headers too slow, a peer gone mid-request: the peer's doing, not the service's.
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    // Stops accepting (connections still waiting in a socket systemd holds are the next
    // process's), then lets each connection finish the request it is serving.
    drop(listener);
    stop.send_replace(());
    stop.closed().await;
    tracing::info!("stopped serving; in-flight requests finished");
    Ok(())
}

/// The socket to serve on: the listening socket systemd passed, if any, else `addr`, bound here.
async fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    // Takes the socket only when `LISTEN_PID` names this process (a process that merely inherited
    // the variables does not), then removes the variables, as systemd's sd_listen_fds does.
    let passed = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot serve on the socket systemd passed (LISTEN_FDS): {error}; its \
                     .socket unit must have a `ListenStream=` with a TCP address"
                ),
            )
        })?;
    let Some(passed) = passed else {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
        })?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        return Ok(listener);
    };
    // tokio drives the socket without blocking a thread; systemd passes it blocking.
    passed.set_nonblocking(true)?;
    let listener = TcpListener::from_std(passed)?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "listening on the socket systemd passed");
    if local != addr {
        // `healthcheck` and the proxy in front reach the service at the configured address.
        tracing::warn!(
            %local,
            configured = %addr,
            "the socket systemd passed is not at the service's configured address"
        );
    }
    Ok(listener)
}

/// Completes on the first Ctrl-C (SIGINT) or SIGTERM, the signal orchestrators send to stop.
/// Also what a process that serves no HTTP (`<service> worker`) waits for.
#[cfg(unix)]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down: finishing in-flight work");
    })
}

/// Completes on the first Ctrl-C, the only stop signal Windows has.
#[cfg(not(unix))]
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("shutting down: finishing in-flight work");
        } else {
            std::future::pending::<()>().await;
        }
    })
}
