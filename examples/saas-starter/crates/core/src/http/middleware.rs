//! The middleware stack every service puts in front of its routes.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{self, HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;
use tracing::field::Empty;

use super::HttpConfig;
use crate::error::ApiError;
use crate::metrics::{
    LimitLabels, Metrics, RateLimited, RequestLabels, RouteLabel, UNMATCHED_ROUTE,
};

/// The header carrying a request's id, in requests (a caller's, a proxy's) and in responses.
const REQUEST_ID: &str = "x-request-id";

/// The longest caller's request id kept: a UUID is 36 characters, a W3C trace id 32.
const MAX_REQUEST_ID_LEN: usize = 64;

/// Puts every route of `app` behind the service-wide middleware and answers unknown routes with
/// a JSON 404. Routes merged into the result afterwards would miss both: call it last.
pub fn with_middleware(app: Router, config: &HttpConfig, metrics: &Metrics) -> Router {
    app.fallback(|| async { ApiError::NotFound("route") })
        .layer(
            // Listed from the outside in: each layer sees the request before the next one.
            ServiceBuilder::new()
                // Keeps the caller's `x-request-id` when it is safe to log and to pass on, or
                // sets a new UUID, so that one id follows the request through the logs of every
                // service it crosses.
                .map_request(drop_unsafe_request_id)
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_request(())
                        .on_response(log_response)
                        // Server errors are logged where they happen, with their cause (see
                        // `ApiError`); a second line without it would only add noise.
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                // Outside the panic, timeout and rate limit answers, which it counts too.
                .layer(RecordMetricsLayer(metrics.clone()))
                // Inside the layers above, so that a panic still gets a logged, identified 500.
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(middleware::from_fn_with_state(
                    config.request_timeout,
                    timeout,
                ))
                .layer(cors(&config.allowed_origins))
                .layer(middleware::map_response(security_headers))
                // Enforced by the body extractors (`Json`, `Bytes`, `String`, `Form`, ...).
                .layer(DefaultBodyLimit::max(config.body_limit)),
        )
}

/// Lets the listed origins call the service from a browser, cookies included; other origins
/// get no CORS headers, so browsers keep their pages from reading the responses. Preflight
/// requests are answered here, before any route.
fn cors(allowed_origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed_origins.iter().cloned()))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-requested-with"),
        ])
        // Readable by the allowed origins' scripts, which need them to back off when limited.
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ])
        .max_age(Duration::from_secs(600))
}

/// Headers that tell browsers to treat responses as data: no sniffing, no framing, no referrer,
/// HTTPS only. A header a route sets itself (a page's `content-security-policy`) is kept.
async fn security_headers(mut response: Response) -> Response {
    const HEADERS: [(HeaderName, &str); 6] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-site",
        ),
    ];
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Removes a caller's request id that is empty, longer than [`MAX_REQUEST_ID_LEN`] or holds
/// anything but `A-Z a-z 0-9 . _ : -`, so that a new one is made in its place. An id goes into
/// every log line and to every service the request reaches: a line break or a quote in it could
/// forge log lines, and a long one would bloat them.
fn drop_unsafe_request_id(mut request: Request) -> Request {
    let safe = request
        .headers()
        .get(REQUEST_ID)
        .is_none_or(|id| is_safe_request_id(id.as_bytes()));
    if !safe {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

fn is_safe_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-'))
}

/// The span every log line of a request is recorded in: its id, method and route, and the id of
/// the user it is authenticated as, once known (the auth extractor records it).
fn request_span(request: &Request) -> Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        // The route's pattern, not the path: a path can carry a token (a verification link's),
        // which must stay out of logs, as must the query string.
        route = %matched_route(request),
        user_id = Empty,
    )
}

fn matched_route(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
}

/// One line per request, in its span: the status and how long the answer took. Of any body: the
/// layers inside pass on their inner responses' bodies as they are.
fn log_response<B>(response: &http::Response<B>, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "answered"
    );
}

/// Counts each request and its latency by method, route and status, and the requests in flight.
/// A layer of its own rather than `middleware::from_fn`, which for every request clones the rest
/// of the stack, boxes it and boxes its own future: more work than the counting itself (see
/// docs/benchmarks.md, "Observability on the hot path").
#[derive(Clone)]
struct RecordMetricsLayer(Metrics);

impl<S> Layer<S> for RecordMetricsLayer {
    type Service = RecordMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct RecordMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, ResBody> Service<http::Request<B>> for RecordMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RecordMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let labels = RequestLabels {
            method: method_label(request.method()),
            route: RouteLabel(request.extensions().get::<MatchedPath>().cloned()),
            // Set when the response is known.
            status: 0,
        };
        let in_flight = InFlight::enter(&self.metrics);
        let started = Instant::now();
        RecordMetricsFuture {
            inner: self.inner.call(request),
            in_flight,
            labels,
            started,
        }
    }
}

pin_project! {
    struct RecordMetricsFuture<F> {
        #[pin]
        inner: F,
        in_flight: InFlight,
        labels: RequestLabels,
        started: Instant,
    }
}

impl<F, ResBody, E> Future for RecordMetricsFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        // The layers inside answer every error (panics, timeouts) with a response: an `Err`
        // here never reaches a client as an answer, so it is not counted as one.
        if let Ok(response) = &result {
            let metrics = this.in_flight.0.http();
            this.labels.status = response.status().as_u16();
            metrics.requests.get_or_create(this.labels).inc();
            metrics
                .duration
                .get_or_create(this.labels)
                .observe(this.started.elapsed().as_secs_f64());
            if let Some(&RateLimited(limit)) = response.extensions().get::<RateLimited>() {
                metrics
                    .rate_limited
                    .get_or_create(&LimitLabels { limit })
                    .inc();
            }
        }
        Poll::Ready(result)
    }
}

/// The method label: the standard methods by name, any other as `OTHER`, so that a client
/// cannot add a series per method it makes up (the unmatched route answers every method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// One request in flight, until dropped: when its future is, after the answer or when the client
/// leaves first.
struct InFlight(Metrics);

impl InFlight {
    fn enter(metrics: &Metrics) -> Self {
        metrics.http().in_flight.inc();
        Self(metrics.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.http().in_flight.dec();
    }
}

/// Answers 408 when the rest of the stack takes longer than `limit`. The handler's future is
/// dropped, which cancels whatever it was waiting for.
async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    ApiError::internal(format!("handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        let config = HttpConfig {
            request_timeout: Duration::from_millis(50),
            body_limit: 16,
            allowed_origins: vec![HeaderValue::from_static("https://app.example.com")],
        };
        let routes = Router::new()
            .route("/slow", get(|| tokio::time::sleep(Duration::from_secs(5))))
            .route("/echo", axum::routing::post(|body: String| async { body }));
        with_middleware(routes, &config, &Metrics::default())
    }

    async fn send(request: Request) -> Response {
        app().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn keeps_the_callers_request_id() {
        let request = Request::get("/nowhere")
            .header("x-request-id", "abc-123")
            .body(Body::empty())
            .unwrap();

        let response = send(request).await;

        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["x-request-id"], "abc-123");
    }

    #[tokio::test]
    async fn replaces_a_request_id_unsafe_to_log() {
        let too_long = "x".repeat(65);
        for unsafe_id in ["a b", "abc\"}", "é", too_long.as_str(), ""] {
            let request = Request::get("/nowhere")
                .header(
                    "x-request-id",
                    HeaderValue::from_bytes(unsafe_id.as_bytes()).unwrap(),
                )
                .body(Body::empty())
                .unwrap();

            let response = send(request).await;

            let id = response.headers()["x-request-id"].to_str().unwrap();
            assert_eq!(id.len(), 36, "a UUID in place of {unsafe_id:?}, got {id}");
        }
        let longest = "aZ0._:-".repeat(9) + "a";
        let request = Request::get("/nowhere")
            .header("x-request-id", &longest[..64])
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send(request).await.headers()["x-request-id"],
            &longest[..64]
        );
    }

    #[tokio::test]
    async fn counts_requests_by_route_and_status() {
        let metrics = Metrics::default();
        let config = HttpConfig {
            request_timeout: Duration::from_secs(5),
            body_limit: 16,
            allowed_origins: Vec::new(),
        };
        let routes = Router::new().route("/items/{id}", get(|| async { "item" }));
        let app = with_middleware(routes, &config, &metrics);
        for path in ["/items/1", "/items/2", "/nowhere"] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(request).await.unwrap();
        }

        let text = metrics.encode().await;

        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="/items/{id}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
            "{text}"
        );
        assert!(text.contains("http_requests_in_flight 0"), "{text}");
    }

    #[tokio::test]
    async fn counts_a_request_in_flight_until_answered_and_made_up_methods_as_other() {
        let metrics = Metrics::default();
        let config = HttpConfig {
            request_timeout: Duration::from_secs(5),
            body_limit: 16,
            allowed_origins: Vec::new(),
        };
        let seen = metrics.clone();
        // The handler reads the metrics while its own request is being served.
        let routes = Router::new().route("/seen", get(|| async move { seen.encode().await }));
        let app = with_middleware(routes, &config, &metrics);
        let response = app
            .clone()
            .oneshot(Request::get("/seen").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let request = Request::builder()
            .method(Method::from_bytes(b"BREW").unwrap())
            .uri("/pot")
            .body(Body::empty())
            .unwrap();
        app.oneshot(request).await.unwrap();

        let during = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let during = String::from_utf8(during.to_vec()).unwrap();
        let after = metrics.encode().await;

        assert!(during.contains("http_requests_in_flight 1\n"), "{during}");
        assert!(after.contains("http_requests_in_flight 0\n"), "{after}");
        assert!(
            after.contains(
                r#"http_requests_total{method="OTHER",route="unmatched",status="404"} 1"#
            ),
            "{after}"
        );
    }

    #[tokio::test]
    async fn sets_a_request_id_when_there_is_none() {
        let response = send(Request::get("/nowhere").body(Body::empty()).unwrap()).await;

        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 36, "a UUID, got {id}");
    }

    #[tokio::test]
    async fn sends_security_headers() {
        let response = send(Request::get("/nowhere").body(Body::empty()).unwrap()).await;

        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
    }

    #[tokio::test]
    async fn allows_only_the_configured_origins() {
        let preflight = |origin: &'static str| {
            Request::options("/echo")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .body(Body::empty())
                .unwrap()
        };

        let allowed = send(preflight("https://app.example.com")).await;
        let other = send(preflight("https://evil.example")).await;

        assert_eq!(
            allowed.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(
            allowed.headers()["access-control-allow-credentials"],
            "true"
        );
        assert!(!other.headers().contains_key("access-control-allow-origin"));
    }

    #[tokio::test]
    async fn times_out_slow_requests() {
        let response = send(Request::get("/slow").body(Body::empty()).unwrap()).await;

        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn rejects_bodies_over_the_limit() {
        let request = Request::post("/echo")
            .body(Body::from("x".repeat(17)))
            .unwrap();

        let response = send(request).await;

        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
