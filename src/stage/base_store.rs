//! The base store: a pristine copy of every generated file as saaskit last wrote it, what
//! `saaskit upgrade` merges against.
//!
//! Commands address a copy as `.saaskit/base/<path>` in their [`crate::stage::tree::Tree`], as if it were
//! a file, but on disk every copy lives in one file, [`PACK_FILE`]: a workspace has as many copies
//! as generated files, and creating a file costs the file system far more than writing its bytes
//! (one file instead of a hundred halves what `saaskit new` creates). [`on_disk`] turns a plan's
//! copies into the change of that one file, just before it is written.
//!
//! Workspaces generated before the pack keep their copies as files under `.saaskit/base/`; they
//! are read from there, and the first command that changes a copy moves them all into the pack.
//!
//! Format (UTF-8 text, diffable): a header line, then for each copy, in path order, a line
//! `=== <path> <length in bytes>`, exactly that many bytes of content, and a newline.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};

use crate::stage::change::Change;

/// Where commands address the copies: `.saaskit/base/<path>` is the copy of `<path>`.
pub const BASE_DIR: &str = ".saaskit/base";
/// The one file that holds them on disk.
pub const PACK_FILE: &str = ".saaskit/base.pack";
const HEADER: &str = "# saaskit: pristine copies of the generated files (saaskit upgrade merges against them; do not edit)\n";
const ENTRY: &str = "=== ";

/// The copies as stored: by path relative to the workspace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stored {
    pub copies: BTreeMap<String, String>,
    /// Copies read from files under `.saaskit/base/` (a workspace from before the pack), which
    /// the next write moves into the pack.
    pub loose: bool,
}

/// The generated file a base-store path is the copy of: `services/api/src/main.rs` for
/// `.saaskit/base/services/api/src/main.rs`.
pub fn original(path: &str) -> Option<&str> {
    path.strip_prefix(BASE_DIR)?.strip_prefix('/')
}

/// The copies of the workspace at `root`: from the pack, else from the loose files of an older
/// workspace, else none.
pub fn load(root: &Path) -> Result<Stored> {
    let pack = root.join(PACK_FILE);
    match std::fs::read_to_string(&pack) {
        Ok(text) => {
            let copies = parse(&text).map_err(|e| {
                anyhow!(
                    "{}:{e}\nThe pristine copies are damaged: restore the file from version control, \
                     or delete it (the next `saaskit upgrade` then goes by saaskit.lock's hashes).",
                    pack.display()
                )
            })?;
            Ok(Stored {
                copies,
                loose: false,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => load_loose(root),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", pack.display())),
    }
}

fn load_loose(root: &Path) -> Result<Stored> {
    let dir = root.join(BASE_DIR);
    if !dir.is_dir() {
        return Ok(Stored::default());
    }
    let mut copies = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&dir) {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(&dir) else {
            continue;
        };
        let content = std::fs::read_to_string(entry.path())
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        copies.insert(relative.to_string_lossy().replace('\\', "/"), content);
    }
    Ok(Stored {
        copies,
        loose: true,
    })
}

/// The plan as it is written: its changes to copies (`.saaskit/base/<path>`) become one change of
/// [`PACK_FILE`], plus, for an older workspace, the removal of its loose copies. `stored` is what
/// [`load`] gave for the same workspace.
pub fn on_disk(stored: &Stored, changes: &[Change]) -> Vec<Change> {
    let (copy_changes, file_changes): (Vec<&Change>, Vec<&Change>) = changes
        .iter()
        .partition(|change| original(&change.path).is_some());
    let mut written: Vec<Change> = file_changes.into_iter().cloned().collect();
    if copy_changes.is_empty() {
        return written;
    }
    // The copies as they will be, borrowed: a new workspace's are a megabyte.
    let mut copies: BTreeMap<&str, &str> = stored
        .copies
        .iter()
        .map(|(path, content)| (path.as_str(), content.as_str()))
        .collect();
    for change in copy_changes {
        let path = original(&change.path).unwrap_or_default();
        match &change.after {
            Some(content) => copies.insert(path, content),
            None => copies.remove(path),
        };
    }
    let before = if stored.loose || stored.copies.is_empty() {
        None
    } else {
        Some(serialize(&stored.copies))
    };
    let after = (!copies.is_empty()).then(|| serialize(&copies));
    if before != after {
        written.push(Change {
            path: PACK_FILE.to_string(),
            before,
            after,
        });
    }
    if stored.loose {
        written.extend(stored.copies.iter().map(|(path, content)| Change {
            path: format!("{BASE_DIR}/{path}"),
            before: Some(content.clone()),
            after: None,
        }));
    }
    written.sort_by(|a, b| a.path.cmp(&b.path));
    written
}

/// The pack's text for `copies`.
pub fn serialize<K: AsRef<str>, V: AsRef<str>>(copies: &BTreeMap<K, V>) -> String {
    let size: usize = copies
        .iter()
        .map(|(p, c)| p.as_ref().len() + c.as_ref().len() + 32)
        .sum();
    let mut out = String::with_capacity(HEADER.len() + size);
    out.push_str(HEADER);
    for (path, content) in copies {
        let (path, content) = (path.as_ref(), content.as_ref());
        out.push_str(ENTRY);
        out.push_str(path);
        out.push(' ');
        out.push_str(&content.len().to_string());
        out.push('\n');
        out.push_str(content);
        out.push('\n');
    }
    out
}

/// The copies in a pack's text; the error names the line that is wrong (`<line>: <what>`).
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut rest = text.strip_prefix(HEADER).ok_or_else(|| {
        "1: not a saaskit pack (its first line is not saaskit's header)".to_string()
    })?;
    let mut line = 2;
    let mut copies = BTreeMap::new();
    while !rest.is_empty() {
        let (header, after) = rest
            .split_once('\n')
            .ok_or_else(|| format!("{line}: an entry's line is cut short"))?;
        let (path, length) = header
            .strip_prefix(ENTRY)
            .and_then(|entry| entry.rsplit_once(' '))
            .ok_or_else(|| {
                format!("{line}: expected `{ENTRY}<path> <length>`, found `{header}`")
            })?;
        let length: usize = length
            .parse()
            .map_err(|_| format!("{line}: `{length}` is not a length in bytes"))?;
        let content = after
            .get(..length)
            .ok_or_else(|| format!("{line}: the copy of {path} is cut short"))?;
        rest = after[length..]
            .strip_prefix('\n')
            .ok_or_else(|| format!("{line}: the copy of {path} is longer than its length says"))?;
        if copies
            .insert(path.to_string(), content.to_string())
            .is_some()
        {
            return Err(format!("{line}: {path} has two copies"));
        }
        // memchr's count: `str::matches` walks a char at a time, and a pack holds megabytes.
        line += 1 + memchr::memchr_iter(b'\n', content.as_bytes()).count() + 1;
    }
    Ok(copies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copies(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect()
    }

    fn change(path: &str, before: Option<&str>, after: Option<&str>) -> Change {
        Change {
            path: path.into(),
            before: before.map(str::to_string),
            after: after.map(str::to_string),
        }
    }

    #[test]
    fn copies_of_any_text_come_back_from_the_pack_unchanged() {
        let copies = copies(&[
            ("Cargo.toml", "[workspace]\n"),
            ("a b/with spaces.rs", "no newline at the end"),
            ("empty", ""),
            ("tricky.txt", "=== fake 3\nabc\n\n=== \n"),
            ("unicode.md", "é ü 🚀\r\nwindows line\r\n"),
        ]);
        let text = serialize(&copies);
        assert_eq!(parse(&text).unwrap(), copies);
        assert_eq!(parse(HEADER).unwrap(), BTreeMap::new());
    }

    #[test]
    fn a_damaged_pack_is_refused_with_the_line() {
        let text = serialize(&copies(&[("a", "one\ntwo\n"), ("b", "three\n")]));
        assert!(parse("hello\n").unwrap_err().starts_with("1:"));
        let cut = &text[..text.len() - 3];
        assert_eq!(parse(cut).unwrap_err(), "6: the copy of b is cut short");
        let longer = text.replace("=== b 6", "=== b 4");
        assert_eq!(
            parse(&longer).unwrap_err(),
            "6: the copy of b is longer than its length says"
        );
        let unknown = text.replace("=== b 6", "--- b 6");
        assert!(parse(&unknown).unwrap_err().starts_with("6: expected"));
        let twice = text.replace("=== b 6\nthree", "=== a 6\nthree");
        assert_eq!(parse(&twice).unwrap_err(), "6: a has two copies");
    }

    #[test]
    fn changes_to_copies_become_one_change_of_the_pack() {
        let stored = Stored {
            copies: copies(&[("a.rs", "old\n"), ("gone.rs", "bye\n")]),
            loose: false,
        };
        let plan = [
            change("a.rs", Some("old\n"), Some("new\n")),
            change(".saaskit/base/a.rs", Some("old\n"), Some("new\n")),
            change(".saaskit/base/gone.rs", Some("bye\n"), None),
            change(".saaskit/base/b.rs", None, Some("b\n")),
        ];
        let written = on_disk(&stored, &plan);
        let paths: Vec<&str> = written.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, [PACK_FILE, "a.rs"]);
        assert_eq!(written[0].before, Some(serialize(&stored.copies)));
        let after = parse(written[0].after.as_deref().unwrap()).unwrap();
        assert_eq!(after, copies(&[("a.rs", "new\n"), ("b.rs", "b\n")]));
    }

    #[test]
    fn loose_copies_of_an_older_workspace_move_into_the_pack() {
        let stored = Stored {
            copies: copies(&[("a.rs", "a\n"), ("b.rs", "b\n")]),
            loose: true,
        };
        let written = on_disk(
            &stored,
            &[change(".saaskit/base/a.rs", Some("a\n"), Some("A\n"))],
        );
        let summary: Vec<(&str, bool, bool)> = written
            .iter()
            .map(|c| (c.path.as_str(), c.before.is_some(), c.after.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                (".saaskit/base.pack", false, true),
                (".saaskit/base/a.rs", true, false),
                (".saaskit/base/b.rs", true, false),
            ]
        );
        let after = parse(written[0].after.as_deref().unwrap()).unwrap();
        assert_eq!(after, copies(&[("a.rs", "A\n"), ("b.rs", "b\n")]));
    }

    #[test]
    fn a_plan_without_copies_is_written_as_it_is_and_no_copies_means_no_pack() {
        let plan = [change("a.rs", None, Some("a\n"))];
        assert_eq!(on_disk(&Stored::default(), &plan), plan);
        let stored = Stored {
            copies: copies(&[("a.rs", "a\n")]),
            loose: false,
        };
        let written = on_disk(&stored, &[change(".saaskit/base/a.rs", Some("a\n"), None)]);
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].after, None);
    }
}
