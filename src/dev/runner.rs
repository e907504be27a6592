//! How a service is run, decided by its kind: what to build, which program to start, and what
//! identifies the build it runs (so that a rebuild restarts only the services it changed).
//!
//! A Rust service is a binary of the Cargo package named after it, built by the workspace's
//! cargo build. A TypeScript (`nest`) service is a Node project in its folder, installed and
//! built by its own steps ([`Runner::prepare`]) before it starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Result, bail};

use crate::edit::render::ServiceVars;
use crate::model::catalog::{Language, SERVICE_KINDS};
use crate::model::manifest::ServiceSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// The binary target `bin` of Cargo package `package`, built by `cargo build` in the
    /// workspace and run from where cargo put it (so `CARGO_TARGET_DIR` is honoured).
    RustBinary { package: String, bin: String },
    /// A Node project in `dir` (from the workspace root), run with the scripts of its
    /// package.json: its dependencies installed with `npm ci`, built with `npm run build`, started
    /// with `npm start` (see [`Runner::prepare`]).
    Node { dir: String },
}

/// One step before a service can start (installing its dependencies, building it), run with its
/// output prefixed like the service's.
pub struct Step {
    /// `npm ci`, for messages.
    pub what: String,
    pub command: Command,
}

/// The executables a cargo build produced, by binary target name.
pub type Executables = BTreeMap<String, PathBuf>;

/// What identifies one build of a program on disk: cargo replaces a rebuilt binary with a new
/// file (a new inode and modification time), and leaves an unchanged one alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
}

impl Fingerprint {
    pub fn of(path: &Path) -> Option<Fingerprint> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(Fingerprint {
            inode: std::os::unix::fs::MetadataExt::ino(&metadata),
            modified: metadata.modified().ok(),
            len: metadata.len(),
        })
    }
}

impl Runner {
    /// The runner of a service of the manifest, by its kind.
    pub fn for_service(spec: &ServiceSpec) -> Result<Runner> {
        match spec.kind.as_str() {
            kind if !SERVICE_KINDS.contains(&kind) => bail!(
                "saaskit dev does not know how to run service `{}` of kind `{kind}`",
                spec.name
            ),
            kind if Language::of_kind(kind) == Language::TypeScript => Ok(Runner::Node {
                dir: ServiceVars::dir_of(&spec.name),
            }),
            _ => Ok(Runner::RustBinary {
                package: spec.name.clone(),
                bin: spec.name.clone(),
            }),
        }
    }

    /// The Cargo package to build before running, if any.
    pub fn cargo_package(&self) -> Option<&str> {
        match self {
            Runner::RustBinary { package, .. } => Some(package),
            Runner::Node { .. } => None,
        }
    }

    /// What must run before the service starts, in order: for a Node project, `npm ci` when
    /// `node_modules` is missing or older than `package-lock.json` (npm keeps its own copy of
    /// the lock in `node_modules/.package-lock.json`), then `npm run build`. Nothing for a Rust
    /// binary: the workspace's cargo build made it.
    pub fn prepare(&self, root: &Path) -> Vec<Step> {
        let Runner::Node { dir } = self else {
            return Vec::new();
        };
        let project = root.join(dir);
        let mut steps = Vec::new();
        if needs_install(&project) {
            let mut command = npm(&project, &["ci"]);
            // better-sqlite3 compiles against the headers of the Node that runs it rather than
            // downloading them (docs/nest.md): npm must be told where they are.
            if std::env::var_os("npm_config_nodedir").is_none()
                && let Some(prefix) = node_prefix_with_headers()
            {
                command.env("npm_config_nodedir", prefix);
            }
            steps.push(Step {
                what: "npm ci".into(),
                command,
            });
        }
        steps.push(Step {
            what: "npm run build".into(),
            command: npm(&project, &["run", "build"]),
        });
        steps
    }

    /// The program this runner starts, from the build's executables.
    pub fn program(&self, executables: &Executables) -> Result<PathBuf> {
        match self {
            Runner::RustBinary { package, bin } => match executables.get(bin) {
                Some(path) => Ok(path.clone()),
                None => bail!(
                    "cargo built no binary `{bin}`: does services/{package}/Cargo.toml still define package `{package}` with its binary?"
                ),
            },
            Runner::Node { .. } => Ok(PathBuf::from("npm")),
        }
    }

    /// The command that starts the service. A Rust binary runs in the workspace root (where it
    /// finds `.env` and where relative paths of the configuration, such as a SQLite file, are
    /// resolved); a Node project runs `npm start` in its folder (it finds `.env` in a parent
    /// folder and resolves relative paths from there, see docs/nest.md).
    pub fn command(&self, executables: &Executables, root: &Path) -> Result<Command> {
        match self {
            Runner::RustBinary { .. } => {
                let mut command = Command::new(self.program(executables)?);
                command.current_dir(root);
                Ok(command)
            }
            Runner::Node { dir } => Ok(npm(&root.join(dir), &["start"])),
        }
    }

    /// Identifies what [`Runner::command`] would start now. A Node project has no build of
    /// cargo's: it restarts when its folder changes (`watch::services_touched`).
    pub fn fingerprint(&self, executables: &Executables) -> Option<Fingerprint> {
        match self {
            Runner::RustBinary { .. } => Fingerprint::of(&self.program(executables).ok()?),
            Runner::Node { .. } => None,
        }
    }

    /// For the status table.
    pub fn describe(&self) -> String {
        match self {
            Runner::RustBinary { bin, .. } => format!("cargo bin `{bin}`"),
            Runner::Node { dir } => format!("`npm start` in {dir}"),
        }
    }
}

/// `npm <args>` in `project`.
fn npm(project: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("npm");
    command.args(args).current_dir(project);
    command
}

/// Whether `npm ci` must run in `project`: no `node_modules`, or a `package-lock.json` newer
/// than the copy npm keeps of the lock it installed.
pub fn needs_install(project: &Path) -> bool {
    let modified = |path: PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    match (
        modified(project.join("node_modules/.package-lock.json")),
        modified(project.join("package-lock.json")),
    ) {
        (None, _) => true,
        (Some(installed), Some(lock)) => lock > installed,
        (Some(_), None) => false,
    }
}

/// The installation prefix of the `node` on PATH (`/usr` for `/usr/bin/node`), if it holds
/// Node's headers (`include/node/node.h`).
fn node_prefix_with_headers() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let node = std::env::split_paths(&path)
        .map(|dir| dir.join("node"))
        .find(|candidate| candidate.is_file())?;
    let node = std::fs::canonicalize(node).ok()?;
    let prefix = node.parent()?.parent()?.to_path_buf();
    prefix
        .join("include/node/node.h")
        .is_file()
        .then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: &str) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            kind: kind.into(),
            port: 8080,
            modules: Vec::new(),
        }
    }

    #[test]
    fn every_generated_kind_is_the_rust_binary_of_its_package() {
        let rust_kinds = crate::model::catalog::SERVICE_KINDS
            .into_iter()
            .filter(|kind| Language::of_kind(kind) == Language::Rust);
        for kind in rust_kinds {
            let runner = Runner::for_service(&spec("billing", kind)).unwrap();
            assert_eq!(runner.cargo_package(), Some("billing"));
        }
        assert!(Runner::for_service(&spec("web", "nextjs")).is_err());
    }

    #[test]
    fn a_nest_service_is_a_node_project_installed_when_its_lock_is_newer() {
        let runner = Runner::for_service(&spec("web", "nest")).unwrap();
        assert_eq!(
            runner,
            Runner::Node {
                dir: "services/web".into()
            }
        );
        assert_eq!(runner.cargo_package(), None);
        let root = tempfile::tempdir().unwrap();
        let project = root.path().join("services/web");
        std::fs::create_dir_all(project.join("node_modules")).unwrap();
        std::fs::write(project.join("package-lock.json"), "{}").unwrap();
        let steps = |runner: &Runner| -> Vec<String> {
            runner
                .prepare(root.path())
                .into_iter()
                .map(|s| s.what)
                .collect()
        };
        assert_eq!(
            steps(&runner),
            ["npm ci", "npm run build"],
            "nothing installed yet"
        );
        std::fs::write(project.join("node_modules/.package-lock.json"), "{}").unwrap();
        assert_eq!(steps(&runner), ["npm run build"]);
        // A lock saved after the install (a dependency added) installs again.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(project.join("package-lock.json"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(steps(&runner), ["npm ci", "npm run build"]);
        let command = runner.command(&Executables::new(), root.path()).unwrap();
        assert_eq!(command.get_program(), "npm");
        assert_eq!(command.get_current_dir(), Some(project.as_path()));
        assert!(
            Runner::for_service(&spec("api", "api"))
                .unwrap()
                .prepare(root.path())
                .is_empty()
        );
    }

    #[test]
    fn the_program_comes_from_the_build() {
        let runner = Runner::for_service(&spec("api", "api")).unwrap();
        let mut executables = Executables::new();
        assert!(runner.program(&executables).is_err());
        executables.insert("api".into(), PathBuf::from("/t/debug/api"));
        assert_eq!(
            runner.program(&executables).unwrap(),
            PathBuf::from("/t/debug/api")
        );
    }
}
