//! Parses of files kept with the text they were made from, for the next edit of the same file
//! within one command.

use std::collections::BTreeMap;

use crate::stage::change::{Text, same_text};

/// For each file, the last text a command gave it and what parsing that text gives (a file's
/// fences, a `Cargo.toml`'s document): `new` edits a few files dozens of times, and each edit
/// starts from the kept parse instead of parsing the file again, as long as the file is still
/// exactly that text (nothing else wrote it since). The text is kept shared with the tree, so
/// that finding the file unchanged compares two pointers, not two copies of the file.
pub(super) struct KeptParses<T> {
    by_path: BTreeMap<String, (Text, T)>,
}

impl<T> Default for KeptParses<T> {
    fn default() -> Self {
        KeptParses {
            by_path: BTreeMap::new(),
        }
    }
}

impl<T> KeptParses<T> {
    /// The parse kept for `path`, taken out, if `current` (the file's text now) is the text it
    /// was kept with.
    pub(super) fn take(&mut self, path: &str, current: &str) -> Option<T> {
        self.by_path
            .remove(path)
            .filter(|(text, _)| same_text(text, current))
            .map(|(_, parsed)| parsed)
    }

    /// The parse kept for `path`, left kept, if `current` is the text it was kept with.
    pub(super) fn get(&self, path: &str, current: &str) -> Option<&T> {
        (self.by_path.get(path))
            .filter(|(text, _)| same_text(text, current))
            .map(|(_, parsed)| parsed)
    }

    /// Keeps `parsed` for `path`, as the parse of `text`, the file's text now.
    pub(super) fn keep(&mut self, path: &str, text: Text, parsed: T) {
        self.by_path.insert(path.to_string(), (text, parsed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_is_given_back_only_for_the_text_it_was_kept_with() {
        let mut kept = KeptParses::default();
        kept.keep("a.rs", Text::new("fn a() {}\n".to_string()), 1);
        assert_eq!(kept.get("a.rs", "fn b() {}\n"), None);
        assert_eq!(kept.get("a.rs", "fn a() {}\n"), Some(&1));
        assert_eq!(kept.take("a.rs", "fn a() {}\n"), Some(1));
        assert_eq!(kept.take("a.rs", "fn a() {}\n"), None, "taken out");
        kept.keep("a.rs", Text::new("fn a() {}\n".to_string()), 2);
        assert_eq!(kept.take("a.rs", "fn b() {}\n"), None, "the file changed");
        assert_eq!(kept.take("a.rs", "fn a() {}\n"), None, "dropped once stale");
        assert_eq!(kept.take("b.rs", ""), None);
    }
}
