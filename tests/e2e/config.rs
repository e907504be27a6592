//! Configuration that keeps one service's trust from leaking into another, production start-up
//! refusing secrets anyone can know, and TLS to the database and Redis (docs/architecture.md,
//! "Configuration" and "TLS to the database and Redis").

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};

use crate::api::launch_with_test_settings;
use crate::client::Instance;
use crate::support::{
    Database, Service, default_workspace, get, service_binary, shared_target_dir,
};

const APP_ORIGIN: &str = "https://app.example.com";

/// A fresh random signing key (32 bytes, base64url), known to this test only.
const FRESH_SIGNING_KEY: &str = "q7Zt0bX4mVd9L2sKfYc8HwN1eRj5GuPa3oTiExQnW6k";

/// The origin a CORS preflight from `origin` is allowed for, if any.
fn preflight(instance: &Instance, origin: &str) -> Option<String> {
    let reply = instance
        .call("OPTIONS", "/api/auth/login")
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .send();
    reply
        .header("access-control-allow-origin")
        .map(str::to_string)
}

#[test]
fn each_service_trusts_only_the_origins_of_its_own_key() {
    let db = Database::sqlite();
    // The api's key set for every service, as one shared .env would: only the api reads it.
    let env = [("API_CORS_ALLOWED_ORIGINS", APP_ORIGIN)];
    let api = launch_with_test_settings("api", &db, &env);
    let admin = launch_with_test_settings("admin", &db, &env);
    let webhooks = launch_with_test_settings("webhooks", &db, &env);

    assert_eq!(preflight(&api, APP_ORIGIN).as_deref(), Some(APP_ORIGIN));
    assert_eq!(
        preflight(&admin, APP_ORIGIN),
        None,
        "the admin service allows none by default"
    );
    assert_eq!(preflight(&webhooks, APP_ORIGIN), None);

    // The admin service's own key is what makes it trust an origin.
    let staff_origin = "https://staff.example.com";
    let admin = launch_with_test_settings(
        "admin",
        &db,
        &[("ADMIN_CORS_ALLOWED_ORIGINS", staff_origin)],
    );
    assert_eq!(
        preflight(&admin, staff_origin).as_deref(),
        Some(staff_origin)
    );
    assert_eq!(preflight(&admin, APP_ORIGIN), None);
}

/// Runs service `name` of the default workspace (so with its `.env`) with `env` on top until it
/// exits, which it must do at start: its error output.
fn refused_start(name: &str, env: &[(&str, &str)]) -> String {
    refused_start_of(&service_binary(name), env)
}

/// [`refused_start`] of the service binary at `binary`.
fn refused_start_of(binary: &Path, env: &[(&str, &str)]) -> String {
    let name = binary.file_name().unwrap().to_string_lossy().into_owned();
    let mut command = Command::new(binary);
    command
        .current_dir(default_workspace())
        // A port that cannot be bound: a service that wrongly starts fails there, and says so.
        .env(format!("{}_ADDR", name.to_uppercase()), "192.0.2.1:1")
        .env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("the service binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{name} started: {stderr}");
    stderr
}

/// [`refused_start`], which must stop at the configuration check.
fn refused_configuration(name: &str, env: &[(&str, &str)]) -> String {
    let stderr = refused_start(name, env);
    assert!(
        stderr.contains("invalid configuration"),
        "{name} must stop at its configuration: {stderr}"
    );
    stderr
}

#[test]
fn a_leftover_shared_cors_key_stops_every_service_naming_its_own_key() {
    for (name, key) in [
        ("api", "API_CORS_ALLOWED_ORIGINS"),
        ("admin", "ADMIN_CORS_ALLOWED_ORIGINS"),
        ("webhooks", "WEBHOOKS_CORS_ALLOWED_ORIGINS"),
    ] {
        let stderr = refused_configuration(name, &[("CORS_ALLOWED_ORIGINS", APP_ORIGIN)]);
        assert!(
            stderr.contains("CORS_ALLOWED_ORIGINS is no longer read") && stderr.contains(key),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn production_refuses_the_secrets_of_a_seeded_workspace_and_placeholders() {
    // The default workspace of these tests is generated with SAASKIT_SEED, like the example.
    let env = std::fs::read_to_string(default_workspace().join(".env")).unwrap();
    assert!(env.contains("AUTH_SIGNING_KEY=PUBLIC-TEST-SEED"), "{env}");

    // An empty APP_ENV is unset, which means production.
    for app_env in ["production", ""] {
        let stderr = refused_configuration("api", &[("APP_ENV", app_env)]);
        assert!(
            stderr
                .contains("AUTH_SIGNING_KEY holds a test value saaskit derived from a public seed"),
            "APP_ENV={app_env:?}: {stderr}"
        );
        assert!(stderr.contains("APP_ENV=development"), "{stderr}");
        // Mail would otherwise go to the development outbox, which nobody reads in production.
        assert!(stderr.contains("SMTP_URL is not set"), "{stderr}");
    }
    let stderr = refused_configuration("webhooks", &[("APP_ENV", "production")]);
    for key in ["STRIPE_WEBHOOK_SECRETS", "WEBHOOKS_OPERATIONS_API_KEY"] {
        assert!(
            stderr.contains(&format!("{key} holds a test value")),
            "{stderr}"
        );
    }
    assert!(
        !stderr.contains("PUBLIC-TEST-SEED"),
        "values stay out of messages: {stderr}"
    );

    let placeholder = "A".repeat(43);
    let stderr = refused_configuration(
        "admin",
        &[
            ("APP_ENV", "production"),
            ("AUTH_SIGNING_KEY", &placeholder),
        ],
    );
    assert!(
        stderr.contains("AUTH_SIGNING_KEY holds a placeholder"),
        "{stderr}"
    );

    // With a fresh key, production starts; development accepts the seeded one.
    let db = Database::sqlite();
    let production = launch_with_test_settings(
        "api",
        &db,
        &[
            ("APP_ENV", "production"),
            ("AUTH_SIGNING_KEY", FRESH_SIGNING_KEY),
            // Not connected to at start: messages would wait in the queue.
            ("SMTP_URL", "smtp://127.0.0.1:25"),
        ],
    );
    production.get("/readyz").send().expect(200);
    let seeded = env
        .lines()
        .find_map(|line| line.strip_prefix("AUTH_SIGNING_KEY="))
        .unwrap();
    let development = launch_with_test_settings(
        "api",
        &db,
        &[("APP_ENV", "development"), ("AUTH_SIGNING_KEY", seeded)],
    );
    development.get("/readyz").send().expect(200);
}

// ---------------------------------------------------------------------------------------------
// TLS to the database and Redis

#[test]
fn a_build_without_tls_refuses_tls_urls_at_start_saying_how_to_enable_it() {
    for (key, url) in [
        (
            "DATABASE_URL",
            "postgres://postgres@localhost:5432/app?sslmode=verify-full",
        ),
        (
            "DATABASE_URL",
            "postgres://postgres@localhost:5432/app?sslmode=require",
        ),
        ("RATE_LIMIT_REDIS_URL", "rediss://127.0.0.1:6380"),
    ] {
        let stderr = refused_configuration("api", &[(key, url)]);
        assert!(
            stderr.contains(&format!("{key} asks for TLS, which this build leaves out"))
                && stderr.contains("--features tls"),
            "{url}: {stderr}"
        );
    }
}

/// The binary of service `name` of the default workspace built with the `tls` feature. Built
/// beside the default binaries (which other tests run meanwhile), sharing their compiled
/// dependencies: only what the feature changes is compiled again.
fn tls_binary(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let target = shared_target_dir().with_file_name("generated-workspaces-tls");
        let output = Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--features", "tls"])
            .current_dir(default_workspace())
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_BUILD_BUILD_DIR", shared_target_dir())
            .env_remove("RUSTFLAGS")
            .output()
            .expect("cargo runs");
        assert!(
            output.status.success(),
            "`cargo build --features tls` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("debug")
    });
    dir.join(name)
}

/// The local cluster's certificate: the distribution's self-signed "snakeoil" one, for
/// `localhost`, which no system root signs.
const CLUSTER_CERTIFICATE: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// `database`'s URL over `localhost` (the name in the cluster's certificate) with `query`.
fn tls_url(database: &Database, query: &str) -> String {
    format!(
        "{}?{query}",
        database.url().replace("127.0.0.1", "localhost")
    )
}

/// The system's roots as rustls-native-certs reads them, without the directory where the
/// distribution also keeps its snakeoil certificate.
fn system_roots_only(dir: &Path) -> [(&'static str, String); 2] {
    [
        (
            "SSL_CERT_FILE",
            "/etc/ssl/certs/ca-certificates.crt".to_string(),
        ),
        ("SSL_CERT_DIR", dir.display().to_string()),
    ]
}

#[test]
fn verify_full_connects_over_tls_to_a_trusted_server_and_refuses_an_untrusted_one() {
    let database = Database::postgres();
    assert_eq!(
        database.query_value("SHOW ssl"),
        "on",
        "the test cluster serves TLS with {CLUSTER_CERTIFICATE}"
    );
    let binary = tls_binary("api");

    // Trusted through `sslrootcert`: the api starts, migrates and is ready, over TLS (the
    // cluster's own view of the connections shows it).
    let trusted = tls_url(
        &database,
        &format!("sslmode=verify-full&sslrootcert={CLUSTER_CERTIFICATE}"),
    );
    let api = Service::start_binary(&binary, &[("DATABASE_URL", &trusted)]);
    let (status, body) = get(api.port, "/readyz").unwrap();
    assert_eq!(status, 200, "{body}");
    let name = database.url().rsplit('/').next().unwrap().to_string();
    let encrypted = database.query_value(&format!(
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = '{name}'"
    ));
    drop(api);
    assert_eq!(encrypted, "t", "every connection of the api is encrypted");

    // Trusted by nothing: refused, naming the certificate problem.
    let roots = tempfile::tempdir().unwrap();
    let mut env = vec![("DATABASE_URL", tls_url(&database, "sslmode=verify-full"))];
    env.extend(system_roots_only(roots.path()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stderr = refused_start_of(&binary, &env);
    assert!(
        stderr.contains("certificate") && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
}

/// A server on a free port that answers each connection `reply` after reading its first `len`
/// bytes, and sends the bytes of each connection on the returned channel. It serves until the
/// test binary exits: the client may try again after a failure.
fn recording_server(len: usize, reply: &'static [u8]) -> (u16, Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut received = vec![0; len];
            if stream.read_exact(&mut received).is_ok() {
                let _ = stream.write_all(reply);
                let _ = sender.send(received);
            }
        }
    });
    (port, receiver)
}

#[test]
fn verify_full_asks_for_tls_and_refuses_a_server_without_it() {
    // A PostgreSQL server's answer to the client's SSLRequest when it has no TLS: `N`.
    let (port, server) = recording_server(8, b"N");
    // 127.0.0.1, where the server listens (`localhost` may be tried as ::1 first).
    let url = format!("postgres://postgres@127.0.0.1:{port}/app?sslmode=verify-full");

    let stderr = refused_start_of(&tls_binary("api"), &[("DATABASE_URL", &url)]);

    // Length 8, then the SSLRequest code 80877103: the first thing the client sent.
    assert_eq!(server.recv().unwrap(), [0, 0, 0, 8, 4, 210, 22, 47]);
    assert!(stderr.contains("server does not support TLS"), "{stderr}");
}

#[test]
fn rediss_starts_a_tls_handshake() {
    let (port, server) = recording_server(1, b"");
    let url = format!("rediss://127.0.0.1:{port}");

    let stderr = refused_start_of(&tls_binary("api"), &[("RATE_LIMIT_REDIS_URL", &url)]);

    // 0x16: a TLS handshake record, the ClientHello.
    assert_eq!(server.recv().unwrap(), [0x16], "{stderr}");
}
