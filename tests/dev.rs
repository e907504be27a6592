//! `saaskit dev` on a copy of the example workspace: it builds the workspace and starts every
//! service, which then answer; Ctrl-C or SIGTERM leaves no process of theirs behind; a broken
//! edit keeps the old process serving and shows the compiler's error, and its fix restarts only
//! the service it affects; a port in use and a service failing at start-up are reported.
//!
//! The copies build into the Cargo target directory every generated workspace shares
//! (`target/generated-workspaces`), so their dependencies are compiled once per machine. Being
//! copies of one workspace, they share their binaries' paths there: the tests run one at a time.
#![cfg(unix)]

mod common;

use common::{free_port, shared_target_dir};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A first build compiles every dependency of the workspace: minutes on two cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// A rebuild of one service, and a restart.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Stopping every service (dev gives each 10 s after SIGTERM before SIGKILL).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

const SERVICES: [&str; 3] = ["api", "admin", "webhooks"];

/// One test at a time: see the module documentation.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh copy of `examples/saas-starter` under the test tmpdir (fresh, so that cargo
/// rebuilds its crates from this copy's sources), its services on free ports in `.env`.
fn example_copy(test: &str) -> (PathBuf, BTreeMap<&'static str, u16>) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/saas-starter");
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("dev")
        .join(test);
    let _ = std::fs::remove_dir_all(&root);
    for entry in walkdir::WalkDir::new(&source)
        .into_iter()
        .filter_entry(|e| e.file_name() != "target" && e.file_name() != "data")
    {
        let entry = entry.unwrap();
        let target = root.join(entry.path().strip_prefix(&source).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    let ports: BTreeMap<&str, u16> = SERVICES.iter().map(|s| (*s, free_port())).collect();
    let env = std::fs::read_to_string(root.join(".env")).unwrap();
    let env: String = env
        .lines()
        .map(|line| {
            match SERVICES
                .iter()
                .find(|s| line.starts_with(&format!("{}_ADDR=", s.to_uppercase())))
            {
                Some(service) => format!(
                    "{}_ADDR=127.0.0.1:{}\n",
                    service.to_uppercase(),
                    ports[service]
                ),
                None => format!("{line}\n"),
            }
        })
        .collect();
    std::fs::write(root.join(".env"), env).unwrap();
    (root, ports)
}

/// A running `saaskit dev`, its stdout and stderr collected as they come.
struct Dev {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Dev {
    fn start(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Dev {
        let mut command = Command::new(env!("CARGO_BIN_EXE_saaskit"));
        command
            .arg("dev")
            .args(args)
            // From a directory inside the workspace, as a developer would.
            .current_dir(root.join("services/api"))
            .env("CARGO_TARGET_DIR", shared_target_dir())
            .env_remove("RUSTFLAGS")
            // A service failing at start-up would end with a backtrace instead of its error.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for service in SERVICES {
            command.env_remove(format!("{}_ADDR", service.to_uppercase()));
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), &stdout),
            collect(child.stderr.take().unwrap(), &stderr),
        ];
        Dev {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn output(&self) -> String {
        format!(
            "--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Waits until stderr holds `needle` after its first `from` bytes; panics if dev exits or
    /// the time runs out first.
    fn wait_for_stderr(&mut self, needle: &str, from: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .stderr()
                .get(from..)
                .is_some_and(|s| s.contains(needle))
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                self.finish();
                panic!(
                    "dev exited ({status}) before printing `{needle}`:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` from dev within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the status table, which follows the start of every service.
    fn wait_until_running(&mut self) {
        self.wait_for_stderr("Ctrl-C stops every service", 0, BUILD_TIMEOUT);
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.finish();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "dev did not exit within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything dev wrote, once it has exited.
    fn finish(&mut self) {
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(output: impl Read + Send + 'static, into: &Arc<Mutex<String>>) -> JoinHandle<()> {
    let into = Arc::clone(into);
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            let mut into = into.lock().unwrap();
            into.push_str(&line);
            into.push('\n');
        }
    })
}

/// The processes whose working directory is `root` or inside it (the services run there, cargo
/// and the compilers too): pid and name.
fn processes_in(root: &Path) -> Vec<(u32, String)> {
    let root = root.canonicalize().unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&root)) {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            found.push((pid, name.trim().to_string()));
        }
    }
    found
}

/// The pid of the running process named `name` in `root`.
fn pid_of(root: &Path, name: &str) -> u32 {
    let found: Vec<u32> = processes_in(root)
        .into_iter()
        .filter(|(_, n)| n == name)
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(found.len(), 1, "one `{name}` process in {}", root.display());
    found[0]
}

/// Asserts that no process runs in `root`, allowing a few seconds for the last ones to go.
fn assert_nothing_left(root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_in(root);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes left behind in {}: {left:?}",
            root.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status code of a plain GET, or None when nothing answers.
fn get(port: u16, path: &str) -> Option<u16> {
    common::http_get(port, path).map(|(status, _)| status)
}

#[test]
fn dev_runs_every_service_and_ctrl_c_leaves_no_process_behind() {
    let _serial = serial();
    let (root, ports) = example_copy("all");
    let mut dev = Dev::start(&root, &["--no-watch"], &[]);
    dev.wait_until_running();

    let stdout = dev.stdout();
    for service in SERVICES {
        let port = ports[service];
        assert_eq!(get(port, "/healthz"), Some(200), "{service} /healthz");
        assert_eq!(get(port, "/readyz"), Some(200), "{service} /readyz");
        assert!(
            stdout.contains(&format!("http://127.0.0.1:{port}")),
            "the table shows where {service} runs:\n{stdout}"
        );
        // Every line a service writes is behind its name (no colour: stdout is a pipe).
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{service:<8} | ")) && l.contains("listening")),
            "{service}'s log lines are prefixed:\n{stdout}"
        );
    }
    assert!(stdout.contains("/.well-known/jwks.json"), "{stdout}");
    assert!(
        !stdout.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );
    assert!(
        root.join("data").is_dir(),
        "the api created its SQLite file"
    );
    let running: Vec<String> = processes_in(&root)
        .into_iter()
        .map(|(_, name)| name)
        .filter(|name| name != "saaskit")
        .collect();
    assert_eq!(running, SERVICES, "one process per service");

    dev.signal(Signal::SIGINT);
    let status = dev.wait_exit(STOP_TIMEOUT);
    assert!(status.success(), "{status}:\n{}", dev.output());
    assert_nothing_left(&root);
    for service in SERVICES {
        assert_eq!(get(ports[service], "/healthz"), None, "{service} stopped");
    }
}

#[test]
fn only_runs_the_named_services_and_sigterm_stops_them() {
    let _serial = serial();
    let (root, ports) = example_copy("only");
    let mut dev = Dev::start(&root, &["--only", "webhooks", "--no-watch"], &[]);
    dev.wait_until_running();
    assert_eq!(get(ports["webhooks"], "/healthz"), Some(200));
    assert_eq!(get(ports["api"], "/healthz"), None, "api is not started");
    assert!(!dev.stdout().contains("/.well-known/jwks.json"));

    dev.signal(Signal::SIGTERM);
    let status = dev.wait_exit(STOP_TIMEOUT);
    assert!(status.success(), "{status}:\n{}", dev.output());
    assert_nothing_left(&root);
}

#[test]
fn a_broken_edit_keeps_the_old_api_serving_and_its_fix_restarts_only_the_api() {
    let _serial = serial();
    let (root, ports) = example_copy("watch");
    let mut dev = Dev::start(&root, &[], &[]);
    dev.wait_until_running();
    let api = pid_of(&root, "api");
    let admin = pid_of(&root, "admin");

    let main_rs = root.join("services/api/src/main.rs");
    let original = std::fs::read_to_string(&main_rs).unwrap();
    let from = dev.stderr().len();
    std::fs::write(&main_rs, format!("{original}\nfn broken( {{\n")).unwrap();
    dev.wait_for_stderr("the build failed", from, REBUILD_TIMEOUT);
    let stderr = dev.stderr()[from..].to_string();
    assert!(
        stderr.contains("unclosed delimiter") && stderr.contains("services/api/src/main.rs"),
        "the compiler's error is shown:\n{stderr}"
    );
    assert_eq!(
        get(ports["api"], "/healthz"),
        Some(200),
        "the old api still serves"
    );
    assert_eq!(pid_of(&root, "api"), api, "the old api process runs on");

    let from = dev.stderr().len();
    std::fs::write(&main_rs, format!("{original}\n// fixed\n")).unwrap();
    dev.wait_for_stderr("restarting api", from, REBUILD_TIMEOUT);
    dev.wait_for_stderr("api is ready", from, REBUILD_TIMEOUT);
    let stderr = dev.stderr()[from..].to_string();
    assert!(
        !stderr.contains("restarting api, admin"),
        "only the api restarts:\n{stderr}"
    );
    assert_eq!(get(ports["api"], "/healthz"), Some(200));
    assert_ne!(pid_of(&root, "api"), api, "a new api process");
    assert_eq!(pid_of(&root, "admin"), admin, "admin was not restarted");

    dev.signal(Signal::SIGINT);
    let status = dev.wait_exit(STOP_TIMEOUT);
    assert!(status.success(), "{status}:\n{}", dev.output());
    assert_nothing_left(&root);
}

#[test]
fn a_port_in_use_is_reported_with_its_service() {
    let _serial = serial();
    let (root, _) = example_copy("port");
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let mut dev = Dev::start(
        &root,
        &["--no-watch"],
        &[("ADMIN_ADDR", &format!("127.0.0.1:{port}"))],
    );
    let status = dev.wait_exit(STOP_TIMEOUT);
    assert!(!status.success(), "{}", dev.output());
    let stderr = dev.stderr();
    assert!(
        stderr.contains(&format!("port {port} (service admin) is already in use")),
        "{stderr}"
    );
    assert!(
        stderr.contains("ADMIN_ADDR"),
        "a hint names the key: {stderr}"
    );
    assert_nothing_left(&root);
}

#[test]
fn a_service_failing_at_start_up_shows_its_last_lines_and_dev_fails() {
    let _serial = serial();
    let (root, _) = example_copy("failing");
    // Every service refuses to start with a malformed setting; the api starts first.
    let mut dev = Dev::start(&root, &["--no-watch"], &[("LOG_FORMAT", "xml")]);
    let status = dev.wait_exit(BUILD_TIMEOUT);
    assert!(!status.success(), "{}", dev.output());
    let stderr = dev.stderr();
    assert!(stderr.contains("api exited during start-up"), "{stderr}");
    assert!(
        !dev.stdout().contains("admin    |"),
        "the others are not started once the first failed:\n{}",
        dev.output()
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("  api | ") && l.contains("LOG_FORMAT")),
        "its last lines are shown:\n{stderr}"
    );
    assert_nothing_left(&root);
}

#[test]
fn ctrl_c_during_the_build_stops_cargo_and_the_compilers() {
    let _serial = serial();
    // A fresh copy: cargo compiles its crates for several seconds.
    let (root, _) = example_copy("interrupted");
    let mut dev = Dev::start(&root, &[], &[]);
    dev.wait_for_stderr("Compiling", 0, BUILD_TIMEOUT);
    dev.signal(Signal::SIGINT);
    let status = dev.wait_exit(STOP_TIMEOUT);
    assert!(status.success(), "{status}:\n{}", dev.output());
    assert_nothing_left(&root);
    assert!(!dev.stdout().contains(" | "), "no service was started");
}
