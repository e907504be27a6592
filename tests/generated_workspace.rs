//! The generated workspace is real code: it is rustfmt-clean and clippy-clean with `-D warnings`
//! as generated, it builds, its own tests pass, and every service starts on a free port against SQLite and against
//! PostgreSQL, answers `/healthz` and `/readyz`, and stops gracefully on SIGTERM.
//!
//! All generated workspaces share one Cargo target directory (`target/generated-workspaces`), so
//! their dependencies are compiled once per machine.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::saaskit;

fn shared_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("generated-workspaces")
}

/// Generates workspace `name` with `args` into a fresh directory under the test tmpdir.
fn fresh_workspace(name: &str, args: &[&str]) -> PathBuf {
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("e2e")
        .join(name);
    let _ = std::fs::remove_dir_all(&parent);
    std::fs::create_dir_all(&parent).unwrap();
    saaskit(&parent)
        .arg("new")
        .arg(name)
        .args(args)
        .assert()
        .success();
    parent.join(name)
}

fn cargo(root: &Path, args: &[&str]) {
    let output = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "`cargo {}` failed in {}:\n{}{}",
        args.join(" "),
        root.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// rustfmt-clean and clippy-clean with `-D warnings`, as generated.
fn lint(root: &Path) {
    cargo(root, &["fmt", "--all", "--", "--check"]);
    cargo(
        root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    );
}

/// The default workspace, generated, checked and built once for all tests of this file.
fn default_workspace() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = fresh_workspace("acme", &["--yes"]);
        lint(&root);
        cargo(&root, &["build", "--workspace"]);
        // The generated crates come with unit tests of their own (config, errors, middleware, db).
        cargo(&root, &["test", "--workspace", "--quiet"]);
        root
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A service binary of the default workspace running on a free port; killed when dropped.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start(name: &str, extra_env: &[(&str, &str)]) -> Service {
        let root = default_workspace();
        let port = free_port();
        let binary = shared_target_dir().join("debug").join(name);
        let mut command = Command::new(binary);
        command
            .current_dir(root)
            .env(
                format!("{}_ADDR", name.to_uppercase()),
                format!("127.0.0.1:{port}"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let service = Service {
            child: command.spawn().expect("the service binary starts"),
            port,
        };
        service.wait_until_alive();
        service
    }

    fn wait_until_alive(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if get(self.port, "/healthz").is_some_and(|(status, _)| status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "service on port {} did not answer /healthz within 30 s",
            self.port
        );
    }

    /// Sends SIGTERM and returns the exit status and what the service wrote to stderr.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                return (status, stderr);
            }
            assert!(
                Instant::now() < deadline,
                "the service ignored SIGTERM for 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET: status code and body, or None when nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn header(port: u16, path: &str, name: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, _) = response.split_once("\r\n\r\n")?;
    head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    })
}

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
    let database = format!("saaskit_e2e_{}", std::process::id());
    let psql = |sql: &str| {
        let status = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                sql,
            ])
            .status()
            .expect("psql is installed (.ci/run installs and starts PostgreSQL)");
        assert!(
            status.success(),
            "psql `{sql}` failed: is PostgreSQL running on 127.0.0.1:5432?"
        );
    };
    psql(&format!("CREATE DATABASE {database}"));
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    {
        let service = Service::start("api", &[("DATABASE_URL", &url)]);
        let (status, body) = get(service.port, "/readyz").unwrap();
        assert_eq!(status, 200, "/readyz on PostgreSQL: {body}");
    }
    psql(&format!("DROP DATABASE {database} WITH (FORCE)"));

    // Nothing listens on this port: the service may start (the pool connects lazily) or refuse
    // to; either way it must never report ready.
    let closed = format!("postgres://postgres@127.0.0.1:{}/nothing", free_port());
    let root = default_workspace();
    let port = free_port();
    let mut child = Command::new(shared_target_dir().join("debug/api"))
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
    let output = Command::new(shared_target_dir().join("debug/api"))
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
