//! What operators see of the services (docs/observability.md): JSON log lines that carry the
//! request id returned to the client, the route, the status, the latency and the user, and never a
//! secret; and `/metrics` on a listener of its own, read with the Prometheus project's own
//! parser (the `prometheus_client` Python package, which `.ci/run` installs), its counts
//! matching the requests sent.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::admin::{PanelSession, create_staff, staff_token, start_admin};
use crate::api::{
    Api, KEY, PASSWORD, launch_with_test_settings, login_as, now, register, seed, str_of,
};
use crate::client::Reply;
use crate::support::{Database, free_port, get};
use crate::webhooks::{SECRET, event_body, header, start_webhooks};

const JSON_LOGS: (&str, &str) = ("LOG_FORMAT", "json");

/// A whole flow through the three services with JSON logs: register, login, `/me` with a Bearer
/// token and with the cookie, refresh, logout, a signed webhook, a staff token and a panel
/// sign-in. No log line holds a password, token, cookie, signature or key used; every line
/// parses; each response's request id is on the lines of its request, with the matched route,
/// the status, the latency and, once authenticated, the user's id.
#[test]
fn json_logs_carry_the_request_id_and_never_a_secret() {
    let db = Database::sqlite();
    let api = Api::start(&db, &[JSON_LOGS]);
    let webhooks = start_webhooks(&db, &[JSON_LOGS]);
    let admin = start_admin(&db, &[JSON_LOGS]);
    let mut secrets = vec![PASSWORD.to_string(), seed(KEY), SECRET.to_string()];
    let mut requests: Vec<(Reply, Option<String>)> = Vec::new();

    let registered = register(&api, "logs@example.com");
    let user_id = str_of(&registered.user["id"]).to_string();
    let session = login_as(&api, "logs@example.com", PASSWORD);
    for credentials in [&registered, &session] {
        secrets.push(credentials.access.clone());
        secrets.push(credentials.refresh_token().to_string());
        secrets.push(cookie_value(credentials.cookie_pair()));
    }
    // A caller's id is kept; a request without one gets one made.
    let me = api
        .get("/api/auth/me")
        .bearer(&session.access)
        .header("X-Request-Id", "e2e-me.bearer:1")
        .send()
        .expect(200);
    assert_eq!(me.header("x-request-id"), Some("e2e-me.bearer:1"));
    requests.push((me, Some(user_id.clone())));
    let me = api
        .get("/api/auth/me")
        .cookie(session.cookie_pair())
        .send()
        .expect(200);
    requests.push((me, Some(user_id.clone())));
    // An id unsafe to log (a line break would forge lines) is replaced.
    let forged = api
        .get("/api/auth/me")
        .bearer(&session.access)
        .header("X-Request-Id", "x\",\"level\":\"ERROR")
        .send()
        .expect(200);
    assert_ne!(forged.header("x-request-id"), Some("x\",\"level\":\"ERROR"));
    requests.push((forged, Some(user_id.clone())));

    let refreshed = api
        .post("/api/auth/refresh")
        .json(json!({"refresh_token": session.refresh_token()}))
        .send()
        .expect(200);
    let tokens = refreshed.json();
    secrets.push(str_of(&tokens["access_token"]).to_string());
    secrets.push(str_of(&tokens["refresh_token"]).to_string());
    requests.push((refreshed, None));
    let logout = api
        .post("/api/auth/logout")
        .bearer(str_of(&tokens["access_token"]))
        .send()
        .expect(204);
    // Logout reads the credentials itself, without the extractor that records the user.
    requests.push((logout, None));

    let event = event_body(
        "evt_logs_1",
        "customer.created",
        now(),
        json!({"id": "cus_logs"}),
    );
    let signature = header(SECRET, now(), &event);
    secrets.push(signature.clone());
    let delivered = webhooks
        .post("/api/webhooks/stripe")
        .header("Content-Type", "application/json")
        .header("Stripe-Signature", &signature)
        .raw_body(&event)
        .send();
    assert!(delivered.status < 300, "{delivered}");
    requests.push((delivered, None));

    create_staff(&db, "root@example.com", "admin").expect("the admin is created");
    let staff = staff_token(&admin, "root@example.com", PASSWORD).expect_json(201);
    secrets.push(str_of(&staff["access_token"]).to_string());
    let panel = PanelSession::sign_in(&admin, "root@example.com");
    secrets.push(cookie_value(&panel.cookie));
    secrets.push(panel.csrf.clone());

    // Every response's `answered` line is in, whichever service logged it.
    let ids: Vec<&str> = (requests.iter())
        .filter_map(|(reply, _)| reply.header("x-request-id"))
        .collect();
    api.service.logs_once(|logs| {
        let all = format!("{logs}{}{}", webhooks.service.logs(), admin.service.logs());
        ids.iter().all(|id| all.contains(id))
    });
    let mut lines = Vec::new();
    for (name, instance) in [("api", &api), ("webhooks", &webhooks), ("admin", &admin)] {
        let logs = instance.service.logs();
        for secret in &secrets {
            // The end too, for a secret logged cut short (a token's signature is its end).
            let tail = &secret[secret.len().saturating_sub(12)..];
            assert!(
                !logs.contains(secret.as_str()) && !logs.contains(tail),
                "the {name} service logged a secret ({tail}):\n{logs}"
            );
        }
        for line in logs.lines() {
            let parsed: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("a {name} log line is not JSON ({error}): {line}"));
            if let Some(span) = parsed.get("span").filter(|span| span["name"] == "request") {
                assert!(
                    span["request_id"].as_str().is_some_and(|id| !id.is_empty()),
                    "a request's line without its id: {line}"
                );
                assert!(
                    span["route"]
                        .as_str()
                        .is_some_and(|route| !route.contains("logs")),
                    "a request's line names its route, not its path: {line}"
                );
            }
            lines.push(parsed);
        }
    }

    for (reply, user) in &requests {
        let id = reply
            .header("x-request-id")
            .expect("every response has a request id");
        let answered = lines
            .iter()
            .find(|line| {
                line["span"]["request_id"] == id && line["fields"]["message"] == "answered"
            })
            .unwrap_or_else(|| panic!("no `answered` line with request id {id} for {reply}"));
        assert_eq!(answered["fields"]["status"], reply.status, "{answered}");
        assert!(
            answered["fields"]["latency_ms"].as_f64().is_some(),
            "{answered}"
        );
        let (method, path) = reply.request.split_once(' ').unwrap();
        assert_eq!(answered["span"]["method"], method, "{answered}");
        assert_eq!(answered["span"]["route"], path, "{answered}");
        if let Some(user) = user {
            assert_eq!(answered["span"]["user_id"], user.as_str(), "{answered}");
        }
    }
}

/// `/metrics` is served on `API_METRICS_ADDR` only, and after traffic the Prometheus parser reads
/// the request counts and latency histogram by method, route and status, the requests in flight,
/// the rate limit's refusals, the database pool, the job queue and the password hashing queue.
#[test]
fn metrics_count_the_requests_sent_on_their_own_listener() {
    let db = Database::sqlite();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let api = launch_with_test_settings(
        "api",
        &db,
        &[
            ("API_METRICS_ADDR", metrics_addr.as_str()),
            ("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", "3"),
        ],
    );
    let session = register(&api, "metrics@example.com");
    for _ in 0..4 {
        api.get("/api/auth/me")
            .bearer(&session.access)
            .send()
            .expect(200);
    }
    for _ in 0..3 {
        api.get("/api/auth/me").send().expect(401);
    }
    for path in ["/nowhere", "/api/auth/me/123", "/wp-login.php"] {
        api.get(path).send().expect(404);
    }
    // The registration took one of the 3 sign-ins a minute: 2 more pass (401), 3 are refused.
    let statuses: Vec<u16> = (0..5)
        .map(|_| {
            api.post("/api/auth/login")
                .json(json!({"email": "metrics@example.com", "password": "wrong password"}))
                .send()
                .status
        })
        .collect();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert!(refused >= 1, "the limit refused none: {statuses:?}");

    let (status, _) = get(api.service.port, "/metrics").unwrap();
    assert_eq!(status, 404, "/metrics is not on the public address");
    let text = scrape(metrics_port);
    let samples = parse(&text);

    let sample = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        samples
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, value)| *value)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{text}"))
    };
    let me = |status: &'static str| request_labels("GET", "/api/auth/me", status);
    assert_eq!(sample("http_requests_total", &me("200")), 4.0);
    assert_eq!(sample("http_requests_total", &me("401")), 3.0);
    assert_eq!(
        sample("http_request_duration_seconds_count", &me("200")),
        4.0
    );
    let bucket = [
        ("method", "GET"),
        ("route", "/api/auth/me"),
        ("status", "200"),
        ("le", "+Inf"),
    ];
    assert_eq!(sample("http_request_duration_seconds_bucket", &bucket), 4.0);
    // The three paths above, and /metrics asked of the public address.
    let unmatched = request_labels("GET", "unmatched", "404");
    assert_eq!(sample("http_requests_total", &unmatched), 4.0);
    let refused_logins = request_labels("POST", "/api/auth/login", "429");
    assert_eq!(
        sample("http_requests_total", &refused_logins),
        refused as f64
    );
    let refusals: f64 = samples
        .iter()
        .filter(|(name, _, _)| name == "rate_limit_refusals_total")
        .map(|(_, _, value)| value)
        .sum();
    assert_eq!(refusals, refused as f64, "{text}");
    // The scrape is not a request of the service: nothing is in flight.
    assert_eq!(sample("http_requests_in_flight", &[]), 0.0);
    let idle = sample("db_pool_connections", &[("state", "idle")]);
    let in_use = sample("db_pool_connections", &[("state", "in_use")]);
    assert!(idle + in_use >= 1.0, "the pool holds a connection: {text}");
    assert_eq!(sample("password_hashing_queue_depth", &[]), 0.0);
    assert!(
        samples.iter().any(|(name, _, _)| name == "job_queue_jobs"),
        "the registration's verification email is a job: {text}"
    );
    for path in ["/nowhere", "/wp-login.php", "/api/auth/me/123"] {
        assert!(
            !text.contains(path),
            "a raw path in a label: {path}\n{text}"
        );
    }

    // The text logs carry the request id too, on the request's span.
    let id = api
        .get("/api/auth/me")
        .header("X-Request-Id", "e2e-text-log")
        .send()
        .header("x-request-id")
        .map(str::to_string);
    assert_eq!(id.as_deref(), Some("e2e-text-log"));
    let answered = |logs: &str| {
        logs.lines().any(|line| {
            line.contains("request_id=e2e-text-log")
                && line.contains("route=/api/auth/me")
                && line.contains("status=401")
        })
    };
    let logs = api.service.logs_once(answered);
    assert!(answered(&logs), "{logs}");
}

/// The labels of a request's series.
fn request_labels(
    method: &'static str,
    route: &'static str,
    status: &'static str,
) -> [(&'static str, &'static str); 3] {
    [("method", method), ("route", route), ("status", status)]
}

/// The value of a `name=value` cookie pair.
fn cookie_value(pair: &str) -> String {
    pair.split_once('=')
        .map_or(pair, |(_, value)| value)
        .to_string()
}

/// `GET /metrics` on the metrics listener; checks its content type.
fn scrape(port: u16) -> String {
    let response =
        crate::common::raw_http_get(port, "/metrics").expect("the metrics listener answers");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    body.to_string()
}

/// Every sample of `text` as the Prometheus project's parser reads it: name, labels, value.
/// The OpenMetrics parser, which refuses what Prometheus would not scrape (no `# EOF`, a counter
/// sample without `_total`, a malformed label).
fn parse(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    const SCRIPT: &str = "\
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append([sample.name, sample.labels, sample.value])
print(json.dumps(samples))
";
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Prometheus parser refused the metrics (pip install prometheus_client if it is \
         missing):\n{}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&output.stdout).unwrap();
    samples
}
