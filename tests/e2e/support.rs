//! What the end-to-end tests share: the generated workspaces and their shared target directory,
//! service binaries running on free ports, and fresh databases (a SQLite file, a PostgreSQL
//! database) that are removed when dropped.

pub use crate::common::{free_port, shared_target_dir};

use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::saaskit;

/// Starts the test server `script` (a Python file under `tests/`) with `args` and waits for the
/// `ready` line it prints once it listens; `missing` says what to install when it does not start.
pub fn python_server(script: &str, args: &[&std::ffi::OsStr], missing: &str) -> Child {
    let mut child = Command::new("python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(script),
        )
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready", "{script} did not start: {missing}");
    child
}

/// Generates workspace `name` with `args` into a fresh directory under the test tmpdir.
pub fn fresh_workspace(name: &str, args: &[&str]) -> PathBuf {
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

pub fn cargo(root: &Path, args: &[&str]) {
    run_cargo(root, args, &[("CARGO_TARGET_DIR", shared_target_dir())]);
}

/// [`cargo`] with its own target directory `target` for the final artifacts (binaries of the same
/// name as the default workspace's), sharing the compiled dependencies of the default workspace.
pub fn cargo_beside(root: &Path, target: &Path, args: &[&str]) {
    cargo_beside_with(root, target, args, &[]);
}

/// [`cargo_beside`] with `env` too, for cargo and what it runs; what it printed.
pub fn cargo_beside_with(
    root: &Path,
    target: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> String {
    let mut all = vec![
        ("CARGO_TARGET_DIR", target.to_path_buf()),
        ("CARGO_BUILD_BUILD_DIR", shared_target_dir()),
    ];
    all.extend(env.iter().map(|(key, value)| (*key, PathBuf::from(value))));
    run_cargo(root, args, &all)
}

fn run_cargo(root: &Path, args: &[&str], env: &[(&str, PathBuf)]) -> String {
    let output = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root)
        .envs(env.iter().map(|(key, value)| (key, value)))
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
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The clippy run a generated workspace must pass, as cargo's arguments.
const CLIPPY: &[&str] = &[
    "clippy",
    "--workspace",
    "--all-targets",
    "--",
    "-D",
    "warnings",
];

/// rustfmt-clean and clippy-clean with `-D warnings`, as generated.
pub fn lint(root: &Path) {
    lint_with(|args| cargo(root, args));
}

/// [`lint`] with [`cargo_beside`]'s target directory `target`.
pub fn lint_beside(root: &Path, target: &Path) {
    lint_with(|args| cargo_beside(root, target, args));
}

fn lint_with(cargo: impl Fn(&[&str])) {
    cargo(&["fmt", "--all", "--", "--check"]);
    cargo(CLIPPY);
}

/// The default workspace, generated, checked and built once for all tests of this binary.
pub fn default_workspace() -> &'static Path {
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

/// The binary of service `name` of the default workspace (built by [`default_workspace`]).
pub fn service_binary(name: &str) -> PathBuf {
    shared_target_dir().join("debug").join(name)
}

/// A service binary of the default workspace running on a free port; killed when dropped.
///
/// What the service writes (its log) is collected as it comes, since a full pipe would block it,
/// for [`Service::logs`] and [`Service::terminate`].
pub struct Service {
    child: Child,
    pub port: u16,
    logs: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Service {
    /// Starts service `name` in the default workspace (so it reads the workspace's `.env`) with
    /// `extra_env` on top, and waits until it answers `/healthz`.
    pub fn start(name: &str, extra_env: &[(&str, &str)]) -> Service {
        Service::start_binary(&service_binary(name), extra_env)
    }

    /// [`Service::start`] of the service binary at `binary` (a build with other features).
    pub fn start_binary(binary: &Path, extra_env: &[(&str, &str)]) -> Service {
        Service::start_in(default_workspace(), binary, extra_env)
    }

    /// [`Service::start_binary`] in the workspace at `root` (whose `.env` it reads).
    pub fn start_in(root: &Path, binary: &Path, extra_env: &[(&str, &str)]) -> Service {
        let name = binary.file_name().unwrap().to_string_lossy().into_owned();
        // The port is free when chosen but may be taken before the service binds it: try again.
        let mut attempts = 3;
        loop {
            let port = free_port();
            let mut command = Command::new(binary);
            command
                .current_dir(root)
                .env(
                    format!("{}_ADDR", name.to_uppercase()),
                    format!("127.0.0.1:{port}"),
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (key, value) in extra_env {
                command.env(key, value);
            }
            let mut service = Service::spawn(command, port);
            match service.wait_until_alive() {
                Ok(()) => return service,
                Err(status) => {
                    let logs = service.finish_logs();
                    attempts -= 1;
                    assert!(
                        attempts > 0 && logs.contains("in use"),
                        "{name} exited with {status} before answering /healthz:\n{logs}"
                    );
                }
            }
        }
    }

    /// Service `name` of the default workspace started as systemd starts a socket-activated unit:
    /// on `socket`, a listening socket this process holds open as systemd would, passed as file
    /// descriptor 3 with `LISTEN_FDS=1` and `LISTEN_PID` set to the service's process id.
    /// `<NAME>_ADDR` is the socket's address, as in the unit; waits until it answers `/healthz`.
    pub fn start_on_socket(
        name: &str,
        socket: &TcpListener,
        extra_env: &[(&str, &str)],
    ) -> Service {
        let port = socket.local_addr().unwrap().port();
        let fd = socket.as_raw_fd();
        // systemd sets LISTEN_PID between fork and exec; `Command` makes the child's environment
        // before it forks. A shell that `exec`s the service keeps its process id: `$$` is the
        // service's.
        let mut command = Command::new("sh");
        command
            .args(["-c", r#"export LISTEN_PID=$$; exec "$0""#])
            .arg(service_binary(name))
            .current_dir(default_workspace())
            .env("LISTEN_FDS", "1")
            .env(
                format!("{}_ADDR", name.to_uppercase()),
                format!("127.0.0.1:{port}"),
            )
            .envs(extra_env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: dup2 and fcntl are, and it allocates nothing.
        // `fd` stays open in this process until `spawn` returns (the caller holds `socket`).
        unsafe {
            command.pre_exec(move || {
                // The socket at descriptor 3, where the protocol puts the first one. dup2 gives
                // the copy no close-on-exec flag; when the socket already is descriptor 3,
                // dup2 does nothing, so the flag Rust sets on every descriptor is cleared here.
                if fd != 3 && libc::dup2(fd, 3) == -1 {
                    return Err(io::Error::last_os_error());
                }
                if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut service = Service::spawn(command, port);
        if let Err(status) = service.wait_until_alive() {
            panic!(
                "{name} exited with {status} before answering /healthz:\n{}",
                service.finish_logs()
            );
        }
        service
    }

    /// Starts `command`, a service that will answer on `port` (a service of another language,
    /// or one on a port chosen beforehand), and waits until it answers `/healthz`.
    pub fn start_command(command: Command, port: u16) -> Service {
        let mut service = Service::spawn(command, port);
        if let Err(status) = service.wait_until_alive() {
            panic!(
                "the service on port {port} exited with {status} before answering /healthz:\n{}",
                service.finish_logs()
            );
        }
        service
    }

    /// Runs `command`, a service answering on `port`, collecting what it writes.
    fn spawn(mut command: Command, port: u16) -> Service {
        let mut child = command.spawn().expect("the service binary starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect_lines(child.stdout.take().unwrap(), &logs),
            collect_lines(child.stderr.take().unwrap(), &logs),
        ];
        Service {
            child,
            port,
            logs,
            readers,
        }
    }

    /// Waits until the service answers `/healthz`, or returns how it exited.
    fn wait_until_alive(&mut self) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(status);
            }
            if get(self.port, "/healthz").is_some_and(|(status, _)| status == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "service on port {} did not answer /healthz within 30 s:\n{}",
            self.port,
            self.logs()
        );
    }

    /// What the service has written to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// What the service has written, once `done` holds of it (or after 30 s): a line the
    /// service logs as a response goes out can reach the test's reader after the response
    /// reached the test.
    pub fn logs_once(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logs = self.logs();
            if done(&logs) || Instant::now() >= deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the service wrote, once it has exited.
    fn finish_logs(&mut self) -> String {
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        self.logs()
    }

    /// Sends SIGTERM and returns the exit status and what the service wrote (stdout and stderr).
    pub fn terminate(mut self) -> (ExitStatus, String) {
        self.stop()
    }

    /// [`Service::terminate`] of a service held by something else (an `Instance`).
    pub fn stop(&mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.finish_logs());
            }
            assert!(
                Instant::now() < deadline,
                "the service ignored SIGTERM for 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Appends each line `output` gives to `logs`, until its end.
fn collect_lines(output: impl Read + Send + 'static, logs: &Arc<Mutex<String>>) -> JoinHandle<()> {
    let logs = Arc::clone(logs);
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            let mut logs = logs.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    })
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use crate::common::http_get as get;

/// The value of response header `name` of a plain GET.
pub fn header(port: u16, path: &str, name: &str) -> Option<String> {
    let response = crate::common::raw_http_get(port, path)?;
    let (head, _) = response.split_once("\r\n\r\n")?;
    head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    })
}

/// A fresh, empty database for a service: `DATABASE_URL` and a way to run SQL on it directly.
pub enum Database {
    /// A SQLite file (created by the service) in a temporary directory removed on drop.
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(PgDatabase),
}

impl Database {
    pub fn sqlite() -> Database {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::Builder::new()
            .prefix("saaskit-e2e-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let path = dir
            .path()
            .join(format!("api-{}.db", NEXT.fetch_add(1, Ordering::Relaxed)));
        Database::Sqlite { _dir: dir, path }
    }

    pub fn postgres() -> Database {
        Database::Postgres(PgDatabase::create())
    }

    /// Which kind of database, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => "SQLite",
            Database::Postgres(_) => "PostgreSQL",
        }
    }

    pub fn url(&self) -> String {
        match self {
            Database::Sqlite { path, .. } => format!("sqlite://{}?mode=rwc", path.display()),
            Database::Postgres(database) => database.url(),
        }
    }

    /// Runs `sql` on the database (which a service must have created and migrated).
    pub fn execute(&self, sql: &str) {
        if let Err(error) = self.try_execute(sql) {
            panic!("{error}");
        }
    }

    /// Runs `sql` on the database; the database's error when it refuses it.
    pub fn try_execute(&self, sql: &str) -> Result<(), String> {
        self.run(sql).map(drop)
    }

    /// The first column of the first row `sql` returns, as text (empty for no row).
    pub fn query_value(&self, sql: &str) -> String {
        self.run(sql).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Runs `sql`; what it printed: the first column of its first row, if any.
    fn run(&self, sql: &str) -> Result<String, String> {
        match self {
            Database::Sqlite { path, .. } => {
                let script = "import sqlite3, sys\n\
                              db = sqlite3.connect(sys.argv[1], timeout=10)\n\
                              row = db.execute(sys.argv[2]).fetchone()\n\
                              db.commit()\n\
                              print('' if row is None else row[0])\n";
                let output = Command::new("python3")
                    .arg("-c")
                    .arg(script)
                    .arg(path)
                    .arg(sql)
                    .output()
                    .expect("python3 runs");
                if output.status.success() {
                    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
                } else {
                    Err(format!(
                        "`{sql}` on {}: {}",
                        path.display(),
                        String::from_utf8_lossy(&output.stderr)
                    ))
                }
            }
            Database::Postgres(database) => psql(&database.name, sql),
        }
    }
}

/// A fresh PostgreSQL database `saaskit_e2e_<pid>_<n>` on 127.0.0.1:5432, dropped (with its
/// connections) when this is dropped.
pub struct PgDatabase {
    name: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "saaskit_e2e_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // A database left over by a crashed run of a process with the same id.
        psql(
            "test",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .unwrap();
        psql("test", &format!("CREATE DATABASE {name}")).unwrap();
        PgDatabase { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Err(error) = psql(
            "test",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("{error}");
        }
    }
}

/// Runs `sql` with psql on `database` as the `postgres` user.
fn psql(database: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database])
        .args(["-v", "ON_ERROR_STOP=1", "-qtAc", sql])
        .output()
        .map_err(|e| format!("psql does not run ({e}): .ci/run installs and starts PostgreSQL"))?;
    if output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        Ok(stdout.lines().next().unwrap_or_default().to_string())
    } else {
        Err(format!(
            "psql `{sql}` on {database} failed (is PostgreSQL running on 127.0.0.1:5432?): {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
