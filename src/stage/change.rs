//! One file's planned change, and the two ways the user reads a list of them: a unified diff
//! (`--dry-run`) and one line per file.
//!
//! The leaf of `stage/`: [`crate::stage::tree`] produces changes, [`crate::stage::base_store`]
//! folds the pristine copies among them into one file, [`crate::stage::fsio`] writes them.

use similar::{Algorithm, udiff::unified_diff};

/// One file's planned change. `None` means "does not exist".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
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
        let new = change.after.as_deref().unwrap_or("");
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
