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
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result, anyhow};

use crate::stage::change::{Change, Text};

/// Where commands address the copies: `.saaskit/base/<path>` is the copy of `<path>`.
pub const BASE_DIR: &str = ".saaskit/base";
/// The one file that holds them on disk.
pub const PACK_FILE: &str = ".saaskit/base.pack";
const HEADER: &str = "# saaskit: pristine copies of the generated files (saaskit upgrade merges against them; do not edit)\n";
const ENTRY: &str = "=== ";

/// The copies as stored: by path relative to the workspace, each a range of the text read.
///
/// The pack is kept as read and its copies are ranges of it rather than a string each: a
/// workspace's copies are a megabyte and a half, which `generate` would otherwise copy twice
/// (into the strings, then back into the pack it writes) before changing a few of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The pack as read (or, for loose copies, their contents one after the other).
    text: String,
    copies: BTreeMap<String, Range<usize>>,
    /// Copies read from files under `.saaskit/base/` (a workspace from before the pack), which
    /// the next write moves into the pack.
    pub loose: bool,
}

impl Stored {
    /// The copy of `path`.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.copies.get(path).map(|range| &self.text[range.clone()])
    }

    /// The paths that have a copy, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.copies.keys().map(String::as_str)
    }

    /// Every copy, by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.copies
            .iter()
            .map(|(path, range)| (path.as_str(), &self.text[range.clone()]))
    }

    /// The copies in a pack's text, kept as it is; the error names the line that is wrong.
    pub fn from_pack(text: String) -> Result<Stored, String> {
        let copies = parse_ranges(&text)?;
        Ok(Stored {
            text,
            copies,
            loose: false,
        })
    }

    /// Loose copies from path and content: their contents one after the other.
    pub fn from_copies<'a>(
        copies: impl IntoIterator<Item = (&'a str, &'a str)>,
        loose: bool,
    ) -> Stored {
        let mut stored = Stored {
            loose,
            ..Stored::default()
        };
        for (path, content) in copies {
            let start = stored.text.len();
            stored.text.push_str(content);
            stored
                .copies
                .insert(path.to_string(), start..stored.text.len());
        }
        stored
    }
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
        Ok(text) => Stored::from_pack(text).map_err(|e| {
            anyhow!(
                "{}:{e}\nThe pristine copies are damaged: restore the file from version control, \
                 or delete it (the next `saaskit upgrade` then goes by saaskit.lock's hashes).",
                pack.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => load_loose(root),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", pack.display())),
    }
}

fn load_loose(root: &Path) -> Result<Stored> {
    let dir = root.join(BASE_DIR);
    if !dir.is_dir() {
        return Ok(Stored::default());
    }
    let mut copies = Vec::new();
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
        copies.push((relative.to_string_lossy().replace('\\', "/"), content));
    }
    Ok(Stored::from_copies(
        copies
            .iter()
            .map(|(path, content)| (path.as_str(), content.as_str())),
        true,
    ))
}

/// What the plan writes besides its changes to files: its changes to copies
/// (`.saaskit/base/<path>`) as one change of [`PACK_FILE`], plus, for an older workspace, the
/// removal of its loose copies. `stored` is what [`load`] gave for the same workspace; it becomes
/// the pack's `before`, as it was read.
pub fn on_disk(stored: Stored, changes: &[Change]) -> Vec<Change> {
    let mut written = Vec::new();
    let mut copy_changes = changes
        .iter()
        .filter_map(|change| Some((original(&change.path)?, change)))
        .peekable();
    if copy_changes.peek().is_none() {
        return written;
    }
    // The copies as they will be: those the plan changes shared with it (a new workspace's are
    // a megabyte and a half), those it leaves as read.
    let mut copies: BTreeMap<&str, Option<Text>> = copy_changes
        .map(|(path, change)| (path, change.after.clone()))
        .collect();
    for (path, content) in stored.iter() {
        copies
            .entry(path)
            .or_insert_with(|| Some(Text::from(content.to_string())));
    }
    let copies: Vec<(&str, Text)> = copies
        .into_iter()
        .filter_map(|(path, content)| Some((path, content?)))
        .collect();
    let after = (!copies.is_empty()).then(|| serialize(copies));
    if stored.loose {
        written.extend(stored.iter().map(|(path, content)| Change {
            path: format!("{BASE_DIR}/{path}"),
            before: Some(content.to_string()),
            after: None,
        }));
    }
    let before = (!stored.loose && !stored.copies.is_empty()).then_some(stored.text);
    let unchanged = match (&before, &after) {
        (Some(before), Some(after)) => after.reads_as(before),
        (before, after) => before.is_none() && after.is_none(),
    };
    if !unchanged {
        written.push(Change {
            path: PACK_FILE.to_string(),
            before,
            after,
        });
    }
    written.sort_by(|a, b| a.path.cmp(&b.path));
    written
}

/// The pack's text for `copies` (by path, in order): the copies' own texts between the entry
/// lines, not copied into one string ([`Text::joined`]).
pub fn serialize<'p>(copies: impl IntoIterator<Item = (&'p str, Text)>) -> Text {
    let mut pieces = Vec::new();
    let mut entry_line = String::from(HEADER);
    for (path, content) in copies {
        entry_line.push_str(ENTRY);
        entry_line.push_str(path);
        entry_line.push(' ');
        entry_line.push_str(&content.byte_len().to_string());
        entry_line.push('\n');
        pieces.push(Text::from(std::mem::take(&mut entry_line)));
        pieces.push(content);
        // Each copy ends with a newline of the pack's own, written with the next entry's line.
        entry_line.push('\n');
    }
    if pieces.is_empty() {
        return Text::from(entry_line);
    }
    pieces.push(Text::new("\n"));
    Text::joined(pieces)
}

/// The copies in a pack's text; the error names the line that is wrong (`<line>: <what>`).
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    Ok(parse_ranges(text)?
        .into_iter()
        .map(|(path, range)| (path, text[range].to_string()))
        .collect())
}

/// [`parse`], each copy as where it is in `text`.
fn parse_ranges(text: &str) -> Result<BTreeMap<String, Range<usize>>, String> {
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
        let start = text.len() - after.len();
        if copies
            .insert(path.to_string(), start..start + length)
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

    /// The pack's text for `copies`, whole.
    fn pack(copies: &BTreeMap<String, String>) -> String {
        serialize(
            copies
                .iter()
                .map(|(path, content)| (path.as_str(), Text::from(content.clone()))),
        )
        .to_string()
    }

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
            after: after.map(|text| Text::new(text.to_string())),
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
        let text = pack(&copies);
        assert_eq!(parse(&text).unwrap(), copies);
        assert_eq!(parse(HEADER).unwrap(), BTreeMap::new());
    }

    #[test]
    fn a_damaged_pack_is_refused_with_the_line() {
        let text = pack(&copies(&[("a", "one\ntwo\n"), ("b", "three\n")]));
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

    /// A pack's copies, or an older workspace's loose ones.
    fn stored(entries: &[(&str, &str)], loose: bool) -> Stored {
        if loose {
            return Stored::from_copies(entries.iter().copied(), true);
        }
        Stored::from_pack(pack(&copies(entries))).unwrap()
    }

    #[test]
    fn a_pack_is_read_as_ranges_of_its_text() {
        let text = pack(&copies(&[("a", "one\ntwo\n"), ("b", "three\n")]));
        let read = Stored::from_pack(text).unwrap();
        assert_eq!(read.get("a"), Some("one\ntwo\n"));
        assert_eq!(read.get("b"), Some("three\n"));
        assert_eq!(read.get("c"), None);
        assert_eq!(read.paths().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn changes_to_copies_become_one_change_of_the_pack() {
        let stored = stored(&[("a.rs", "old\n"), ("gone.rs", "bye\n")], false);
        let before = pack(
            &stored
                .iter()
                .map(|(path, content)| (path.to_string(), content.to_string()))
                .collect(),
        );
        let plan = [
            change("a.rs", Some("old\n"), Some("new\n")),
            change(".saaskit/base/a.rs", Some("old\n"), Some("new\n")),
            change(".saaskit/base/gone.rs", Some("bye\n"), None),
            change(".saaskit/base/b.rs", None, Some("b\n")),
        ];
        let written = on_disk(stored, &plan);
        let paths: Vec<&str> = written.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, [PACK_FILE]);
        assert_eq!(written[0].before, Some(before));
        let after = parse(written[0].after.as_deref().unwrap()).unwrap();
        assert_eq!(after, copies(&[("a.rs", "new\n"), ("b.rs", "b\n")]));
    }

    #[test]
    fn loose_copies_of_an_older_workspace_move_into_the_pack() {
        let stored = stored(&[("a.rs", "a\n"), ("b.rs", "b\n")], true);
        let written = on_disk(
            stored,
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
    fn a_plan_without_copies_adds_nothing_and_no_copies_means_no_pack() {
        let plan = [change("a.rs", None, Some("a\n"))];
        assert_eq!(on_disk(Stored::default(), &plan), []);
        let written = on_disk(
            stored(&[("a.rs", "a\n")], false),
            &[change(".saaskit/base/a.rs", Some("a\n"), None)],
        );
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].after, None);
    }
}
