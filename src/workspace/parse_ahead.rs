//! Checks that the Rust files snippets were spliced into still parse, on a second thread while
//! the command goes on installing modules.
//!
//! Parsing the spliced files was most of what [`super::Workspace::finish`] did in `saaskit new`:
//! some 90 KB of Rust parsed after the last module was installed, while the machine's other core
//! had been idle all along. Each splice now hands the file's new text to a worker thread, which
//! parses the latest text of each file whenever it is free (a text spliced again before its turn
//! is dropped unparsed); `finish` parses only what is left, the texts of the last splices,
//! on both threads, and takes the worker's verdicts for the rest. The verdicts are the same as
//! parsing every file at the end: each is for the very text the file ends with.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::edit::inject;
use crate::stage::change::{Text, same_text};

pub(super) struct ParseAhead {
    mode: Mode,
}

enum Mode {
    /// A workspace that is never finished (the fresh render `diff` compares with): nothing to
    /// parse ahead of time.
    Off,
    /// Nothing spliced yet: no thread started.
    Idle,
    Running(Worker),
}

struct Worker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// The latest text of each file not parsed yet, by path.
    pending: BTreeMap<String, Text>,
    /// Each text parsed: its file, the text, whether it parses.
    verdicts: Vec<(String, Text, bool)>,
    closing: bool,
}

impl ParseAhead {
    /// Parses ahead from the first splice on.
    pub(super) fn new() -> ParseAhead {
        ParseAhead { mode: Mode::Idle }
    }

    /// Parses nothing ahead (a workspace that is never finished).
    pub(super) fn off() -> ParseAhead {
        ParseAhead { mode: Mode::Off }
    }

    /// The Rust file `path` now reads `text`: to be parsed when the worker is free, unless it
    /// changes again first.
    pub(super) fn submit(&mut self, path: &str, text: &Text) {
        if matches!(self.mode, Mode::Idle) {
            let shared = Arc::new(Shared::default());
            let worker = Arc::clone(&shared);
            // Without a thread (the system refused one), `finish` parses every file itself.
            self.mode = match std::thread::Builder::new()
                .name("saaskit-parse".into())
                .spawn(move || worker.work())
            {
                Ok(thread) => Mode::Running(Worker {
                    shared,
                    thread: Some(thread),
                }),
                Err(_) => Mode::Off,
            };
        }
        if let Mode::Running(worker) = &self.mode {
            let mut state = worker.shared.lock();
            state.pending.insert(path.to_string(), text.clone());
            drop(state);
            worker.shared.wake.notify_one();
        }
    }

    /// Whether each of `files` (path, final text) parses. `alongside` runs on the calling thread
    /// first (what a command can do before it knows, such as serializing its lockfile) while
    /// the worker parses the texts left; then both parse what is still left.
    pub(super) fn finish<T>(
        mut self,
        files: &[(&str, Text)],
        alongside: impl FnOnce() -> T,
    ) -> (Vec<bool>, T) {
        let result = alongside();
        let verdicts = match &mut self.mode {
            Mode::Running(worker) => {
                while worker.shared.parse_next() {}
                worker.stop();
                std::mem::take(&mut worker.shared.lock().verdicts)
            }
            Mode::Off | Mode::Idle => Vec::new(),
        };
        let parses = files
            .iter()
            .map(|(path, text)| {
                verdicts
                    .iter()
                    .find(|(parsed, parsed_text, _)| parsed == path && same_text(parsed_text, text))
                    .map_or_else(|| inject::file_parses(text), |(_, _, parses)| *parses)
            })
            .collect();
        (parses, result)
    }
}

impl Worker {
    /// Lets the worker finish what it is parsing and end.
    fn stop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for Worker {
    /// A workspace dropped unfinished (a command that failed): what is pending is not parsed.
    fn drop(&mut self) {
        self.shared.lock().pending.clear();
        if !std::thread::panicking() {
            self.stop();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The worker's loop: parses pending texts until told to stop.
    fn work(&self) {
        loop {
            let state = self
                .wake
                .wait_while(self.lock(), |state| {
                    state.pending.is_empty() && !state.closing
                })
                .unwrap_or_else(PoisonError::into_inner);
            if state.pending.is_empty() {
                return;
            }
            drop(state);
            self.parse_next();
        }
    }

    /// Parses the next pending text; `false` when none is pending.
    fn parse_next(&self) -> bool {
        let next = self.lock().pending.pop_first();
        let Some((path, text)) = next else {
            return false;
        };
        let parses = inject::file_parses(&text);
        self.lock().verdicts.push((path, text, parses));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(source: &str) -> Text {
        Text::new(source.to_string())
    }

    #[test]
    fn each_file_is_judged_by_the_text_it_ends_with() {
        let mut ahead = ParseAhead::new();
        let (good, broken, fixed) = (text("fn a() {}\n"), text("fn a( {}\n"), text("fn b() {}\n"));
        ahead.submit("a.rs", &good);
        ahead.submit("b.rs", &broken);
        ahead.submit("c.rs", &broken);
        // The worker may have judged the broken text of c.rs already: the fixed one counts.
        ahead.submit("c.rs", &fixed);
        let (parses, alongside) = ahead.finish(
            &[("a.rs", good), ("b.rs", broken), ("c.rs", fixed)],
            || "done alongside",
        );
        assert_eq!(parses, [true, false, true]);
        assert_eq!(alongside, "done alongside");
    }

    #[test]
    fn a_text_never_submitted_is_parsed_at_the_end() {
        let mut ahead = ParseAhead::new();
        ahead.submit("a.rs", &text("fn a() {}\n"));
        // Written since by something other than a splice.
        let (parses, ()) = ahead.finish(&[("a.rs", text("fn a() {\n"))], || ());
        assert_eq!(parses, [false]);
        let (parses, ()) = ParseAhead::off().finish(&[("b.rs", text("struct B;\n"))], || ());
        assert_eq!(parses, [true]);
    }

    #[test]
    fn a_workspace_dropped_unfinished_stops_its_worker() {
        let mut ahead = ParseAhead::new();
        for index in 0..50 {
            ahead.submit(&format!("{index}.rs"), &text("fn a() {}\n"));
        }
        drop(ahead);
    }
}
