//! `GET /healthz` and `GET /readyz`, the endpoints orchestrators and load balancers probe.
//!
//! `/healthz` answers as long as the process serves HTTP: when it stops answering, the service
//! should be restarted. `/readyz` also runs every [`ReadinessCheck`] registered at start-up (the
//! database, ...): while one fails, the service is alive but should get no traffic, and the
//! response names the failing checks.
//!
//! [`healthcheck`] is the other side: the `healthcheck` command of every service binary GETs
//! the service's own `/healthz`, so that a container image needs no curl for its health check.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use futures_util::future::{self, BoxFuture, Either, join_all};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, BoxError, FieldErrors};

/// How long a single check may take before it counts as failed: a probe must answer quickly even
/// when a dependency hangs rather than refuses.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Something the service needs in order to serve requests, such as its database.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Resolves to `Ok(())` when the dependency is usable.
    fn check(&self) -> BoxFuture<'_, Result<(), BoxError>>;
}

/// The checks `/readyz` runs, by name. Modules register theirs at start-up with
/// [`Readiness::with_check`].
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Arc<dyn ReadinessCheck>)>,
}

impl Readiness {
    pub fn with_check(mut self, name: &'static str, check: impl ReadinessCheck) -> Self {
        self.checks.push((name, Arc::new(check)));
        self
    }

    /// Runs every check concurrently; returns the failing ones, each with what went wrong.
    async fn failures(&self) -> FieldErrors {
        let outcomes = join_all(self.checks.iter().map(|(name, check)| async move {
            let failure = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(Ok(())) => return None,
                Ok(Err(error)) => {
                    // The cause stays in the logs: the probe may be reachable from outside.
                    tracing::warn!(check = name, %error, "readiness check failed");
                    "failed"
                }
                Err(_) => {
                    tracing::warn!(check = name, "readiness check timed out");
                    "timed out"
                }
            };
            Some((name.to_string(), failure.to_string()))
        }))
        .await;
        outcomes.into_iter().flatten().collect()
    }
}

/// The process serves HTTP.
#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// A ready answer names the checks that passed, so a probe shows what readiness covers.
#[derive(Serialize, ToSchema)]
struct Ready {
    #[schema(example = "ready")]
    status: &'static str,
    #[schema(example = json!(["database"]))]
    checks: Vec<&'static str>,
}

/// The `/healthz` and `/readyz` routes, answering from `readiness`.
pub fn health_routes(readiness: Readiness) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .with_state(readiness)
}

/// Liveness: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: runs every check registered at start-up (the database, ...).
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Every dependency is usable", body = Ready),
    (status = 503, description = "`unavailable`: the failing checks are named in `fields`",
        body = crate::http::openapi::ErrorBody),
))]
async fn readyz(State(readiness): State<Readiness>) -> Result<Json<Ready>, ApiError> {
    let failures = readiness.failures().await;
    if failures.is_empty() {
        let checks = readiness.checks.iter().map(|(name, _)| *name).collect();
        Ok(Json(Ready {
            status: "ready",
            checks,
        }))
    } else {
        Err(ApiError::Unavailable(failures))
    }
}

/// How long `healthcheck` waits for the whole exchange: container runtimes kill a health check
/// that outlives their own timeout (Docker: 30 s) and count it as failed without a reason.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `/healthz` of the service listening on `addr` (an unspecified address, `0.0.0.0` or
/// `[::]`, is probed on loopback); `Ok` when it answers 200, else what went wrong. The future is
/// boxed so that the client is compiled once, in this crate.
pub fn healthcheck(addr: SocketAddr) -> BoxFuture<'static, io::Result<()>> {
    Box::pin(async move {
        let target = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
            IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
            _ => addr,
        };
        let status = tokio::time::timeout(PROBE_TIMEOUT, probe(target))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("GET http://{target}/healthz: no answer within {PROBE_TIMEOUT:?}"),
                )
            })??;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "GET http://{target}/healthz answered {status}"
            )))
        }
    })
}

/// One HTTP/1 exchange with hyper's client, which axum's server already compiles in part.
async fn probe(target: SocketAddr) -> io::Result<StatusCode> {
    let failed =
        |error: hyper::Error| io::Error::other(format!("GET http://{target}/healthz: {error}"));
    let stream = TcpStream::connect(target).await.map_err(|error| {
        io::Error::new(error.kind(), format!("cannot connect to {target}: {error}"))
    })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    let request = Request::get("/healthz")
        .header(header::HOST, target.to_string())
        .header(header::CONNECTION, "close")
        .body(Body::empty())
        .map_err(io::Error::other)?;
    // The connection does the reading and writing, so it is driven while the response is
    // awaited. Asked to close, it may end in the very step that hands the response over.
    let response = match future::select(pin!(sender.send_request(request)), connection).await {
        Either::Left((response, _)) => response,
        Either::Right((Ok(()), response)) => response.await,
        Either::Right((Err(error), _)) => return Err(failed(error)),
    };
    Ok(response.map_err(failed)?.status())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    struct Fixed(Result<(), &'static str>);

    impl ReadinessCheck for Fixed {
        fn check(&self) -> BoxFuture<'_, Result<(), BoxError>> {
            Box::pin(async move { self.0.map_err(BoxError::from) })
        }
    }

    async fn get_readyz(readiness: Readiness) -> (StatusCode, serde_json::Value) {
        let request = Request::get("/readyz").body(Body::empty()).unwrap();
        let router = axum::Router::from(health_routes(readiness));
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn ready_when_every_check_passes() {
        let readiness = Readiness::default().with_check("database", Fixed(Ok(())));

        let (status, body) = get_readyz(readiness).await;

        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            serde_json::json!({"status": "ready", "checks": ["database"]})
        );
    }

    #[tokio::test]
    async fn names_the_failing_checks() {
        let readiness = Readiness::default()
            .with_check("database", Fixed(Err("connection refused")))
            .with_check("cache", Fixed(Ok(())));

        let (status, body) = get_readyz(readiness).await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(
            body["error"]["fields"],
            serde_json::json!({"database": "failed"})
        );
    }
}
