//! How the services behave for whoever deploys them: started together on one new database they
//! all come up (one applies the migrations, the others wait for it); each binary takes `migrate`
//! for a one-shot migration job, and `DATABASE_MIGRATE_ON_START=false` leaves migrations to it;
//! each binary checks the health of the running service with `healthcheck`;
//! a client that sends its request headers too slowly is disconnected; and a start-up error is
//! reported in a few lines, without a stack backtrace (docs/architecture.md, "Operations").

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::api::on_each_database;
use crate::support::{Database, Service, default_workspace, free_port, get, service_binary};

const SERVICES: [&str; 3] = ["api", "admin", "webhooks"];

#[test]
fn services_started_together_on_a_new_database_all_come_up() {
    for round in 0..10 {
        on_each_database(|db| {
            let url = db.url();
            let barrier = Barrier::new(SERVICES.len());
            let services: Vec<Service> = std::thread::scope(|scope| {
                let starts: Vec<_> = SERVICES
                    .iter()
                    .map(|name| {
                        let (barrier, url) = (&barrier, &url);
                        scope.spawn(move || {
                            barrier.wait();
                            Service::start(name, &[("DATABASE_URL", url)])
                        })
                    })
                    .collect();
                starts
                    .into_iter()
                    .map(|start| start.join().unwrap_or_else(|_| panic!("round {round}")))
                    .collect()
            });
            for (name, service) in SERVICES.iter().zip(&services) {
                let (status, body) = get(service.port, "/readyz").unwrap();
                assert_eq!(
                    status,
                    200,
                    "{name} on {}, round {round}: {body}",
                    db.kind()
                );
            }
            // Each migration was applied once, by one of them.
            let applied = db.query_value("SELECT count(*) FROM _sqlx_migrations");
            let distinct = db.query_value("SELECT count(DISTINCT version) FROM _sqlx_migrations");
            assert_eq!(applied, distinct, "{} round {round}", db.kind());
            assert!(applied.parse::<u32>().unwrap() > 0, "{applied}");
        });
    }
}

#[test]
fn every_service_migrates_as_a_one_shot_command() {
    on_each_database(|db| {
        for name in SERVICES {
            let output = run(name, &["migrate"], &[("DATABASE_URL", &db.url())]);
            assert!(
                output.status.success(),
                "`{name} migrate` on {}: {}",
                db.kind(),
                stderr(&output)
            );
        }
        // The first applied every migration; the others found nothing to do.
        let applied = db.query_value("SELECT count(*) FROM _sqlx_migrations");
        assert!(applied.parse::<u32>().unwrap() > 0, "{applied}");
        assert_eq!(db.query_value("SELECT count(*) FROM users"), "0");

        // With migrations left to the job, the services start on the migrated database.
        let service = Service::start(
            "api",
            &[
                ("DATABASE_URL", &db.url()),
                ("DATABASE_MIGRATE_ON_START", "false"),
            ],
        );
        let (status, body) = get(service.port, "/readyz").unwrap();
        assert_eq!(status, 200, "{body}");
    });

    // An unreachable database: non-zero, and the reason.
    let closed = format!("postgres://postgres@127.0.0.1:{}/nothing", free_port());
    let output = run("webhooks", &["migrate"], &[("DATABASE_URL", &closed)]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot connect"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn without_migrations_on_start_a_new_database_stays_empty() {
    let db = Database::sqlite();
    let service = Service::start(
        "api",
        &[
            ("DATABASE_URL", &db.url()),
            ("DATABASE_MIGRATE_ON_START", "false"),
        ],
    );
    let tables = db.query_value("SELECT count(*) FROM sqlite_master WHERE type = 'table'");
    assert_eq!(tables, "0", "{}", service.logs());
}

#[test]
fn the_admin_binary_explains_its_commands() {
    let output = run("admin", &["--help"], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout.contains("migrate") && stdout.contains("create-admin"),
        "{stdout}"
    );
    let output = run("admin", &["frobnicate"], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("migrate"), "{}", stderr(&output));
}

#[test]
fn a_client_sending_its_headers_slowly_is_disconnected() {
    let service = Service::start("api", &[("HTTP_HEADER_READ_TIMEOUT_SECS", "1")]);
    let mut stream = TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .unwrap();
    // One byte of a header's value at a time, for up to a minute: far more than the limit, far
    // less than any buffer or header count limit, which would end the request for another reason.
    let deadline = Instant::now() + Duration::from_secs(60);
    let closed = loop {
        assert!(
            Instant::now() < deadline,
            "a connection still sending its headers after a minute was kept open"
        );
        if stream.write_all(b"a").is_err() {
            break "write refused".to_string();
        }
        let mut buffer = [0; 1024];
        match stream.read(&mut buffer) {
            Ok(0) => break "closed".to_string(),
            Ok(n) => break String::from_utf8_lossy(&buffer[..n]).into_owned(),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error) => break error.to_string(),
        }
    };
    assert!(
        !closed.contains("200 OK"),
        "the slow request was answered: {closed}"
    );
    // The service itself is fine.
    assert_eq!(get(service.port, "/healthz").unwrap().0, 200);
}

#[test]
fn start_up_errors_are_a_few_lines_without_a_backtrace() {
    let root = default_workspace();
    let bad_config = run("api", &[], &[("API_ADDR", "not-an-address")]);
    // The port is taken: an error of the start-up itself, after the configuration was read.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let busy = run("api", &[], &[("API_ADDR", &addr)]);
    for (case, output, expected) in [
        ("bad configuration", bad_config, "API_ADDR"),
        ("port in use", busy, &*addr),
    ] {
        let stderr = stderr(&output);
        assert!(!output.status.success(), "{case}");
        // The log goes to stdout; stderr holds the error alone.
        let lines = stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .count();
        assert!(
            stderr.contains(expected) && !stderr.to_lowercase().contains("backtrace") && lines <= 4,
            "{case} in {}:\n{stderr}",
            root.display()
        );
    }
}

/// `<service> healthcheck`, the container images' health check: 0 while the service on the
/// configured address answers `/healthz` with 200 (`0.0.0.0` probed on loopback), non-zero with
/// the reason when nothing listens there or something answers otherwise.
#[test]
fn every_service_checks_its_own_health_as_a_command() {
    for name in SERVICES {
        let db = Database::sqlite();
        let service = Service::start(name, &[("DATABASE_URL", &db.url())]);
        let addr_key = format!("{}_ADDR", name.to_uppercase());
        let addr = format!("0.0.0.0:{}", service.port);
        let output = run(name, &["healthcheck"], &[(&addr_key, &addr)]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let port = service.port;
        service.terminate();
        let output = run(name, &["healthcheck"], &[(&addr_key, &addr)]);
        assert!(!output.status.success(), "{name} on a closed port {port}");
        assert!(
            stderr(&output).contains("cannot connect"),
            "{}",
            stderr(&output)
        );
    }

    // Something else on the port, answering 503 to anything.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = [0_u8; 1024];
        let _ = stream.read(&mut head);
        let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    });
    let output = run("api", &["healthcheck"], &[("API_ADDR", &addr)]);
    server.join().unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("answered 503"),
        "{}",
        stderr(&output)
    );
}

/// Runs service binary `name` of the default workspace with `args` and `env` to its end.
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let root = default_workspace();
    let mut command = Command::new(service_binary(name));
    command
        .current_dir(root)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env(
            format!("{}_ADDR", name.to_uppercase()),
            format!("127.0.0.1:{}", free_port()),
        );
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A binary that serves instead of running its command would never end: stop waiting.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
