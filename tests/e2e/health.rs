//! The generated workspace is real code: it is rustfmt-clean and clippy-clean with `-D warnings`
//! as generated, it builds, its own tests pass, and every service starts on a free port against
//! SQLite and against PostgreSQL, answers `/healthz` and `/readyz`, and stops gracefully on
//! SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    PgDatabase, Service, default_workspace, free_port, fresh_workspace, get, header, lint,
    service_binary,
};

#[test]
fn every_service_answers_health_and_readiness_on_sqlite() {
    for name in ["api", "admin", "webhooks"] {
        let service = Service::start(name, &[]);
        let (status, body) = get(service.port, "/readyz").unwrap();
        assert_eq!(status, 200, "{name} /readyz: {body}");
        assert!(
            body.contains("database"),
            "{name} /readyz names its checks: {body}"
        );
        let request_id = header(service.port, "/healthz", "x-request-id");
        assert!(
            request_id.is_some_and(|id| !id.is_empty()),
            "{name} answers with a request id"
        );
    }
    assert!(
        default_workspace().join("data").is_dir(),
        "the SQLite file lives under data/"
    );
}

#[test]
fn the_api_runs_on_postgresql_and_reports_an_unreachable_database() {
    {
        let database = PgDatabase::create();
        let service = Service::start("api", &[("DATABASE_URL", &database.url())]);
        let (status, body) = get(service.port, "/readyz").unwrap();
        assert_eq!(status, 200, "/readyz on PostgreSQL: {body}");
    }

    // Nothing listens on this port: the service may start (the pool connects lazily) or refuse
    // to; either way it must never report ready.
    let closed = format!("postgres://postgres@127.0.0.1:{}/nothing", free_port());
    let root = default_workspace();
    let port = free_port();
    let mut child = Command::new(service_binary("api"))
        .current_dir(root)
        .env("API_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &closed)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let outcome = loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            break format!("exited with {status}: {stderr}");
        }
        if let Some((status, body)) = get(port, "/readyz") {
            assert_eq!(status, 503, "an unreachable database is not ready: {body}");
            assert!(body.contains("database"), "{body}");
            break "503".to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the api neither started nor exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        outcome == "503" || outcome.contains("database"),
        "unexpected outcome: {outcome}"
    );
}

#[test]
fn sigterm_stops_a_service_gracefully() {
    let service = Service::start("api", &[]);
    let (status, stderr) = service.terminate();
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
}

#[test]
fn configuration_errors_name_every_bad_key() {
    let root = default_workspace();
    let output = Command::new(service_binary("api"))
        .current_dir(root)
        .env("API_ADDR", "not-an-address")
        .env("DATABASE_URL", "")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("API_ADDR") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
}

#[test]
fn a_workspace_without_modules_is_clippy_and_fmt_clean() {
    let root = fresh_workspace("bare", &["--yes", "--modules", ""]);
    lint(&root);
}
