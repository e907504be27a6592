//! `saaskit dev`: builds the workspace, starts its services with their output together (each
//! line behind its service's name), waits until each answers `/readyz`, prints where they are,
//! then rebuilds on changes and restarts the services a rebuild affects, until Ctrl-C or
//! SIGTERM, which stops every process it started.
//!
//! Migrations are not run here: every service applies the pending ones at start (`db.migrate()`
//! in its `main.rs`), before it listens, taking turns with services starting beside it (a lock
//! on either database). The first service with the `db` module still starts alone and the others
//! once it is ready: a mistake they share (a bad `DATABASE_URL`, a migration that fails) is then
//! reported once, by one service, with the others not started.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cli::DevArgs;
use crate::dev::build::{self, Build, Outcome};
use crate::dev::output::{self, Prefixed, note};
use crate::dev::runner::{Executables, Fingerprint, Runner};
use crate::dev::status::{self, Row};
use crate::dev::supervisor::{self, Process};
use crate::dev::watch::{self, Watcher};
use crate::edit::render::ServiceVars;
use crate::model::manifest::{self, Manifest, ServiceSpec};
use crate::workspace::{ENV_FILE, env_value, find_root, read_env};

/// How long a service may take from its start to answering `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

const CARGO_LOCK: &str = "Cargo.lock";

/// How often the main loop looks at its children when nothing else happens.
const TICK: Duration = Duration::from_millis(200);

enum Event {
    /// Ctrl-C, SIGTERM or SIGHUP.
    Stop,
    /// Watched files changed (paths from the workspace root).
    Changed(BTreeSet<String>),
}

/// A service of the manifest as `dev` runs it.
struct Service {
    name: String,
    kind: String,
    modules: Vec<String>,
    /// Where it listens, the env key that says so, and the manifest's port, used when no
    /// value is set.
    addr: SocketAddr,
    addr_key: String,
    port: u16,
    runner: Runner,
    output: Prefixed,
}

impl Service {
    /// It applies migrations at start.
    fn migrates(&self) -> bool {
        self.modules.iter().any(|m| m == "db")
    }

    fn url(&self) -> String {
        status::base_url(self.addr)
    }
}

struct Running {
    process: Process,
    /// The build it runs.
    fingerprint: Option<Fingerprint>,
}

/// Why a service did not get ready.
enum Failure {
    Port(String),
    Spawn(String),
    /// A step before the start (`npm ci`, `npm run build`) failed.
    Prepare {
        what: String,
        status: String,
        lines: Vec<String>,
    },
    Exited {
        status: String,
        lines: Vec<String>,
    },
    NotReady {
        last: String,
        lines: Vec<String>,
    },
}

/// A stop was asked for while waiting.
struct Interrupted;

pub fn run(args: DevArgs) -> Result<()> {
    let root = find_root(&std::env::current_dir()?)?;
    let text = std::fs::read_to_string(root.join(manifest::FILE_NAME))
        .with_context(|| format!("cannot read {}", manifest::FILE_NAME))?;
    let manifest = Manifest::parse(&text)?;
    let selected = select(&manifest, args.only.as_deref())?;
    let env = read_env(&root);
    let colour = output::use_colour(
        std::io::stdout().is_terminal(),
        std::env::var("NO_COLOR").ok().as_deref(),
    );
    let width = selected.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut services = Vec::new();
    for spec in &selected {
        let index = manifest
            .services
            .iter()
            .position(|s| s.name == spec.name)
            .unwrap_or(0);
        let addr_key = format!("{}_ADDR", ServiceVars::new(spec).env_prefix);
        services.push(Service {
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            modules: spec.modules.clone(),
            addr: configured_addr(&addr_key, spec.port, &env),
            addr_key,
            port: spec.port,
            runner: Runner::for_service(spec)?,
            output: Prefixed::new(output::prefix(
                &spec.name,
                width,
                colour.then(|| output::colour_of(index)),
            )),
        });
    }
    let busy: Vec<String> = services.iter().filter_map(port_in_use).collect();
    if !busy.is_empty() {
        bail!("{}", busy.join("\n"));
    }

    let (sender, events) = mpsc::channel();
    {
        let sender = sender.clone();
        ctrlc::set_handler(move || {
            let _ = sender.send(Event::Stop);
        })
        .context("cannot install the handler of Ctrl-C and SIGTERM")?;
    }
    let running = services.iter().map(|_| None).collect();
    let mut session = Session {
        root,
        services,
        running,
        events,
        cargo_args: build::cargo_args(),
        pending: BTreeSet::new(),
        stopping: false,
        lock_as_built: None,
        prepared: BTreeSet::new(),
    };
    // Dropping the session stops every service, also on an error or a panic.
    session.run(!args.no_watch, sender)
}

/// The services `--only` names, in the manifest's order; every service without it.
fn select<'m>(manifest: &'m Manifest, only: Option<&[String]>) -> Result<Vec<&'m ServiceSpec>> {
    let Some(only) = only else {
        return Ok(manifest.services.iter().collect());
    };
    let names: Vec<&str> = only
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    let known = || {
        manifest
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if names.is_empty() {
        bail!("--only names no service; the services are: {}", known());
    }
    for name in &names {
        if manifest.service(name).is_none() {
            bail!(
                "--only: there is no service `{name}` in {}; the services are: {}",
                manifest::FILE_NAME,
                known()
            );
        }
    }
    Ok(manifest
        .services
        .iter()
        .filter(|s| names.contains(&s.name.as_str()))
        .collect())
}

/// The address in `key` (`API_ADDR`), from the environment (which wins, as in the services) or
/// `.env`, else `port` on the loopback address.
fn configured_addr(key: &str, port: u16, env: &Option<BTreeMap<String, String>>) -> SocketAddr {
    env_value(env, key)
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Why the service cannot listen where it is configured to, if it cannot.
fn port_in_use(service: &Service) -> Option<String> {
    let error = TcpListener::bind(service.addr).err()?;
    let port = service.addr.port();
    Some(if error.kind() == std::io::ErrorKind::AddrInUse {
        format!(
            "port {port} (service {}) is already in use: stop what listens there \
             (`ss -ltnp 'sport = :{port}'` shows it; a `saaskit dev` or `cargo run` still running?), \
             or give {} another address with {} in .env",
            service.name, service.name, service.addr_key
        )
    } else {
        format!(
            "service {} cannot listen on {} ({} in .env): {error}",
            service.name, service.addr, service.addr_key
        )
    })
}

struct Session {
    root: PathBuf,
    services: Vec<Service>,
    /// By the index of the service.
    running: Vec<Option<Running>>,
    events: Receiver<Event>,
    cargo_args: Vec<String>,
    /// Changes not built yet.
    pending: BTreeSet<String>,
    /// A stop was asked for.
    stopping: bool,
    /// `Cargo.lock` as the last build left it.
    lock_as_built: Option<Vec<u8>>,
    /// Services whose steps before the start ([`Runner::prepare`]) just ran: the next start
    /// does not run them again.
    prepared: BTreeSet<usize>,
}

impl Session {
    fn run(&mut self, watching: bool, sender: Sender<Event>) -> Result<()> {
        // Watching starts before the build, so that nothing saved meanwhile is missed.
        let _watcher = watching.then(|| Watcher::start(&self.root, sender, Event::Changed));
        let executables = if self.runs_rust() {
            note(format!(
                "building: cargo {} (in {})",
                self.cargo_args.join(" "),
                self.root.display()
            ));
            let Some(outcome) = self.build()? else {
                return Ok(());
            };
            let Outcome::Built(executables) = outcome else {
                bail!(
                    "the build failed (the compiler's errors are above): fix them and run `saaskit dev` again"
                );
            };
            executables
        } else {
            // Only Node services (`--only nest`): nothing of cargo's to build.
            Executables::new()
        };
        if let Some(first) = self.services.iter().find(|s| s.migrates()) {
            note(format!(
                "{} applies the pending database migrations as it starts; the other services start once it is ready",
                first.name
            ));
        }
        let all: Vec<usize> = (0..self.services.len()).collect();
        let failures = match self.start(&all, &executables, true) {
            Ok(failures) => failures,
            Err(Interrupted) => return Ok(()),
        };
        if let Some((index, failure)) = failures.into_iter().next() {
            let message = self.report(index, &failure, "during start-up");
            bail!("{message}");
        }
        self.print_table();
        if watching {
            note(
                "watching crates/, services/, Cargo.toml and .env: a change rebuilds and restarts \
                 the services it affects. Ctrl-C stops every service.",
            );
        } else {
            note("not watching for changes (--no-watch). Ctrl-C stops every service.");
        }
        self.serve(watching)
    }

    /// Whether a service it runs is a Rust binary, which the workspace's cargo build makes.
    fn runs_rust(&self) -> bool {
        self.services
            .iter()
            .any(|s| s.runner.cargo_package().is_some())
    }

    /// Waits up to `timeout` for the next event and takes it in.
    fn next_event(&mut self, timeout: Duration) {
        match self.events.recv_timeout(timeout) {
            Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => self.stopping = true,
            Ok(Event::Changed(paths)) => self.pending.extend(paths),
            Err(RecvTimeoutError::Timeout) => {}
        }
    }

    /// Runs a build to its end, or returns None when a stop is asked for meanwhile (the build
    /// is then cancelled as it is dropped).
    fn build(&mut self) -> Result<Option<Outcome>> {
        let mut build = Build::start(&self.root, &self.cargo_args)?;
        loop {
            self.next_event(TICK);
            if self.stopping {
                return Ok(None);
            }
            if let Some(outcome) = build.poll()? {
                self.remember_lock();
                return Ok(Some(outcome));
            }
        }
    }

    /// Keeps `Cargo.lock` as a build left it, to tell its own writes from the user's.
    fn remember_lock(&mut self) {
        self.lock_as_built = std::fs::read(self.root.join(CARGO_LOCK)).ok();
    }

    /// The only pending change is `Cargo.lock`, and it is as the last build left it.
    fn lock_is_as_built(&self) -> bool {
        self.pending.iter().all(|p| p == CARGO_LOCK)
            && self.lock_as_built.is_some()
            && std::fs::read(self.root.join(CARGO_LOCK)).ok() == self.lock_as_built
    }

    /// Until a stop: services that exit are reported, changes are built, and a good build
    /// restarts the services it affects.
    fn serve(&mut self, watching: bool) -> Result<()> {
        // Dropping a build that is still running cancels it.
        let mut build: Option<(Build, BTreeSet<String>)> = None;
        loop {
            self.next_event(TICK);
            if self.stopping {
                return Ok(());
            }
            self.report_exits(watching)?;
            if self.pending.len() == 1 && self.lock_is_as_built() {
                // Cargo wrote it (a first build resolves the dependencies): nothing to do.
                self.pending.clear();
            }
            if build.is_none() && !self.pending.is_empty() {
                let changed = std::mem::take(&mut self.pending);
                if changed.contains(manifest::FILE_NAME) {
                    note(
                        "saaskit.toml changed: restart `saaskit dev` to run new services or use new ports",
                    );
                }
                if !self.runs_rust() {
                    note(format!("{} changed", describe_changes(&changed)));
                    if self
                        .restart_affected(&changed, &Executables::new(), None)
                        .is_err()
                    {
                        return Ok(());
                    }
                    continue;
                }
                note(format!(
                    "{} changed: rebuilding",
                    describe_changes(&changed)
                ));
                build = Some((Build::start(&self.root, &self.cargo_args)?, changed));
            }
            let finished = match &mut build {
                Some((running, _)) => running.poll()?,
                None => None,
            };
            let Some(outcome) = finished else { continue };
            self.remember_lock();
            let (done, changed) = build.take().expect("a build was running");
            let seconds = done.started.elapsed().as_secs_f32();
            match outcome {
                Outcome::Failed => note(format!(
                    "the build failed after {seconds:.1}s (the compiler's errors are above): \
                     the services keep running the last good build; save a fix to try again"
                )),
                Outcome::Built(executables) => {
                    if self
                        .restart_affected(&changed, &executables, Some(seconds))
                        .is_err()
                    {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Restarts the services whose binary the build changed, those `changed` touches directly,
    /// and those not running (they failed before: the build may hold their fix).
    fn restart_affected(
        &mut self,
        changed: &BTreeSet<String>,
        executables: &Executables,
        built_in: Option<f32>,
    ) -> Result<(), Interrupted> {
        let built = built_in.map_or(String::new(), |seconds| format!("built in {seconds:.1}s: "));
        if changed.contains(ENV_FILE) {
            // The services read it again as they restart: so does the readiness check.
            let env = read_env(&self.root);
            for service in &mut self.services {
                service.addr = configured_addr(&service.addr_key, service.port, &env);
            }
        }
        let names: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        let touched = watch::services_touched(changed, &names);
        let affected: Vec<usize> = (0..self.services.len())
            .filter(|&i| {
                let service = &self.services[i];
                match &self.running[i] {
                    None => true,
                    Some(running) => {
                        touched.contains(&service.name)
                            || service.runner.fingerprint(executables) != running.fingerprint
                    }
                }
            })
            .collect();
        if affected.is_empty() {
            note(format!("{built}no service changed"));
            return Ok(());
        }
        let listed: Vec<&str> = affected
            .iter()
            .map(|&i| self.services[i].name.as_str())
            .collect();
        note(format!("{built}restarting {}", listed.join(", ")));
        // A running Node service is built before it is stopped: a build that fails leaves it
        // serving its last good build, as a failed cargo build leaves the Rust services.
        let mut restart = Vec::new();
        for index in affected {
            if self.running[index].is_none() {
                restart.push(index);
                continue;
            }
            match self.prepare(index)? {
                Ok(()) => {
                    self.prepared.insert(index);
                    restart.push(index);
                }
                Err(failure) => {
                    self.report(
                        index,
                        &failure,
                        "after the change; it keeps running its last good build, and a change tries again",
                    );
                }
            }
        }
        let affected = restart;
        self.stop(&affected);
        if self.stopping {
            return Err(Interrupted);
        }
        for (index, failure) in self.start(&affected, executables, false)? {
            self.report(
                index,
                &failure,
                "after the rebuild; the other services keep running, and a change restarts it",
            );
        }
        Ok(())
    }

    /// Starts the services at `indices`: the first that migrates alone, then the rest together
    /// (unless it failed and `all_or_nothing`). Returns those that did not get ready (and are not
    /// running).
    fn start(
        &mut self,
        indices: &[usize],
        executables: &Executables,
        all_or_nothing: bool,
    ) -> Result<Vec<(usize, Failure)>, Interrupted> {
        let first = indices
            .iter()
            .copied()
            .find(|&i| self.services[i].migrates());
        let mut failures = Vec::new();
        let batches: Vec<Vec<usize>> = match first {
            Some(first) => vec![
                vec![first],
                indices.iter().copied().filter(|&i| i != first).collect(),
            ],
            None => vec![indices.to_vec()],
        };
        for batch in batches {
            let mut spawned = Vec::new();
            for index in batch {
                if !self.prepared.remove(&index)
                    && let Err(failure) = self.prepare(index)?
                {
                    failures.push((index, failure));
                    continue;
                }
                match self.spawn(index, executables) {
                    Ok(()) => spawned.push(index),
                    Err(failure) => failures.push((index, failure)),
                }
            }
            failures.extend(self.wait_ready(spawned)?);
            if all_or_nothing && !failures.is_empty() {
                break;
            }
        }
        Ok(failures)
    }

    /// Runs the steps the service needs before it starts (a Node service's `npm ci` and `npm
    /// run build`), one after the other, with their output behind the service's name. A stop
    /// asked for meanwhile stops the step.
    fn prepare(&mut self, index: usize) -> Result<Result<(), Failure>, Interrupted> {
        let steps = self.services[index].runner.prepare(&self.root);
        for step in steps {
            let service = &self.services[index];
            note(format!("{}: {}", service.name, step.what));
            let started = Instant::now();
            let mut process = match Process::spawn(step.command, &service.output) {
                Ok(process) => process,
                Err(error) => {
                    let message =
                        format!("cannot run `{}` for {}: {error}", step.what, service.name);
                    return Ok(Err(Failure::Spawn(message)));
                }
            };
            let status = loop {
                if let Some(status) = process.exit_status() {
                    break status;
                }
                self.next_event(TICK);
                if self.stopping {
                    supervisor::stop_all(&mut [&mut process], supervisor::GRACE, &mut || false);
                    note(format!(
                        "stopped `{}` of {}",
                        step.what, self.services[index].name
                    ));
                    return Err(Interrupted);
                }
            };
            if !status.success() {
                return Ok(Err(Failure::Prepare {
                    what: step.what,
                    status: status.to_string(),
                    lines: process.last_lines(),
                }));
            }
            note(format!(
                "{}: {} done ({:.1}s)",
                self.services[index].name,
                step.what,
                started.elapsed().as_secs_f32()
            ));
        }
        Ok(Ok(()))
    }

    fn spawn(&mut self, index: usize, executables: &Executables) -> Result<(), Failure> {
        let service = &self.services[index];
        if let Some(message) = port_in_use(service) {
            return Err(Failure::Port(message));
        }
        let command = service
            .runner
            .command(executables, &self.root)
            .map_err(|e| Failure::Spawn(format!("{e:#}")))?;
        let process = Process::spawn(command, &service.output).map_err(|e| {
            Failure::Spawn(format!("cannot start {}: {e}", service.runner.describe()))
        })?;
        self.running[index] = Some(Running {
            process,
            fingerprint: service.runner.fingerprint(executables),
        });
        Ok(())
    }

    /// Waits until each of `pending` answers `/readyz` with 200, exits, or times out.
    fn wait_ready(
        &mut self,
        mut pending: Vec<usize>,
    ) -> Result<Vec<(usize, Failure)>, Interrupted> {
        let started = Instant::now();
        let mut failures = Vec::new();
        while !pending.is_empty() {
            self.next_event(Duration::ZERO);
            if self.stopping {
                return Err(Interrupted);
            }
            let mut still = Vec::new();
            for index in pending {
                let process = &mut self.running[index].as_mut().expect("spawned").process;
                if let Some(status) = process.exit_status() {
                    let lines = process.last_lines();
                    self.stop(&[index]);
                    let status = status.to_string();
                    failures.push((index, Failure::Exited { status, lines }));
                    continue;
                }
                let service = &self.services[index];
                match probe(status::connect_addr(service.addr)) {
                    Ok(200) => note(format!(
                        "{} is ready at {} ({:.1}s)",
                        service.name,
                        service.url(),
                        started.elapsed().as_secs_f32()
                    )),
                    outcome if started.elapsed() >= READY_TIMEOUT => {
                        let last = match outcome {
                            Ok(code) => format!("/readyz answered {code}"),
                            Err(error) => format!("/readyz did not answer ({error})"),
                        };
                        let process = &mut self.running[index].as_mut().expect("spawned").process;
                        let lines = process.last_lines();
                        self.stop(&[index]);
                        failures.push((index, Failure::NotReady { last, lines }));
                    }
                    _ => still.push(index),
                }
            }
            pending = still;
            if !pending.is_empty() {
                self.next_event(Duration::from_millis(100));
            }
        }
        Ok(failures)
    }

    /// Prints what went wrong with a service (and its last lines); returns the headline.
    fn report(&self, index: usize, failure: &Failure, when: &str) -> String {
        let name = &self.services[index].name;
        let (headline, lines) = match failure {
            Failure::Port(message) | Failure::Spawn(message) => (message.clone(), &[][..]),
            Failure::Exited { status, lines } => {
                (format!("{name} exited {when} ({status})"), &lines[..])
            }
            Failure::Prepare {
                what,
                status,
                lines,
            } => (
                format!("`{what}` of {name} failed {when} ({status})"),
                &lines[..],
            ),
            Failure::NotReady { last, lines } => (
                format!(
                    "{name} was not ready {} s after it started {when}: {last}",
                    READY_TIMEOUT.as_secs()
                ),
                &lines[..],
            ),
        };
        note(&headline);
        if !lines.is_empty() {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "dev: its last lines:");
            for line in lines {
                let _ = writeln!(stderr, "  {name} | {line}");
            }
        }
        headline
    }

    /// Reports services that exited on their own; without watching, fails once none is left.
    fn report_exits(&mut self, watching: bool) -> Result<()> {
        for index in 0..self.services.len() {
            let Some(running) = self.running[index].as_mut() else {
                continue;
            };
            let Some(status) = running.process.exit_status() else {
                continue;
            };
            self.stop(&[index]);
            let name = &self.services[index].name;
            if watching {
                note(format!(
                    "{name} exited ({status}); a change to the workspace starts it again"
                ));
            } else {
                note(format!("{name} exited ({status})"));
            }
        }
        if !watching && self.running.iter().all(Option::is_none) {
            bail!("every service has exited");
        }
        Ok(())
    }

    /// Stops the services at `indices` (and everything they started), all at once.
    fn stop(&mut self, indices: &[usize]) {
        let mut stopping: Vec<Running> = indices
            .iter()
            .filter_map(|&i| self.running[i].take())
            .collect();
        if stopping.is_empty() {
            return;
        }
        let mut processes: Vec<&mut Process> =
            stopping.iter_mut().map(|r| &mut r.process).collect();
        let events = &self.events;
        let pending = &mut self.pending;
        let stopping = &mut self.stopping;
        // Ctrl-C while waiting (a second one when stopping everything) kills at once.
        let mut hurry = || loop {
            match events.try_recv() {
                Ok(Event::Stop) => {
                    *stopping = true;
                    return true;
                }
                Ok(Event::Changed(paths)) => pending.extend(paths),
                Err(_) => return false,
            }
        };
        supervisor::stop_all(&mut processes, supervisor::GRACE, &mut hurry);
    }

    fn stop_everything(&mut self) {
        self.stopping = true;
        let all: Vec<usize> = (0..self.services.len())
            .filter(|&i| self.running[i].is_some())
            .collect();
        if all.is_empty() {
            return;
        }
        let names: Vec<&str> = all
            .iter()
            .map(|&i| self.services[i].name.as_str())
            .collect();
        note(format!("stopping {}", names.join(", ")));
        self.stop(&all);
        note("stopped");
    }

    fn print_table(&self) {
        let rows: Vec<Row> = self
            .services
            .iter()
            .map(|s| Row {
                service: s.name.clone(),
                kind: s.kind.clone(),
                url: s.url(),
                entry_points: match s.runner {
                    Runner::Node { .. } => status::nest_entry_points(&s.name),
                    Runner::RustBinary { .. } => status::entry_points(&s.kind, &s.modules),
                },
            })
            .collect();
        let mut stdout = std::io::stdout().lock();
        let _ = write!(stdout, "\n{}\n", status::render(&rows));
        let _ = stdout.flush();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_everything();
    }
}

/// `services/api/src/main.rs` or `3 files`.
fn describe_changes(changed: &BTreeSet<String>) -> String {
    match changed.len() {
        1 => changed.iter().next().cloned().unwrap_or_default(),
        n => format!("{n} files"),
    }
}

/// The status code of `GET /readyz` at `addr`.
fn probe(addr: SocketAddr) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    // `/readyz` gives each check 2 seconds.
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 32];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..])? {
            0 => break,
            n => read += n,
        }
    }
    let text = String::from_utf8_lossy(&head[..read]);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            "[workspace]\nname = \"acme\"\ndatabase = \"sqlite\"\n\
             [services.api]\nkind = \"api\"\nport = 8080\nmodules = [\"db\"]\n\
             [services.admin]\nkind = \"admin\"\nport = 8081\n\
             [services.webhooks]\nkind = \"webhooks\"\nport = 8082\n",
        )
        .unwrap()
    }

    fn names(specs: &[&ServiceSpec]) -> Vec<String> {
        specs.iter().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn only_selects_in_the_manifest_order_and_rejects_unknown_names() {
        let manifest = manifest();
        assert_eq!(
            names(&select(&manifest, None).unwrap()),
            ["api", "admin", "webhooks"]
        );
        let only = ["webhooks".to_string(), "api".to_string()];
        assert_eq!(
            names(&select(&manifest, Some(&only)).unwrap()),
            ["api", "webhooks"]
        );
        let error = select(&manifest, Some(&["apii".to_string()]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no service `apii`") && error.contains("api, admin, webhooks"));
        assert!(select(&manifest, Some(&[String::new()])).is_err());
    }

    #[test]
    fn the_address_comes_from_env_else_the_manifest_port() {
        // Keys no environment sets, since an exported variable wins over `.env`.
        let key = "SAASKIT_DEV_TEST_ADMIN_ADDR";
        let env = Some(BTreeMap::from([(
            key.to_string(),
            "0.0.0.0:9001".to_string(),
        )]));
        assert_eq!(
            configured_addr(key, 8081, &env),
            "0.0.0.0:9001".parse().unwrap()
        );
        assert_eq!(
            configured_addr("SAASKIT_DEV_TEST_UNSET_ADDR", 8082, &env),
            "127.0.0.1:8082".parse().unwrap()
        );
    }

    #[test]
    fn a_busy_port_names_the_service_and_the_port() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let service = Service {
            name: "api".into(),
            kind: "api".into(),
            modules: Vec::new(),
            addr,
            addr_key: "API_ADDR".into(),
            port: addr.port(),
            runner: Runner::RustBinary {
                package: "api".into(),
                bin: "api".into(),
            },
            output: Prefixed::discard(),
        };
        let message = port_in_use(&service).unwrap();
        assert!(
            message.starts_with(&format!(
                "port {} (service api) is already in use",
                addr.port()
            )),
            "{message}"
        );
        assert!(message.contains("API_ADDR"), "{message}");
        drop(listener);
        assert_eq!(port_in_use(&service), None);
    }
}
