//! Injection engine: splices module snippets into generated files after injection markers.
//!
//! Generated files carry marker lines such as `// <<<inject:startup>>>`. Installing a module puts
//! its snippet right after the marker, inside fences naming the module and the marker:
//!
//! ```text
//!     // <<<inject:startup>>>
//!     // <<<begin:db@startup>>>
//!     let db = acme_core::db::Database::connect(&db_config).await?;
//!     // <<<end:db@startup>>>
//! ```
//!
//! so that the snippet can later be found, replaced and removed exactly. Blocks keep install order
//! after their marker, except at the markers of [`REVERSE_ORDER_MARKERS`], where the newest block
//! comes first. Everything here is pure
//! (strings in, strings or typed errors out) and byte-exact: lines outside the block being edited
//! are never touched, line endings and the presence of a final newline are preserved, and
//! `remove_block(insert_block(s))` gives back `s` for a newly inserted block.
//!
//! Three parts, each with its tests: [`scan`] reads a file's markers and fences and says what is
//! wrong with them; `splice` edits one block on top of a scan; `rust` formats snippets and
//! explains parse errors. Imports point one way: `splice` uses `scan` and `rust`, which use
//! neither.

mod rust;
mod scan;
mod splice;

pub use rust::{SnippetError, file_parses, first_unparsable, format_rust_snippet};
pub use scan::{FencedBlock, MarkerLine, Problem, Scan, scan};
pub use splice::{
    Fences, InjectError, block_body, block_body_with, insert_block, remove_block, splice_block,
    splice_block_with,
};

/// Markers whose blocks run in reverse install order: a new block goes directly after the marker
/// line, before the blocks already there. At `shutdown` a module installed later may use what an
/// earlier one set up (a background worker using the database), so it must stop first, the way
/// Rust drops values in reverse order of creation: the worker drains before `db.close()` runs.
pub const REVERSE_ORDER_MARKERS: [&str; 1] = ["shutdown"];

/// Whether a new block at `marker` goes first, right after the marker line, instead of after the
/// blocks already there (see [`REVERSE_ORDER_MARKERS`]).
pub fn is_reverse_order(marker: &str) -> bool {
    REVERSE_ORDER_MARKERS.contains(&marker)
}

/// How comments are written in a file, which decides what marker and fence lines look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentStyle {
    /// `//` comments; the file must parse as Rust after every insertion.
    Rust,
    /// `//` comments in TypeScript and JavaScript sources; the file must parse as TypeScript
    /// (JavaScript) after every insertion.
    TypeScript,
    /// `#` comments: `.env`, `.gitignore`, TOML, YAML, shell scripts, ...
    Hash,
    /// `<!-- ... -->` comments in Markdown (a `#` line would be a heading there): the
    /// generated workspace's README lists its resources after a marker.
    Markdown,
}

impl CommentStyle {
    /// The style for a file path: Rust for `.rs` files, TypeScript for TypeScript and JavaScript
    /// sources, hash comments for everything else.
    pub fn for_path(path: &str) -> Self {
        use crate::edit::typescript::SCRIPT_EXTENSIONS;
        if path.ends_with(".rs") {
            Self::Rust
        } else if SCRIPT_EXTENSIONS.iter().any(|ext| path.ends_with(ext)) {
            Self::TypeScript
        } else if path.ends_with(".md") {
            Self::Markdown
        } else {
            Self::Hash
        }
    }

    fn comment(self) -> &'static str {
        match self {
            Self::Rust | Self::TypeScript => "//",
            Self::Hash => "#",
            Self::Markdown => "<!--",
        }
    }

    /// What closes a fence line: only Markdown's comments need closing.
    fn comment_end(self) -> &'static str {
        match self {
            Self::Markdown => " -->",
            Self::Rust | Self::TypeScript | Self::Hash => "",
        }
    }
}

/// The lines, each followed by `'\n'`.
fn terminated<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_style_for_path() {
        assert_eq!(
            CommentStyle::for_path("api/src/main.rs"),
            CommentStyle::Rust
        );
        assert_eq!(
            CommentStyle::for_path("services/nest/src/main.ts"),
            CommentStyle::TypeScript
        );
        assert_eq!(
            CommentStyle::for_path("services/nest/eslint.config.mjs"),
            CommentStyle::TypeScript
        );
        assert_eq!(CommentStyle::for_path(".env"), CommentStyle::Hash);
        assert_eq!(CommentStyle::for_path(".gitignore"), CommentStyle::Hash);
        assert_eq!(CommentStyle::for_path("Cargo.toml"), CommentStyle::Hash);
        assert_eq!(CommentStyle::for_path("README.md"), CommentStyle::Markdown);
    }
}
