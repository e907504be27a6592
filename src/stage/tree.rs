//! A staged view of a workspace: reads fall through to the disk, writes stay in memory.
//!
//! Every command builds its whole change in a [`Tree`] first; [`Tree::plan`] is what `--dry-run`
//! prints as a unified diff and what [`crate::stage::fsio::apply`] writes atomically.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::stage::base_store::{self, Stored};
use crate::stage::change::Change;

/// A command's whole change, as the user reads it and as it is written.
#[derive(Debug)]
pub struct Plan {
    /// Every changed file, each pristine copy as a file of its own (`.saaskit/base/<path>`):
    /// what `--dry-run` and the summary show.
    pub changes: Vec<Change>,
    /// What [`crate::stage::fsio::apply`] writes: the copies folded into the base store's one file
    /// ([`base_store::on_disk`]).
    pub writes: Vec<Change>,
}

#[derive(Debug)]
pub struct Tree {
    /// Where reads fall through to; `None` for a tree that exists only in memory.
    root: Option<PathBuf>,
    /// Staged content by workspace-relative path (always `/`-separated).
    staged: BTreeMap<String, Option<String>>,
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
            Some(content) => Ok(content.clone()),
            None => self.read_disk(path),
        }
    }

    pub fn write(&mut self, path: &str, content: String) {
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
            return Ok(self.stored_copies()?.copies.get(original).cloned());
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
        self.plan_of(changes)
    }

    /// [`Tree::plan`], the staged contents moved into it rather than copied: a new workspace
    /// stages a few megabytes.
    pub fn into_plan(mut self) -> Result<Plan> {
        let mut changes = Vec::with_capacity(self.staged.len());
        for (path, after) in std::mem::take(&mut self.staged) {
            let before = self.read_disk(&path)?;
            if before != after {
                changes.push(Change {
                    path,
                    before,
                    after,
                });
            }
        }
        self.plan_of(changes)
    }

    fn plan_of(&self, changes: Vec<Change>) -> Result<Plan> {
        let writes = if changes
            .iter()
            .any(|c| base_store::original(&c.path).is_some())
        {
            base_store::on_disk(self.stored_copies()?, &changes)
        } else {
            changes.clone()
        };
        Ok(Plan { changes, writes })
    }

    /// Every staged file whose content differs from the disk, sorted by path.
    fn changes(&self) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        for (path, after) in &self.staged {
            let before = self.read_disk(path)?;
            if &before != after {
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
