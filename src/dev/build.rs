//! The build: `cargo build` with its messages as JSON on stdout, from which the path of every
//! executable it produced is taken (so `CARGO_TARGET_DIR` and profiles are honoured), while
//! cargo renders the compiler's diagnostics on stderr as usual.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use nix::sys::signal::Signal;

use super::runner::Executables;
use super::supervisor::{group_alive, signal_group, spawn_group};

/// The arguments of `cargo`: the whole workspace, also when `--only` runs some of the services,
/// so that its dependencies are built with the same features as by a plain `cargo build` (and
/// not built a second time), and an error anywhere in it is shown at once.
pub fn cargo_args() -> Vec<String> {
    [
        "build",
        "--workspace",
        "--message-format=json-render-diagnostics",
    ]
    .map(String::from)
    .to_vec()
}

/// The binary target name and executable path of a `compiler-artifact` message of a binary.
pub fn executable(message: &str) -> Option<(String, PathBuf)> {
    let value: serde_json::Value = serde_json::from_str(message).ok()?;
    if value.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let target = value.get("target")?;
    let is_bin = target
        .get("kind")?
        .as_array()?
        .iter()
        .any(|kind| kind.as_str() == Some("bin"));
    if !is_bin {
        return None;
    }
    let path = value.get("executable")?.as_str()?;
    Some((
        target.get("name")?.as_str()?.to_string(),
        PathBuf::from(path),
    ))
}

pub enum Outcome {
    Built(Executables),
    /// Cargo failed; it has printed why on stderr.
    Failed,
}

/// A cargo build running in a process group of its own; dropped before it finished, it is
/// cancelled.
pub struct Build {
    child: Child,
    messages: Option<JoinHandle<Executables>>,
    finished: bool,
    pub started: Instant,
}

impl Build {
    pub fn start(root: &Path, args: &[String]) -> Result<Build> {
        let mut command = Command::new("cargo");
        command
            .args(args)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = spawn_group(&mut command)
            .context("cannot run `cargo`: is Rust installed (https://rustup.rs)?")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let messages = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(io::Result::ok)
                .filter_map(|line| executable(&line))
                .collect()
        });
        Ok(Build {
            child,
            messages: Some(messages),
            finished: false,
            started: Instant::now(),
        })
    }

    /// The outcome, once cargo has finished.
    pub fn poll(&mut self) -> Result<Option<Outcome>> {
        let Some(status) = self.child.try_wait()? else {
            return Ok(None);
        };
        self.finished = true;
        let executables = self
            .messages
            .take()
            .map(|reader| reader.join().unwrap_or_default())
            .unwrap_or_default();
        Ok(Some(if status.success() {
            Outcome::Built(executables)
        } else {
            Outcome::Failed
        }))
    }

    /// Stops cargo and the compilers it runs.
    fn cancel(&mut self) {
        let pgid = self.child.id();
        signal_group(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let _ = self.child.try_wait();
            if !group_alive(pgid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_group(pgid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Build {
    fn drop(&mut self) {
        if !self.finished {
            self.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_come_from_binary_artifacts_only() {
        let bin = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/services/api#0.1.0","target":{"kind":["bin"],"crate_types":["bin"],"name":"api"},"filenames":["/t/debug/api"],"executable":"/t/debug/api","fresh":false}"#;
        assert_eq!(
            executable(bin),
            Some(("api".to_string(), PathBuf::from("/t/debug/api")))
        );
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"acme_core"},"filenames":["/t/debug/libacme_core.rlib"],"executable":null,"fresh":true}"#;
        assert_eq!(executable(lib), None);
        let finished = r#"{"reason":"build-finished","success":true}"#;
        assert_eq!(executable(finished), None);
        assert_eq!(executable("not json"), None);
    }
}
