//! The VPS deployment (the `deploy/vps` module) for real: its systemd units pass
//! `systemd-analyze verify` with the service binaries where the units run them from, and its
//! nginx site, run by nginx in front of the services on loopback with a certificate made here,
//! carries register → login → `/me` and a signed Stripe event over HTTPS, gives the services the
//! client's address in `X-Forwarded-For` (which they count rate limits by only because they are
//! told to trust the proxy), and refuses the admin service to addresses off its allow-list.
//! A service restarted on the listening socket systemd holds for it (its `.socket` unit) loses
//! no request. The commands are those of the runbook the module writes (deploy/vps/README.md).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::admin::start_admin;
use crate::api::{PASSWORD, launch_with_test_settings, now};
use crate::common::{free_port, run_tool, saaskit};
use crate::email::wait_until;
use crate::support::{Database, Service, fresh_workspace, get, service_binary};
use crate::webhooks::{SECRET, checkout, header, start_webhooks};

const SERVICES: [&str; 3] = ["api", "admin", "webhooks"];

/// A workspace like the default one (same services, ports and modules) with `deploy/vps` added:
/// the services of the default workspace run behind its site.
fn vps_workspace() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = fresh_workspace("shop", &["--yes"]);
        saaskit(&root)
            .args(["add", "deploy/vps"])
            .assert()
            .success();
        root
    })
}

#[test]
fn the_systemd_units_verify_with_the_binaries_in_place() {
    let root = vps_workspace();
    // A file system root for systemd-analyze: the runbook's `install` steps, into it.
    let sysroot = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let units = sysroot.path().join("etc/systemd/system");
    let bin = sysroot.path().join("opt/shop/bin");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    for name in SERVICES {
        let binary = service_binary(name);
        // A link, not a copy of ~100 MB; both live under target/.
        if std::fs::hard_link(&binary, bin.join(name)).is_err() {
            std::fs::copy(&binary, bin.join(name)).unwrap();
        }
    }
    let mut unit_paths = Vec::new();
    for entry in std::fs::read_dir(root.join("deploy/vps/systemd")).unwrap() {
        let source = entry.unwrap().path();
        let target = units.join(source.file_name().unwrap());
        std::fs::copy(&source, &target).unwrap();
        unit_paths.push(target.to_string_lossy().into_owned());
    }
    // A service and a socket unit per service, and the migration unit.
    assert_eq!(unit_paths.len(), 2 * SERVICES.len() + 1, "{unit_paths:?}");
    // The units they name (network-online.target, ...) are the host's.
    let system = sysroot.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&system).unwrap();
    std::os::unix::fs::symlink("/usr/lib/systemd/system", system.join("system")).unwrap();

    let root_arg = format!("--root={}", sysroot.path().display());
    let mut args = vec!["verify", root_arg.as_str()];
    args.extend(unit_paths.iter().map(String::as_str));
    run_tool(root, "systemd-analyze", &args);

    // Without a binary, verify says so: the check looks at the binaries.
    std::fs::remove_file(bin.join("admin")).unwrap();
    let output = Command::new("systemd-analyze")
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("/opt/shop/bin/admin is not executable"),
        "{stderr}"
    );
}

/// The runbook's upgrade, as systemd runs it with the `.socket` units: the listening socket stays
/// open in systemd (here, in this test) while `systemctl restart` stops the service and starts
/// the next binary on the same socket. Requests sent all along, one connection each, are all
/// answered: those that arrive while no process runs wait in the socket's backlog and are
/// served by the next process.
#[test]
fn a_restart_on_the_socket_systemd_holds_loses_no_request() {
    const LOADERS: usize = 3;
    let db = Database::sqlite();
    let url = db.url();
    let env = [("DATABASE_URL", url.as_str())];
    // systemd's part: the socket of shop-api.socket, bound once and kept open throughout.
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let first = Service::start_on_socket("api", &socket, &env);
    assert!(
        first
            .logs()
            .contains("listening on the socket systemd passed"),
        "{}",
        first.logs()
    );

    // Clients sending requests without pause, each on a new connection (nginx opens one when
    // none of its kept-alive ones is free), counting answers and failures.
    let stop = AtomicBool::new(false);
    let answered = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let (gap_reply, second) = std::thread::scope(|scope| {
        for _ in 0..LOADERS {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    match get(port, "/readyz") {
                        Some((200, _)) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        let before = answered.load(Ordering::Relaxed);
        assert!(before > 0, "no request answered before the restart");

        // `systemctl restart shop-api`: SIGTERM, in-flight requests finish, the process exits...
        let (status, logs) = first.terminate();
        assert!(status.success(), "{status}\n{logs}");
        // ...a connection made now, while no process runs, is accepted by the kernel into the
        // socket's backlog: no refusal, and no answer yet...
        let waiting = scope.spawn(|| {
            let sent = Instant::now();
            get(port, "/healthz").map(|(status, _)| (status, sent.elapsed()))
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiting.is_finished(), "answered with no service running");
        // ...and the next binary starts on the same socket and answers it.
        let second = Service::start_on_socket("api", &socket, &env);
        let gap_reply = waiting.join().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        (gap_reply, second)
    });
    let failures = failures.into_inner().unwrap();
    let answered = answered.into_inner();
    eprintln!(
        "{answered} requests answered across the restart, {failures:?} failed; the one sent \
         while no process ran: {gap_reply:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {answered} requests failed: {failures:?}",
        failures.len()
    );
    assert_eq!(
        gap_reply.map(|(status, _)| status),
        Some(200),
        "{gap_reply:?}"
    );
    let (status, logs) = second.terminate();
    assert!(status.success(), "{status}\n{logs}");
}

/// Without `LISTEN_FDS` a service binds its address itself (every other test); with it but a
/// `LISTEN_PID` naming another process, the variables were merely inherited: the service leaves
/// the descriptor alone and binds its address.
#[test]
fn a_socket_meant_for_another_process_is_left_alone() {
    let root = crate::support::default_workspace();
    let db = Database::sqlite();
    let service = Service::start_in(
        root,
        &service_binary("api"),
        &[
            ("DATABASE_URL", &db.url()),
            ("LISTEN_FDS", "1"),
            ("LISTEN_PID", "1"),
        ],
    );
    let logs = service.logs();
    assert!(!logs.contains("socket systemd passed"), "{logs}");
    assert_eq!(
        get(service.port, "/healthz").map(|(status, _)| status),
        Some(200)
    );
}

/// nginx running the site of the workspace at `root`, on free loopback ports, in front of the
/// services on `upstreams` (name, port); stopped when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    https_port: u16,
}

impl Nginx {
    fn start(root: &Path, upstreams: &[(&str, u16)]) -> Nginx {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        // Workers run as `nobody` when the test runs as root: they read and write in here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let names = SERVICES.map(|s| format!("DNS:{s}.example.com")).join(",");
        run_tool(
            dir.path(),
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=api.example.com",
                "-addext",
                &format!("subjectAltName={names}"),
                "-keyout",
                &path("key.pem"),
                "-out",
                &path("cert.pem"),
            ],
        );
        let (https_port, http_port) = (free_port(), free_port());
        // The host's paths and ports, for this machine's: each must be in the site.
        let mut replacements = vec![
            (
                "listen 443 ssl;".to_string(),
                format!("listen 127.0.0.1:{https_port} ssl;"),
            ),
            ("listen [::]:443 ssl;".to_string(), String::new()),
            (
                "listen 80;".to_string(),
                format!("listen 127.0.0.1:{http_port};"),
            ),
            ("listen [::]:80;".to_string(), String::new()),
            (
                "/etc/letsencrypt/live/example.com/fullchain.pem".to_string(),
                path("cert.pem"),
            ),
            (
                "/etc/letsencrypt/live/example.com/privkey.pem".to_string(),
                path("key.pem"),
            ),
            (
                "/var/log/nginx/".to_string(),
                format!("{}/", dir.path().display()),
            ),
        ];
        let site_path = root.join("deploy/vps/nginx/shop.conf");
        let mut site = std::fs::read_to_string(&site_path).unwrap();
        for (name, port) in upstreams {
            let default_port = match *name {
                "api" => 8080,
                "admin" => 8081,
                _ => 8082,
            };
            replacements.push((
                format!("server 127.0.0.1:{default_port};"),
                format!("server 127.0.0.1:{port};"),
            ));
        }
        for (from, to) in &replacements {
            assert!(
                site.contains(from.as_str()),
                "`{from}` is not in {}",
                site_path.display()
            );
            site = site.replace(from.as_str(), to);
        }
        std::fs::write(path("site.conf"), site).unwrap();
        let conf = format!(
            "pid {pid};\nerror_log stderr;\nevents {{}}\nhttp {{\n    \
             client_body_temp_path {dir}/body;\n    proxy_temp_path {dir}/proxy;\n    \
             include {site};\n}}\n",
            pid = path("nginx.pid"),
            dir = dir.path().display(),
            site = path("site.conf"),
        );
        std::fs::write(path("nginx.conf"), conf).unwrap();
        run_tool(
            dir.path(),
            "nginx",
            &["-t", "-q", "-e", "stderr", "-c", &path("nginx.conf")],
        );
        let child = Command::new("nginx")
            .args([
                "-e",
                "stderr",
                "-c",
                &path("nginx.conf"),
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            // A file: a worker outliving the test must not hold the test's pipes open.
            .stderr(std::fs::File::create(path("nginx.log")).unwrap())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            child,
            dir,
            https_port,
        };
        // Ready once it answers over TLS.
        let deadline = Instant::now() + Duration::from_secs(30);
        while nginx
            .https("api", "127.0.0.1", "GET", "/healthz", &[], None)
            .status
            != 200
        {
            assert!(
                Instant::now() < deadline,
                "nginx did not answer within 30 s:\n{}",
                std::fs::read_to_string(nginx.dir.path().join("nginx.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        nginx
    }

    /// A request to `https://<service>.example.com/<path>` through nginx, sent from `source` (an
    /// address of the loopback range: nginx sees it as the client's), by curl, which checks the
    /// certificate against the one made here.
    fn https(
        &self,
        service: &str,
        source: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let host = format!("{service}.example.com");
        let mut command = Command::new("curl");
        command
            .args(["-sS", "-i", "--max-time", "60", "-X", method])
            .args(["--interface", source, "--cacert"])
            .arg(self.dir.path().join("cert.pem"))
            .args([
                "--resolve",
                &format!("{host}:{}:127.0.0.1", self.https_port),
            ]);
        for (name, value) in headers {
            command.args(["-H", &format!("{name}: {value}")]);
        }
        if let Some(body) = body {
            command.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]);
        }
        let output = command
            .arg(format!("https://{host}:{}{path}", self.https_port))
            .output()
            .expect("curl runs (apt-get install curl)");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Reply {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }

    /// What nginx logged for service `name`'s requests.
    fn access_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("shop-{name}.access.log")))
            .unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM, on which the master process stops its workers, then exits; SIGKILL would leave
    /// the workers running.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    /// The status line and headers, lower-cased.
    head: String,
    body: String,
}

impl Reply {
    fn json(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}\n{}", self.head, self.body);
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.trim())
        })
    }
}

/// Three sign-in attempts a minute per client address: enough to tell clients apart.
const PER_IP: &str = "3";

#[test]
fn the_nginx_site_serves_the_services_over_https() {
    let root = vps_workspace();
    let db = Database::sqlite();
    let trusted = [
        ("RATE_LIMIT_TRUST_FORWARDED_FOR", "true"),
        ("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", PER_IP),
    ];
    let api = launch_with_test_settings("api", &db, &trusted);
    let admin = start_admin(&db, &[]);
    let hooks = start_webhooks(&db, &[]);
    let nginx = Nginx::start(
        root,
        &[
            ("api", api.service.port),
            ("admin", admin.service.port),
            ("webhooks", hooks.service.port),
        ],
    );

    // register → login → /me, from 127.0.0.2: two of its three attempts.
    let client = "127.0.0.2";
    let credentials = json!({"email": "nginx@example.com", "password": PASSWORD}).to_string();
    let post = |source, path, body: &str, headers: &[(&str, &str)]| {
        nginx.https("api", source, "POST", path, headers, Some(body))
    };
    post(client, "/api/auth/register", &credentials, &[]).json(201);
    let login = post(client, "/api/auth/login", &credentials, &[]).json(200);
    let token = login["access_token"].as_str().unwrap();
    let bearer = format!("Bearer {token}");
    let me = nginx.https(
        "api",
        client,
        "GET",
        "/api/auth/me",
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(me.json(200)["email"], "nginx@example.com");
    // HSTS from nginx; the request id nginx made, in the service's answer and nginx's log.
    assert!(
        me.header("strict-transport-security")
            .is_some_and(|v| v.contains("max-age=63072000")),
        "{}",
        me.head
    );
    let request_id = me
        .header("x-request-id")
        .expect("an x-request-id")
        .to_string();
    // nginx writes the access log line once the answer has gone out, so it may not be there yet.
    wait_until(&format!("nginx's access log names {request_id}"), || {
        nginx.access_log("api").contains(&request_id)
    });

    // The services see every request coming from nginx (127.0.0.1); they count by the address
    // nginx appended to X-Forwarded-For. A client's own X-Forwarded-For comes before it and
    // changes nothing: its third attempt passes, its fourth is refused.
    let spoofed = [("X-Forwarded-For", "203.0.113.9")];
    post(client, "/api/auth/login", &credentials, &spoofed).json(200);
    let refused = post(client, "/api/auth/login", &credentials, &spoofed);
    assert_eq!(refused.status, 429, "{}\n{}", refused.head, refused.body);
    // Another client has its own count.
    post("127.0.0.3", "/api/auth/login", &credentials, &[]).json(200);

    // The admin service: the panel from an allowed address; nginx's 403 from any other.
    let panel = nginx.https("admin", "127.0.0.1", "GET", "/admin", &[], None);
    assert_ne!(panel.status, 403, "{}\n{}", panel.head, panel.body);
    assert!(panel.header("x-request-id").is_some(), "{}", panel.head);
    let outsider = nginx.https("admin", "127.0.0.2", "GET", "/admin", &[], None);
    assert_eq!(outsider.status, 403, "{}", outsider.head);
    assert!(outsider.body.contains("nginx"), "{}", outsider.body);

    // A signed Stripe event, through nginx: the signature covers the body byte for byte.
    let body = checkout("evt_nginx", "cus_nginx", None, "nginx@example.com", now());
    let signature = header(SECRET, now(), &body);
    let delivered = nginx.https(
        "webhooks",
        "127.0.0.4",
        "POST",
        "/api/webhooks/stripe",
        &[("Stripe-Signature", &signature)],
        Some(&body),
    );
    delivered.json(200);
    let forged = header("whsec_not_the_secret", now(), &body);
    let refused = nginx.https(
        "webhooks",
        "127.0.0.4",
        "POST",
        "/api/webhooks/stripe",
        &[("Stripe-Signature", &forged)],
        Some(&body),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
}

/// Without `RATE_LIMIT_TRUST_FORWARDED_FOR`, the same site gives the api the same header, but the
/// api counts the address it sees, nginx's: every client shares one count.
#[test]
fn behind_nginx_without_trust_every_client_shares_the_proxys_count() {
    let root = vps_workspace();
    let db = Database::sqlite();
    let api =
        launch_with_test_settings("api", &db, &[("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", PER_IP)]);
    let nginx = Nginx::start(root, &[("api", api.service.port)]);
    let credentials = json!({"email": "proxy@example.com", "password": PASSWORD}).to_string();
    let post = |source, path| nginx.https("api", source, "POST", path, &[], Some(&credentials));
    post("127.0.0.2", "/api/auth/register").json(201);
    post("127.0.0.3", "/api/auth/login").json(200);
    post("127.0.0.4", "/api/auth/login").json(200);
    let refused = post("127.0.0.5", "/api/auth/login");
    assert_eq!(refused.status, 429, "{}\n{}", refused.head, refused.body);
}
