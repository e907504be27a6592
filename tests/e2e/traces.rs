//! OpenTelemetry traces (module `observability/otel`, docs/observability.md): a workspace with
//! the module added exports its services' spans over OTLP/HTTP to a real receiver
//! (`tests/otlp/receiver.py`, which decodes them with the OpenTelemetry project's own protobuf
//! definitions, the `opentelemetry-proto` package `.ci/run` installs). The request span carries
//! the service's name, the route, the request id and the user; it continues the trace of the
//! caller's `traceparent`; the last spans are sent when the service stops.
//!
//! On SQLite only: the export does not touch the database (the request span is the same on
//! PostgreSQL, which the other tests of the services cover).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{launch_in_with_test_settings, register, str_of};
use crate::common::saaskit;
use crate::order::build;
use crate::support::{Database, free_port, fresh_workspace, lint, python_server};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN_ID: &str = "b7ad6b7169203331";

#[test]
fn services_export_request_spans_that_continue_the_callers_trace() {
    let (root, binaries) = traced_workspace();
    let receiver = Receiver::start();
    let db = Database::sqlite();
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let otel = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let mut api = launch_in_with_test_settings(root, &binaries.join("api"), "api", &db, &otel);
    let mut admin =
        launch_in_with_test_settings(root, &binaries.join("admin"), "admin", &db, &otel);

    let user = register(&api, "traced@example.com");
    let user_id = str_of(&user.user["id"]).to_string();
    let me = api
        .get("/api/auth/me")
        .bearer(&user.access)
        .header("traceparent", &format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .header("X-Request-Id", "e2e-traced-me")
        .send()
        .expect(200);
    assert_eq!(me.header("x-request-id"), Some("e2e-traced-me"));
    // Without a traceparent: a trace of its own.
    api.get("/healthz")
        .header("X-Request-Id", "e2e-root")
        .send()
        .expect(200);
    // The caller did not sample its trace: the default sampler (parent-based) records nothing.
    let unsampled = "1bf7651916cd43dd8448eb211c80319c";
    api.get("/healthz")
        .header(
            "traceparent",
            &format!("00-{unsampled}-{CALLER_SPAN_ID}-00"),
        )
        .send()
        .expect(200);
    // The same trace reaching a second service, as a call from the api would.
    let admin_parent = "c7ad6b7169203332";
    admin
        .get("/healthz")
        .header("traceparent", &format!("00-{TRACE_ID}-{admin_parent}-01"))
        .header("X-Request-Id", "e2e-traced-admin")
        .send()
        .expect(200);

    // The batches go every 5 s; stopping sends what is left at once, which is what is checked.
    let (api_status, api_logs) = api.service.stop();
    let (admin_status, admin_logs) = admin.service.stop();
    assert!(api_status.success(), "{api_logs}");
    assert!(admin_status.success(), "{admin_logs}");
    let spans = receiver.spans_until(|spans| {
        find(spans, "e2e-traced-me").is_some() && find(spans, "e2e-traced-admin").is_some()
    });

    let me = find(&spans, "e2e-traced-me").expect("the /me request span");
    assert_eq!(me["service"], "api", "{me}");
    assert_eq!(me["name"], "request", "{me}");
    assert_eq!(me["trace_id"], TRACE_ID, "{me}");
    assert_eq!(me["parent_span_id"], CALLER_SPAN_ID, "{me}");
    assert_eq!(me["attributes"]["route"], "/api/auth/me", "{me}");
    assert_eq!(me["attributes"]["method"], "GET", "{me}");
    assert_eq!(me["attributes"]["user_id"], user_id.as_str(), "{me}");

    let root_span = find(&spans, "e2e-root").expect("the span of a request without traceparent");
    assert_eq!(root_span["parent_span_id"], "", "{root_span}");
    assert_ne!(root_span["trace_id"], TRACE_ID, "{root_span}");
    assert_eq!(root_span["attributes"]["route"], "/healthz", "{root_span}");

    assert!(
        !spans.iter().any(|span| span["trace_id"] == unsampled),
        "a trace its caller did not sample was exported: {spans:?}"
    );

    let admin = find(&spans, "e2e-traced-admin").expect("the admin's request span");
    assert_eq!(admin["service"], "admin", "{admin}");
    assert_eq!(admin["trace_id"], TRACE_ID, "{admin}");
    assert_eq!(admin["parent_span_id"], admin_parent, "{admin}");
}

/// A bad endpoint stops start-up with the key's name, before anything is served.
#[test]
fn a_bad_endpoint_is_named_at_start() {
    let (root, binaries) = traced_workspace();
    let output = Command::new(binaries.join("api"))
        .current_dir(root)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
        .env("API_ADDR", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT is invalid: expected an http:// URL"),
        "{stderr}"
    );
}

/// The request span of the request whose id is `request_id`.
fn find<'a>(spans: &'a [Value], request_id: &str) -> Option<&'a Value> {
    spans
        .iter()
        .find(|span| span["name"] == "request" && span["attributes"]["request_id"] == request_id)
}

/// The default workspace with `observability/otel` added (as a user adds it), fmt- and
/// clippy-clean, with its api and admin built; once for the tests of this file.
fn traced_workspace() -> (&'static Path, &'static Path) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (root, binaries) = BUILT.get_or_init(|| {
        let root = fresh_workspace("traced", &["--yes"]);
        saaskit(&root)
            .args(["add", "observability/otel"])
            .assert()
            .success();
        lint(&root);
        let binaries = build(&root, "traced", &["api", "admin"]);
        (root, binaries)
    });
    (root, binaries)
}

/// The OTLP receiver of a test; stopped when dropped.
struct Receiver {
    port: u16,
    child: Child,
}

impl Receiver {
    fn start() -> Receiver {
        let port = free_port();
        let child = python_server(
            "otlp/receiver.py",
            &[port.to_string().as_ref()],
            "`pip install opentelemetry-proto` (.ci/run installs it)",
        );
        Receiver { port, child }
    }

    /// The spans received, once `done` says they are all there (or after 30 s, for the
    /// assertions to say what is missing).
    fn spans_until(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans: Vec<Value> = ureq::get(format!("http://127.0.0.1:{}/spans", self.port))
                .call()
                .unwrap()
                .body_mut()
                .read_json()
                .unwrap();
            if done(&spans) || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
