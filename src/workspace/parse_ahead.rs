//! Checks that the Rust files snippets were spliced into still parse: each splice queues the
//! file's new text, and whichever thread is free parses the queued texts that have settled (a
//! few more texts queued after them), the longest-waiting first, while the command goes on.
//!
//! Parsing the spliced files was most of what [`super::Workspace::finish`] did after the last
//! module was installed (some 90 KB of Rust in `saaskit new`). `new` lends the queue the thread
//! that rendered its modules ahead ([`super::Prerendered`]) once that is done
//! ([`ParseAhead::work`]); a text spliced again before its turn is dropped unparsed, and a text
//! parsed and then spliced again is parsed again. `finish` parses what is still queued, with the
//! worker, and takes the verdicts on the very texts the files end with: the same verdicts as
//! parsing every file at the end.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::edit::inject;
use crate::stage::change::{Text, same_text};

/// How many texts are queued after a file's text before a worker parses it: a file spliced
/// again soon after would be parsed twice.
const SETTLED_AFTER: u64 = 8;

/// The queue of texts to parse, and the verdicts so far.
#[derive(Default)]
pub struct ParseAhead {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// The latest text of each file not parsed yet, by path, with when it was queued.
    queued: BTreeMap<String, (u64, Text)>,
    /// How many texts were queued so far: the order of `queued`.
    count: u64,
    /// Each text parsed: its file, the text, whether it parses.
    verdicts: Vec<(String, Text, bool)>,
    /// No more texts come: a worker waiting for one stops.
    closed: bool,
    /// How many texts a worker is parsing now: [`ParseAhead::verdicts`] waits for those only,
    /// not for a worker asleep to wake up (which takes milliseconds on some virtual machines).
    parsing: usize,
}

impl ParseAhead {
    /// The Rust file `path` now reads `text`: to be parsed, unless it changes again first or
    /// this very text was parsed already.
    pub(super) fn queue(&self, path: &str, text: &Text) {
        let mut state = self.lock();
        let known = (state.verdicts.iter())
            .any(|(parsed, parsed_text, _)| parsed == path && same_text(parsed_text, text));
        if known {
            return;
        }
        state.count += 1;
        let order = state.count;
        state.queued.insert(path.to_string(), (order, text.clone()));
        let settled = (state.queued.values()).any(|(queued, _)| order - queued >= SETTLED_AFTER);
        drop(state);
        if settled {
            self.wake.notify_one();
        }
    }

    /// Parses queued texts, the longest-waiting first, until [`Self::verdicts`] closes the
    /// queue: for a thread that would otherwise be idle.
    pub fn work(&self) {
        let mut state = self.lock();
        loop {
            if let Some((path, text)) = take_oldest(&mut state) {
                state.parsing += 1;
                drop(state);
                let parses = inject::file_parses(&text);
                state = self.lock();
                state.verdicts.push((path, text, parses));
                state.parsing -= 1;
                if state.closed {
                    self.wake.notify_all();
                }
            } else if state.closed {
                return;
            } else {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    /// No more texts come: a worker stops (a command that failed before
    /// [`super::Workspace::finish`]).
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }

    /// Whether each of `files` (path, final text) parses. The queue is closed first: what is
    /// still queued is parsed on the calling thread, alongside the worker if there is one.
    pub(super) fn verdicts(&self, files: &[(&str, Text)]) -> Vec<bool> {
        for (path, text) in files {
            self.queue(path, text);
        }
        // Closed, every text queued is due, settled or not.
        self.close();
        loop {
            let next = take_oldest(&mut self.lock());
            let Some((path, text)) = next else { break };
            let parses = inject::file_parses(&text);
            self.lock().verdicts.push((path, text, parses));
        }
        let state = self
            .wake
            .wait_while(self.lock(), |state| state.parsing > 0)
            .unwrap_or_else(PoisonError::into_inner);
        files
            .iter()
            .map(|(path, text)| {
                state
                    .verdicts
                    .iter()
                    .find(|(parsed, parsed_text, _)| parsed == path && same_text(parsed_text, text))
                    .map_or_else(|| inject::file_parses(text), |(_, _, parses)| *parses)
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The queued text that has waited longest.
fn take_oldest(state: &mut State) -> Option<(String, Text)> {
    let (path, (order, _)) = (state.queued.iter()).min_by_key(|(_, (order, _))| *order)?;
    if !state.closed && state.count - order < SETTLED_AFTER {
        return None;
    }
    let path = path.clone();
    let (_, text) = state.queued.remove(&path)?;
    Some((path, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(source: &str) -> Text {
        Text::new(source.to_string())
    }

    #[test]
    fn each_file_is_judged_by_the_text_it_ends_with() {
        let ahead = ParseAhead::default();
        let (good, broken, fixed) = (text("fn a() {}\n"), text("fn a( {}\n"), text("fn b() {}\n"));
        std::thread::scope(|scope| {
            scope.spawn(|| ahead.work());
            ahead.queue("a.rs", &good);
            ahead.queue("b.rs", &broken);
            ahead.queue("c.rs", &broken);
            // The worker may have judged c.rs's broken text already: the fixed one counts.
            ahead.queue("c.rs", &fixed);
            // Written since by something other than a splice: parsed at the end.
            let late = text("fn a() {\n");
            let files = [
                ("a.rs", good),
                ("b.rs", broken),
                ("c.rs", fixed),
                ("d.rs", late),
            ];
            assert_eq!(ahead.verdicts(&files), [true, false, true, false]);
        });
    }

    #[test]
    fn a_worker_leaves_a_text_until_it_has_settled() {
        let ahead = ParseAhead::default();
        let first = text("fn a() {}\n");
        std::thread::scope(|scope| {
            scope.spawn(|| ahead.work());
            ahead.queue("a.rs", &first);
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(ahead.lock().verdicts.is_empty(), "parsed before it settled");
            let others: Vec<(String, Text)> = (0..SETTLED_AFTER)
                .map(|index| (format!("{index}.rs"), text("struct S;\n")))
                .collect();
            for (path, source) in &others {
                ahead.queue(path, source);
            }
            let mut files = vec![("a.rs", first.clone())];
            files.extend(
                others
                    .iter()
                    .map(|(path, source)| (path.as_str(), source.clone())),
            );
            assert!(ahead.verdicts(&files).iter().all(|parses| *parses));
        });
    }

    #[test]
    fn without_a_worker_the_caller_parses_everything() {
        let ahead = ParseAhead::default();
        ahead.queue("a.rs", &text("struct A;\n"));
        let files = [("a.rs", text("struct A;\n")), ("b.rs", text("fn b() {}\n"))];
        assert_eq!(ahead.verdicts(&files), [true, true]);
        // A worker lent after the end has nothing to do.
        ahead.work();
    }

    #[test]
    fn a_text_parsed_already_is_not_parsed_again() {
        let ahead = ParseAhead::default();
        let source = text("fn a() {}\n");
        ahead.queue("a.rs", &source);
        assert_eq!(ahead.verdicts(&[("a.rs", source.clone())]), [true]);
        ahead.queue("a.rs", &source);
        assert!(ahead.lock().queued.is_empty());
    }
}
