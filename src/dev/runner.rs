//! How a service is run, decided by its kind: what to build, which program to start, and what
//! identifies the build it runs (so that a rebuild restarts only the services it changed).
//!
//! Every kind saaskit generates today is a Rust binary of the Cargo package named after the
//! service. A service in another language becomes another variant of [`Runner`], with its own
//! build step (or none) and command.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Result, bail};

use crate::model::catalog::{Language, SERVICE_KINDS};
use crate::model::manifest::ServiceSpec;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// The binary target `bin` of Cargo package `package`, built by `cargo build` in the
    /// workspace and run from where cargo put it (so `CARGO_TARGET_DIR` is honoured).
    RustBinary { package: String, bin: String },
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
            kind if SERVICE_KINDS.contains(&kind) && Language::of_kind(kind) == Language::Rust => {
                Ok(Runner::RustBinary {
                    package: spec.name.clone(),
                    bin: spec.name.clone(),
                })
            }
            other => bail!(
                "saaskit dev does not know how to run service `{}` of kind `{other}`",
                spec.name
            ),
        }
    }

    /// The Cargo package to build before running, if any.
    pub fn cargo_package(&self) -> Option<&str> {
        match self {
            Runner::RustBinary { package, .. } => Some(package),
        }
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
        }
    }

    /// The command that starts the service, in the workspace root (where it finds `.env` and
    /// where relative paths of the configuration, such as a SQLite file, are resolved).
    pub fn command(&self, executables: &Executables, root: &Path) -> Result<Command> {
        let mut command = Command::new(self.program(executables)?);
        command.current_dir(root);
        Ok(command)
    }

    /// Identifies what [`Runner::command`] would start now.
    pub fn fingerprint(&self, executables: &Executables) -> Option<Fingerprint> {
        Fingerprint::of(&self.program(executables).ok()?)
    }

    /// For the status table.
    pub fn describe(&self) -> String {
        match self {
            Runner::RustBinary { bin, .. } => format!("cargo bin `{bin}`"),
        }
    }
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
