//! Metrics in the Prometheus text format (OpenMetrics 1.0, which Prometheus scrapes), served at
//! `GET /metrics` on a listener of their own (`<PREFIX>_METRICS_ADDR`), never on the service's
//! public address: the series name routes and reveal load, which is the operator's business.
//!
//! What every service counts (see [`Metrics`]): requests by method, matched route and status, their
//! latency, requests in flight, and requests refused by a rate limit. Modules add their own series
//! at start-up with [`Metrics::register`] and, for values read when Prometheus asks (a database
//! pool's connections, a queue's depth), [`Metrics::refresh_on_scrape`]: nothing is queried on the
//! path of a request.
//!
//! `prometheus-client` is the official Rust client of the Prometheus project: three small crates
//! (no HTTP server, no TLS), where `metrics` with its exporter brings hyper and a TLS stack.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::{BoxFuture, join_all};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use tokio::net::TcpListener;

use crate::config::Env;

/// Where `/metrics` is served, if anywhere.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `<PREFIX>_METRICS_ADDR`, e.g. `127.0.0.1:9080`; unset (the default) serves no metrics.
    /// Off by default rather than on a fixed port: the services of a workspace, and instances of
    /// one service, share hosts, and a port taken by another would stop start-up.
    pub addr: Option<SocketAddr>,
}

impl MetricsConfig {
    pub fn from_env(env: &mut Env, prefix: &str) -> Self {
        let key = format!("{prefix}_METRICS_ADDR");
        let value: String = env.optional(&key, String::new());
        let addr = if value.is_empty() {
            None
        } else {
            value
                .parse()
                .map_err(|error| {
                    env.record(
                        &key,
                        format!("is invalid: {error} (expected an address such as 127.0.0.1:9080)"),
                    );
                })
                .ok()
        };
        Self { addr }
    }
}

/// A value read when Prometheus scrapes, such as a queue's depth counted in the database.
type Refresh = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// The series of one service: cheap to clone (all clones share them).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    /// Locked at start-up (registering) and per scrape (encoding), never by a request.
    registry: Mutex<Registry>,
    refreshes: Mutex<Vec<Arc<Refresh>>>,
    http: HttpMetrics,
}

/// The series the middleware records for every request (see `http::with_middleware`).
#[derive(Clone)]
pub(crate) struct HttpMetrics {
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) duration: Family<RequestLabels, Histogram>,
    pub(crate) in_flight: Gauge,
    pub(crate) rate_limited: Family<LimitLabels, Counter>,
}

/// Built for every request: no field allocates (see `http::middleware::RecordMetrics`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) method: &'static str,
    pub(crate) route: RouteLabel,
    pub(crate) status: u16,
}

/// The route label of requests that matched no route: the raw path would make one series per
/// path a scanner tries.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// The matched route's pattern (`/users/{id}`), never the raw path: one series per route, not
/// per id, and no token that a path may carry. Holds the router's own `MatchedPath`, whose clone
/// shares the pattern's `Arc<str>`: a label per request without copying the pattern.
#[derive(Debug, Clone)]
pub(crate) struct RouteLabel(pub(crate) Option<MatchedPath>);

impl RouteLabel {
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
    }
}

// By the pattern, as the label's text: two `MatchedPath`s of one route are equal whether or not
// they share their allocation.
impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl Hash for RouteLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct LimitLabels {
    pub(crate) limit: &'static str,
}

/// Set on a response as an extension by whatever refused it for a rate limit, named by `.0`;
/// the middleware counts it in `rate_limit_refusals_total`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimited(pub &'static str);

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics {
            requests: Family::default(),
            // 1 ms to about 16 s, doubling: a request slower than the last bucket is counted in
            // `+Inf`, and the request timeout ends it before long anyway.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
            in_flight: Gauge::default(),
            rate_limited: Family::default(),
        };
        registry.register(
            "http_requests",
            "Requests answered, by method, matched route and status",
            http.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's headers to its response's, by method, matched route and status",
            http.duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being served",
            http.in_flight.clone(),
        );
        registry.register(
            "rate_limit_refusals",
            "Requests refused with 429 by a rate limit, by limit",
            http.rate_limited.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                refreshes: Mutex::default(),
                http,
            }),
        }
    }
}

impl Metrics {
    /// Adds a series, named without the `_total` a counter's samples get.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// Runs `refresh` before each scrape, to set gauges from what they measure. Refreshes run
    /// concurrently; each should be quick (one query), as Prometheus waits for all of them.
    pub fn refresh_on_scrape<F>(&self, refresh: F)
    where
        F: Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        self.inner
            .refreshes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(Box::new(refresh)));
    }

    pub(crate) fn http(&self) -> &HttpMetrics {
        &self.inner.http
    }

    /// Every series, in the OpenMetrics text format, after the refreshes.
    pub async fn encode(&self) -> String {
        let refreshes = self
            .inner
            .refreshes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        join_all(refreshes.iter().map(|refresh| refresh())).await;
        let mut text = String::new();
        let registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Writing to a String cannot fail; an encoder error would be a bug in a metric.
        if let Err(error) = encode(&mut text, &registry) {
            tracing::error!(%error, "cannot encode the metrics");
        }
        text
    }

    /// Starts serving `GET /metrics` on `config.addr`, when set, in a task of its own that
    /// ends with the process. Binds before returning, so that an address in use stops start-up
    /// with its name.
    pub async fn serve(self, config: &MetricsConfig) -> io::Result<()> {
        let Some(addr) = config.addr else {
            return Ok(());
        };
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot serve metrics on {addr} (the _METRICS_ADDR key): {error}"),
            )
        })?;
        tracing::info!(addr = %listener.local_addr()?, "serving metrics at /metrics");
        let app = Router::new()
            .route("/metrics", get(scrape))
            .with_state(self);
        tokio::spawn(async move {
            // Scrapes are not drained on shutdown: Prometheus asks again at its next interval.
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the metrics listener stopped");
            }
        });
        Ok(())
    }
}

async fn scrape(State(metrics): State<Metrics>) -> Response {
    // A refresh stuck on a database gives an error to this scrape, not a hung one.
    const LIMIT: Duration = Duration::from_secs(10);
    match tokio::time::timeout(LIMIT, metrics.encode()).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            )],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the metrics took longer than 10 s to read",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn refreshes_gauges_at_each_scrape() {
        let metrics = Metrics::default();
        let depth = Gauge::<i64>::default();
        metrics.register("queue_depth", "Jobs waiting", depth.clone());
        let scrapes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&scrapes);
        metrics.refresh_on_scrape(move || {
            let depth = depth.clone();
            let counted = Arc::clone(&counted);
            Box::pin(async move {
                let scrape = counted.fetch_add(1, Ordering::Relaxed) + 1;
                depth.set(i64::try_from(scrape).unwrap() * 10);
            })
        });

        let first = metrics.encode().await;
        let second = metrics.encode().await;

        assert!(first.contains("queue_depth 10\n"), "{first}");
        assert!(second.contains("queue_depth 20\n"), "{second}");
        assert!(second.ends_with("# EOF\n"), "{second}");
    }

    #[test]
    fn the_address_is_optional_and_checked() {
        let mut env = Env::from_vars([("API_METRICS_ADDR", "127.0.0.1:9080")]);
        assert_eq!(
            MetricsConfig::from_env(&mut env, "API").addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9080)))
        );
        assert!(MetricsConfig::from_env(&mut env, "ADMIN").addr.is_none());
        assert!(env.finish().is_ok());

        let mut env = Env::from_vars([("API_METRICS_ADDR", "9080")]);
        assert!(MetricsConfig::from_env(&mut env, "API").addr.is_none());
        let message = env.finish().unwrap_err().to_string();
        assert!(message.contains("API_METRICS_ADDR is invalid"), "{message}");
    }
}
