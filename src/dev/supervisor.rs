//! Child processes that leave nothing behind: each runs as the leader of a process group of its
//! own, so that stopping it signals the whole group (the processes it started included), and a
//! stop waits until the group is empty, escalating from SIGTERM to SIGKILL.
//!
//! A group of its own also keeps the terminal's Ctrl-C away from the children: `saaskit dev`
//! receives it and stops them in order, instead of every process receiving it at once.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::output::Prefixed;

/// How many of its last lines a service that failed is shown with.
pub const TAIL_LINES: usize = 20;

/// How long a stop waits after SIGTERM before it sends SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);

/// Starts `command` as the leader of a new process group (whose id is its pid).
pub fn spawn_group(command: &mut Command) -> io::Result<Child> {
    command.process_group(0).spawn()
}

/// Sends `signal` to every process of group `pgid`; a group that is already gone is no error.
pub fn signal_group(pgid: u32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid as i32), signal);
}

/// Whether any process of group `pgid` is still alive (or not yet reaped).
pub fn group_alive(pgid: u32) -> bool {
    !matches!(killpg(Pid::from_raw(pgid as i32), None), Err(Errno::ESRCH))
}

/// A running service: its process group, and its output, which goes to stdout behind its
/// prefix as it comes and whose last lines are kept for when it fails.
pub struct Process {
    child: Child,
    status: Option<ExitStatus>,
    tail: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Process {
    /// Starts `command` in a group of its own, its stdout and stderr written by `output`.
    pub fn spawn(mut command: Command, output: &Prefixed) -> io::Result<Process> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_group(&mut command)?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(forward(stdout, output.clone(), Arc::clone(&tail)));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(forward(stderr, output.clone(), Arc::clone(&tail)));
        }
        Ok(Process {
            child,
            status: None,
            tail,
            readers,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the leader exited, once it has.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// The leader has exited and no process of its group is left.
    pub fn is_gone(&mut self) -> bool {
        self.exit_status().is_some() && !group_alive(self.pid())
    }

    /// Its last lines, once its output has ended (or after a second, if a process it left
    /// behind still holds its output open).
    pub fn last_lines(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.tail.lock().unwrap().iter().cloned().collect()
    }
}

/// Copies lines of `from` to `output`, keeping the last [`TAIL_LINES`] in `tail`.
fn forward(
    from: impl Read + Send + 'static,
    output: Prefixed,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buffer);
            let line = line.trim_end_matches(['\r', '\n']);
            // A message of the development outbox: one line with its link, instead of the log's.
            match super::output::outbox_line(line) {
                Some(mail) => output.line(&mail),
                None => output.line(line),
            }
            let mut tail = tail.lock().unwrap();
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        }
    })
}

/// Stops every process group of `processes` at once: SIGTERM, then SIGKILL to what is left
/// after `grace`, or at once when `hurry()` says so (a second Ctrl-C). Returns when every group
/// is empty.
pub fn stop_all(processes: &mut [&mut Process], grace: Duration, hurry: &mut dyn FnMut() -> bool) {
    for process in processes.iter_mut() {
        if !process.is_gone() {
            signal_group(process.pid(), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    let mut killed = false;
    loop {
        if processes.iter_mut().all(|p| p.is_gone()) {
            return;
        }
        if !killed && (Instant::now() >= deadline || hurry()) {
            for process in processes.iter_mut() {
                signal_group(process.pid(), Signal::SIGKILL);
            }
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn a_stop_ends_the_processes_a_child_started() {
        let output = Prefixed::discard();
        // The shell ignores SIGTERM and its background child ignores it too: only SIGKILL ends
        // them, and the group takes the grandchild along.
        let mut process = Process::spawn(
            shell("trap '' TERM; sh -c \"trap '' TERM; sleep 30\" & echo started; wait"),
            &output,
        )
        .unwrap();
        let pgid = process.pid();
        let deadline = Instant::now() + Duration::from_secs(10);
        while process.tail.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(group_alive(pgid));
        let started = Instant::now();
        stop_all(&mut [&mut process], Duration::from_millis(300), &mut || {
            false
        });
        assert!(!group_alive(pgid), "the whole group is gone");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(process.last_lines(), vec!["started".to_string()]);
    }

    #[test]
    fn the_last_lines_of_a_failed_process_are_kept() {
        let output = Prefixed::discard();
        let mut process = Process::spawn(
            shell("for i in $(seq 1 30); do echo line $i; done; sleep 0.2; echo oops >&2; exit 3"),
            &output,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !process.is_gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(process.exit_status().and_then(|s| s.code()), Some(3));
        let lines = process.last_lines();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines.first().unwrap(), "line 12");
        assert_eq!(lines.last().unwrap(), "oops");
    }
}
