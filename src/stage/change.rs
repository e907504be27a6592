//! One file's planned change, and the two ways the user reads a list of them: a unified diff
//! (`--dry-run`) and one line per file.
//!
//! The leaf of `stage/`: [`crate::stage::tree`] produces changes, [`crate::stage::base_store`]
//! folds the pristine copies among them into one file, [`crate::stage::fsio`] writes them.

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::Arc;

use similar::{Algorithm, udiff::unified_diff};

/// A file's content as planned, shared rather than copied between the places that hold the same
/// text: a generated file and its pristine copy are the same text until the user edits the file,
/// a megabyte and more in `saaskit new`. A file shipped verbatim in saaskit's binary is that
/// text itself, not a copy of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(Arc<Cow<'static, str>>);

impl Text {
    pub fn new(text: impl Into<Cow<'static, str>>) -> Text {
        Text(Arc::new(text.into()))
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text::new(text)
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// Whether two texts are the same, answered without reading them when both are the same shared
/// text (a splice checks that a file is still what it last wrote, dozens of times per file).
pub fn same_text(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// One file's planned change. `None` means "does not exist".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<Text>,
}

impl Change {
    /// The content after the change, `None` for a deletion.
    pub fn after_text(&self) -> Option<&str> {
        self.after.as_deref()
    }
}

/// The plan as a unified diff, as `git diff` would show it (`/dev/null` for created and deleted files).
pub fn render_diff(changes: &[&Change]) -> String {
    let mut out = String::new();
    for change in changes {
        let old_name = if change.before.is_some() {
            format!("a/{}", change.path)
        } else {
            "/dev/null".into()
        };
        let new_name = if change.after.is_some() {
            format!("b/{}", change.path)
        } else {
            "/dev/null".into()
        };
        let old = change.before.as_deref().unwrap_or("");
        let new = change.after_text().unwrap_or("");
        out.push_str(&unified_diff(
            Algorithm::Myers,
            old,
            new,
            3,
            Some((&old_name, &new_name)),
        ));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// One line per file: `create`, `update` or `delete`, for the summary after a command.
pub fn summarize(changes: &[&Change]) -> String {
    changes
        .iter()
        .map(|c| {
            let verb = match (&c.before, &c.after) {
                (None, _) => "create",
                (_, None) => "delete",
                _ => "update",
            };
            format!("  {verb:<6} {}\n", c.path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_same_when_shared_or_equal() {
        let text = Text::new("fn main() {}\n".to_string());
        let shared = Text::clone(&text);
        let copy = Text::new(text.to_string());
        assert!(same_text(&text, &shared));
        assert!(same_text(&text, &copy), "a copy is the same text");
        assert!(!same_text(&text, "fn main() {}"));
        assert!(
            !same_text(&text[..2], &text[..3]),
            "a prefix of the same text is not it"
        );
    }
}
