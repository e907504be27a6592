//! Traces: every request's span, and the spans opened inside it, exported over OTLP/HTTP
//! (protobuf) to an OpenTelemetry collector; the W3C trace context (`traceparent`) taken from
//! the requests a service receives and put on the requests it sends.
//!
//! Configured by the standard `OTEL_*` keys (see docs/observability.md). The spans are the
//! `tracing` spans the services already log in, so the request span's `request_id`, `method`,
//! `route` and `user_id` are the exported span's attributes: nothing is instrumented twice.

use std::str::FromStr;
use std::task::{Context, Poll};

use axum::http::{HeaderMap, Request, Uri};
use opentelemetry::context::{FutureExt, WithContext};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tower::{Layer, Service};
use tower_http::request_id::RequestId;
use tracing::Span;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::Registry;

use crate::config::Env;

/// Where an OpenTelemetry collector listens for OTLP/HTTP: the specification's default.
const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// The `tracing` layer that turns spans into OpenTelemetry spans; give it to
/// [`TelemetryConfig::with_layer`](crate::telemetry::TelemetryConfig::with_layer).
pub type TraceLayer = OpenTelemetryLayer<Registry, SdkTracer>;

/// The exporter of one service: configured from the environment, started with [`Traces::start`]
/// once the configuration is known to be good, flushed by [`Traces::shutdown`] (or when dropped,
/// so that an error return does not lose the spans that explain it).
pub struct Traces {
    config: Option<TracesConfig>,
    provider: Option<SdkTracerProvider>,
}

struct TracesConfig {
    endpoint: String,
    service_name: String,
    sampler: Sampler,
}

impl Traces {
    /// Reads the `OTEL_*` keys; `service` names the service when `OTEL_SERVICE_NAME` is unset.
    /// Bad values are recorded in `env`, which names them at `finish`.
    pub fn from_env(env: &mut Env, service: &str) -> Self {
        let disabled = env.optional("OTEL_SDK_DISABLED", false);
        // Only OTLP/HTTP with protobuf is built in: a collector set up for another protocol
        // would refuse every batch, silently for the service, so say so at start instead.
        env.optional("OTEL_EXPORTER_OTLP_PROTOCOL", HttpProtobuf);
        env.optional("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", HttpProtobuf);
        // The base URL gets the traces path appended; the traces URL is used as it is (as the
        // specification says for the two keys).
        let base: Endpoint = env.optional("OTEL_EXPORTER_OTLP_ENDPOINT", Endpoint::default());
        let unset = Endpoint(String::new());
        let Endpoint(traces) = env.optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", unset);
        let endpoint = if traces.is_empty() {
            format!("{}/v1/traces", base.0.trim_end_matches('/'))
        } else {
            traces
        };
        let service_name = env.optional("OTEL_SERVICE_NAME", service.to_owned());
        let sampler = env.optional("OTEL_TRACES_SAMPLER", SamplerName::ParentBasedAlwaysOn);
        let Ratio(ratio) = env.optional("OTEL_TRACES_SAMPLER_ARG", Ratio(1.0));
        let config = TracesConfig {
            endpoint,
            service_name,
            sampler: sampler.with_ratio(ratio),
        };
        Self {
            config: (!disabled).then_some(config),
            provider: None,
        }
    }

    /// Starts the batch exporter (a thread of its own, which sends a batch every 5 s or every
    /// 512 spans) and returns the layer that feeds it; `None` when `OTEL_SDK_DISABLED=true`.
    pub fn start(&mut self) -> Result<Option<TraceLayer>, TracesError> {
        let Some(config) = self.config.take() else {
            return Ok(None);
        };
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.endpoint)
            .build()
            .map_err(|error| TracesError(error.to_string()))?;
        let resource = Resource::builder()
            .with_service_name(config.service_name)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(config.sampler)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer(env!("CARGO_PKG_NAME"));
        self.provider = Some(provider);
        Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
    }

    /// Wraps every route of `app` so that a request's span continues the trace its caller sent
    /// in `traceparent`. Outside the whole middleware stack: the request span is made by it.
    pub fn continue_callers_trace(&self, app: axum::Router) -> axum::Router {
        if self.provider.is_some() {
            app.layer(CallersTraceLayer)
        } else {
            app
        }
    }

    /// Sends the spans not sent yet and stops the exporter. Call it after the server stopped.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "could not send the last spans to the OpenTelemetry collector");
        }
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the OpenTelemetry trace exporter: {0}")]
pub struct TracesError(String);

/// The headers a call from this request to another service carries: `traceparent` (and
/// `tracestate`) so that the callee's spans join this trace, and the request's id in
/// `X-Request-Id` so that one id follows the request through every service's logs. Take the id
/// from the request's extensions (`Extension<RequestId>`).
pub fn outgoing_headers(request_id: Option<&RequestId>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    TraceContextPropagator::new().inject_context(
        &Span::current().context(),
        &mut HeaderInjector(&mut headers),
    );
    if let Some(id) = request_id {
        headers.insert("x-request-id", id.header_value().clone());
    }
    headers
}

/// Makes the trace context of a request's `traceparent` the current OpenTelemetry context
/// while the rest of the stack runs, so that the request span made inside it is its child.
#[derive(Clone, Copy)]
struct CallersTraceLayer;

impl<S> Layer<S> for CallersTraceLayer {
    type Service = CallersTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallersTrace(inner)
    }
}

#[derive(Clone)]
struct CallersTrace<S>(S);

impl<S, B> Service<Request<B>> for CallersTrace<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    // Attached on every poll, not only in `call`: axum calls the inner stack (where the request
    // span is made) from the future's first poll.
    type Future = WithContext<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
        self.0.call(request).with_context(parent)
    }
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` or `_TRACES_ENDPOINT`: an `http://` URL with a host.
#[derive(Debug, Clone)]
struct Endpoint(String);

impl Default for Endpoint {
    fn default() -> Self {
        Self(DEFAULT_ENDPOINT.to_owned())
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let uri: Uri = value
            .parse()
            .map_err(|error| format!("not a URL ({error})"))?;
        match uri.scheme_str() {
            Some("http") => {}
            // The exporter is built without a TLS stack (it would add one to every build).
            Some("https") => {
                return Err(
                    "https is not supported: send to a collector over http on the \
                            same host or the private network (an agent or sidecar), which \
                            forwards over TLS"
                        .to_owned(),
                );
            }
            _ => {
                return Err(format!(
                    "expected an http:// URL, such as {DEFAULT_ENDPOINT}"
                ));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("expected a host, as in {DEFAULT_ENDPOINT}"));
        }
        if uri.query().is_some() {
            return Err("expected no query string".to_owned());
        }
        Ok(Self(value.to_owned()))
    }
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL`: the only one built in.
struct HttpProtobuf;

impl FromStr for HttpProtobuf {
    type Err = &'static str;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "http/protobuf" => Ok(Self),
            _ => Err("only `http/protobuf` is built in"),
        }
    }
}

/// `OTEL_TRACES_SAMPLER`, with the specification's names.
#[derive(Debug, Clone, Copy)]
enum SamplerName {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio,
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio,
}

impl SamplerName {
    fn with_ratio(self, ratio: f64) -> Sampler {
        let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::TraceIdRatio => Sampler::TraceIdRatioBased(ratio),
            Self::ParentBasedAlwaysOn => parent_based(Sampler::AlwaysOn),
            Self::ParentBasedAlwaysOff => parent_based(Sampler::AlwaysOff),
            Self::ParentBasedTraceIdRatio => parent_based(Sampler::TraceIdRatioBased(ratio)),
        }
    }
}

impl FromStr for SamplerName {
    type Err = &'static str;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::TraceIdRatio,
            "parentbased_always_on" => Self::ParentBasedAlwaysOn,
            "parentbased_always_off" => Self::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => Self::ParentBasedTraceIdRatio,
            _ => {
                return Err("expected always_on, always_off, traceidratio, \
                            parentbased_always_on, parentbased_always_off or \
                            parentbased_traceidratio");
            }
        })
    }
}

/// `OTEL_TRACES_SAMPLER_ARG`: the share of traces kept by the ratio samplers.
struct Ratio(f64);

impl FromStr for Ratio {
    type Err = &'static str;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "expected a number from 0 to 1, such as 0.25";
        let ratio: f64 = value.parse().map_err(|_| EXPECTED)?;
        if (0.0..=1.0).contains(&ratio) {
            Ok(Self(ratio))
        } else {
            Err(EXPECTED)
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    use opentelemetry::trace::TraceContextExt;
    use tower::ServiceExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

    fn traceparent(trace_id: &str, span_id: &str) -> HeaderValue {
        HeaderValue::try_from(format!("00-{trace_id}-{span_id}-01")).unwrap()
    }

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::from_vars(vars.iter().copied())
    }

    fn problems(vars: &[(&str, &str)]) -> String {
        let mut env = env(vars);
        let _ = Traces::from_env(&mut env, "api");
        env.finish()
            .map_or_else(|error| error.to_string(), |()| String::new())
    }

    #[test]
    fn names_bad_keys() {
        let bad = problems(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://collector:4318/v1/traces",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_SDK_DISABLED", "yes"),
        ]);
        for key in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_SDK_DISABLED",
        ] {
            assert!(bad.contains(key), "{key} not named in: {bad}");
        }
        assert!(bad.contains("https is not supported"), "{bad}");
    }

    #[test]
    fn appends_the_traces_path_to_the_base_endpoint_only() {
        let mut base = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]);
        let mut full = env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4318/custom",
        )]);
        let endpoint = |mut traces: Traces| traces.config.take().unwrap().endpoint;

        assert_eq!(
            endpoint(Traces::from_env(&mut base, "api")),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            endpoint(Traces::from_env(&mut full, "api")),
            "http://collector:4318/custom"
        );
        assert_eq!(
            endpoint(Traces::from_env(&mut env(&[]), "api")),
            "http://localhost:4318/v1/traces"
        );
    }

    #[test]
    fn disabled_starts_nothing() {
        let mut traces = Traces::from_env(&mut env(&[("OTEL_SDK_DISABLED", "true")]), "api");

        assert!(traces.start().unwrap().is_none());
        assert!(traces.provider.is_none());
    }

    /// A request carrying `traceparent` through the layer: the span made inside it (as the
    /// request span is) continues the caller's trace, and the headers for a call onwards carry
    /// that trace with this span as the parent, and the request's id.
    #[tokio::test]
    async fn continues_the_callers_trace_and_passes_it_on() {
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        let _default = tracing::subscriber::set_default(subscriber);

        let handler = tower::service_fn(|request: Request<Body>| async move {
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            let id = request.extensions().get::<RequestId>();
            let headers = outgoing_headers(id);
            let own_span_id = span.context().span().span_context().span_id().to_string();
            Ok::<_, std::convert::Infallible>((headers, own_span_id).into_response())
        });
        let mut request = Request::get("/")
            .header("traceparent", traceparent(TRACE_ID, PARENT_SPAN_ID))
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(RequestId::new(HeaderValue::from_static("req-1")));

        let response = CallersTraceLayer
            .layer(handler)
            .oneshot(request)
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::OK);
        let outgoing = response.headers()["traceparent"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let own_span_id = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(outgoing, format!("00-{TRACE_ID}-{own_span_id}-01"));
        assert_ne!(own_span_id, PARENT_SPAN_ID);
    }

    #[test]
    fn passes_the_request_id_on() {
        let id = RequestId::new(HeaderValue::from_static("req-7"));

        let headers = outgoing_headers(Some(&id));

        assert_eq!(headers["x-request-id"], "req-7");
    }
}
