//! A staged view of a workspace: reads fall through to the disk, writes stay in memory.
//!
//! Every command builds its whole change in a [`Tree`] first; [`Tree::plan`] is what `--dry-run`
//! prints as a unified diff and what [`crate::stage::fsio::apply`] writes atomically.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::stage::base_store::{self, Stored};
use crate::stage::change::{Change, Text};

/// A command's whole change, as the user reads it and as it is written.
#[derive(Debug)]
pub struct Plan {
    /// Every changed file, each pristine copy as a file of its own (`.saaskit/base/<path>`):
    /// what `--dry-run` and the summary show.
    pub changes: Vec<Change>,
    /// The base store's one file, into which the copies among `changes` are folded
    /// ([`base_store::on_disk`]): written instead of them.
    pub pack: Vec<Change>,
}

impl Plan {
    /// What [`crate::stage::fsio::apply`] writes, sorted by path: the changes to files and the
    /// base store's, borrowed (a new workspace's are megabytes).
    pub fn writes(&self) -> Vec<&Change> {
        let mut writes: Vec<&Change> = self
            .changes
            .iter()
            .filter(|change| base_store::original(&change.path).is_none())
            .chain(&self.pack)
            .collect();
        writes.sort_by(|a, b| a.path.cmp(&b.path));
        writes
    }
}

#[derive(Debug)]
pub struct Tree {
    /// Where reads fall through to; `None` for a tree that exists only in memory.
    root: Option<PathBuf>,
    /// Staged content by workspace-relative path (always `/`-separated).
    staged: BTreeMap<String, Option<Text>>,
    /// The base store's copies as on disk (read at the first use): a copy's path reads from
    /// them rather than from a file of its own ([`crate::stage::base_store`]).
    stored_copies: OnceCell<Stored>,
}

impl Tree {
    pub fn new(root: &Path) -> Tree {
        Tree {
            // A root that does not exist (`saaskit new`) has nothing to read: looking up every
            // path under it would cost a failed open each.
            root: root.exists().then(|| root.to_path_buf()),
            staged: BTreeMap::new(),
            stored_copies: OnceCell::new(),
        }
    }

    /// A tree with nothing on disk behind it: what a fresh render would produce.
    pub fn in_memory() -> Tree {
        Tree {
            root: None,
            staged: BTreeMap::new(),
            stored_copies: OnceCell::new(),
        }
    }

    /// The directory on disk behind the tree, if any.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The file as it would be after the staged changes.
    pub fn read(&self, path: &str) -> Result<Option<String>> {
        match self.staged.get(path) {
            Some(content) => Ok(content.as_deref().map(str::to_string)),
            None => self.read_disk(path),
        }
    }

    pub fn write(&mut self, path: &str, content: String) {
        self.write_shared(path, Text::new(content));
    }

    /// [`Tree::read`] as a shared text: what [`Tree::write_shared`] takes, and what
    /// [`crate::stage::change::same_text`] compares at once with a text kept from it.
    pub fn read_shared(&self, path: &str) -> Result<Option<Text>> {
        match self.staged.get(path) {
            Some(content) => Ok(content.clone()),
            None => Ok(self.read_disk(path)?.map(Text::new)),
        }
    }

    /// [`Tree::write`] of a text another path (a file's pristine copy) holds too, without copying.
    pub fn write_shared(&mut self, path: &str, content: Text) {
        self.staged.insert(path.to_string(), Some(content));
    }

    pub fn delete(&mut self, path: &str) {
        self.staged.insert(path.to_string(), None);
    }

    /// The base store's copies as on disk.
    pub fn stored_copies(&self) -> Result<&Stored> {
        if let Some(stored) = self.stored_copies.get() {
            return Ok(stored);
        }
        let stored = match &self.root {
            Some(root) => base_store::load(root)?,
            None => Stored::default(),
        };
        Ok(self.stored_copies.get_or_init(|| stored))
    }

    fn read_disk(&self, path: &str) -> Result<Option<String>> {
        if let Some(original) = base_store::original(path) {
            return Ok(self.stored_copies()?.get(original).map(str::to_string));
        }
        let Some(root) = &self.root else {
            return Ok(None);
        };
        let full = root.join(path);
        match std::fs::read(&full) {
            Ok(bytes) => String::from_utf8(bytes).map(Some).with_context(|| {
                format!(
                    "{} is not UTF-8 text; saaskit only manages text files",
                    full.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", full.display())),
        }
    }

    /// The plan: every staged file whose content differs from the disk, and what to write.
    pub fn plan(&self) -> Result<Plan> {
        let changes = self.changes()?;
        let pack = if has_copies(&changes) {
            base_store::on_disk(self.stored_copies()?.clone(), &changes)
        } else {
            Vec::new()
        };
        Ok(Plan { changes, pack })
    }

    /// [`Tree::plan`], the staged contents and the pack as read moved into it rather than
    /// copied: a new workspace stages a few megabytes, and a workspace's pack is over one.
    pub fn into_plan(mut self) -> Result<Plan> {
        let mut changes = Vec::with_capacity(self.staged.len());
        for (path, after) in std::mem::take(&mut self.staged) {
            let before = self.read_disk(&path)?;
            if !same_content(&before, &after) {
                changes.push(Change {
                    path,
                    before,
                    after,
                });
            }
        }
        let pack = if has_copies(&changes) {
            self.stored_copies()?;
            let stored = self.stored_copies.take().unwrap_or_default();
            base_store::on_disk(stored, &changes)
        } else {
            Vec::new()
        };
        Ok(Plan { changes, pack })
    }

    /// Every staged file whose content differs from the disk, sorted by path.
    fn changes(&self) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        for (path, after) in &self.staged {
            let before = self.read_disk(path)?;
            if !same_content(&before, after) {
                changes.push(Change {
                    path: path.clone(),
                    before,
                    after: after.clone(),
                });
            }
        }
        Ok(changes)
    }
}

/// Whether a file on disk (or its absence) and a staged content are the same.
fn same_content(on_disk: &Option<String>, staged: &Option<Text>) -> bool {
    on_disk.as_deref() == staged.as_deref()
}

/// Whether some of `changes` are to the base store's copies.
fn has_copies(changes: &[Change]) -> bool {
    changes
        .iter()
        .any(|change| base_store::original(&change.path).is_some())
}
