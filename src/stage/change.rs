//! One file's planned change, and the two ways the user reads a list of them: a unified diff
//! (`--dry-run`) and one line per file.
//!
//! The leaf of `stage/`: [`crate::stage::tree`] produces changes, [`crate::stage::base_store`]
//! folds the pristine copies among them into one file, [`crate::stage::fsio`] writes them.

use std::borrow::Cow;
use std::io::{IoSlice, Write};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use similar::{Algorithm, udiff::unified_diff};

/// A file's content as planned, shared rather than copied between the places that hold the same
/// text: a generated file and its pristine copy are the same text until the user edits the file,
/// a megabyte and more in `saaskit new`. A file shipped verbatim in saaskit's binary is that
/// text itself, not a copy of it.
#[derive(Debug, Clone)]
pub struct Text(Arc<Content>);

#[derive(Debug)]
enum Content {
    Whole(Cow<'static, str>),
    /// Texts one after the other, which [`Text::write_to`] hands to the kernel as they are: the
    /// base store's pack is every generated file again (a megabyte and a half in `saaskit new`),
    /// and joining them into one string first cost a copy into as much fresh memory. Joined
    /// only when something reads the text whole (a `--dry-run` diff).
    Joined {
        pieces: Vec<Text>,
        whole: OnceLock<String>,
    },
}

impl Text {
    pub fn new(text: impl Into<Cow<'static, str>>) -> Text {
        Text(Arc::new(Content::Whole(text.into())))
    }

    /// The texts of `pieces` one after the other.
    pub fn joined(pieces: Vec<Text>) -> Text {
        Text(Arc::new(Content::Joined {
            pieces,
            whole: OnceLock::new(),
        }))
    }

    /// The length in bytes, without joining the pieces of a joined text.
    pub fn byte_len(&self) -> usize {
        match &*self.0 {
            Content::Whole(text) => text.len(),
            Content::Joined { pieces, .. } => pieces.iter().map(Text::byte_len).sum(),
        }
    }

    /// Whether the text reads as `other`, without joining a joined text.
    pub fn reads_as(&self, other: &str) -> bool {
        let mut slices = Vec::new();
        self.collect_slices(&mut slices);
        let mut rest = other.as_bytes();
        for slice in &slices {
            match rest.split_at_checked(slice.len()) {
                Some((head, tail)) if head == &**slice => rest = tail,
                _ => return false,
            }
        }
        rest.is_empty()
    }

    /// Writes the text to `out`; a joined text piece by piece, in as few system calls as the
    /// kernel takes pieces (`writev`), without joining them.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut slices = Vec::new();
        self.collect_slices(&mut slices);
        let mut remaining = slices.as_mut_slice();
        while !remaining.is_empty() {
            match out.write_vectored(remaining) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(written) => IoSlice::advance_slices(&mut remaining, written),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn collect_slices<'t>(&'t self, out: &mut Vec<IoSlice<'t>>) {
        match &*self.0 {
            Content::Whole(text) if text.is_empty() => {}
            Content::Whole(text) => out.push(IoSlice::new(text.as_bytes())),
            Content::Joined { pieces, .. } => {
                for piece in pieces {
                    piece.collect_slices(out);
                }
            }
        }
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
        match &*self.0 {
            Content::Whole(text) => text,
            Content::Joined { pieces, whole } => {
                whole.get_or_init(|| pieces.iter().map(|piece| &**piece).collect())
            }
        }
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || **self == **other
    }
}

impl Eq for Text {}

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

    #[test]
    fn a_joined_text_reads_and_writes_as_its_pieces_one_after_the_other() {
        let pieces = ["one\n", "", "two", "\nthree é\n"];
        let joined = Text::joined(pieces.iter().map(|p| Text::new(p.to_string())).collect());
        let nested = Text::joined(vec![Text::new("zero\n"), joined.clone()]);
        assert_eq!(joined.byte_len(), pieces.concat().len());
        let mut written = Vec::new();
        nested.write_to(&mut written).unwrap();
        assert_eq!(written, b"zero\none\ntwo\nthree \xc3\xa9\n");
        assert_eq!(&*joined, pieces.concat());
        assert_eq!(joined, Text::new(pieces.concat()));
        assert!(joined.reads_as(&pieces.concat()));
        assert!(!joined.reads_as("one\ntwo\nthree é"), "shorter");
        assert!(!joined.reads_as("one\ntwo\nthree é\n!"), "longer");
        assert!(!joined.reads_as("one\nTwo\nthree é\n"), "different");
        assert_eq!(Text::joined(Vec::new()).byte_len(), 0);
    }

    /// A writer that takes at most 3 bytes a call, as a kernel may take part of a `writev`.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let taken = buf.len().min(3);
            self.0.extend_from_slice(&buf[..taken]);
            Ok(taken)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            self.write(first)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_joined_text_is_written_whole_when_the_writer_takes_it_a_little_at_a_time() {
        let joined = Text::joined(vec![
            Text::new("abcdefg"),
            Text::new("h"),
            Text::new("ijklm"),
        ]);
        let mut out = Trickle(Vec::new());
        joined.write_to(&mut out).unwrap();
        assert_eq!(out.0, b"abcdefghijklm");
    }
}
