//! What `upgrade` stages through the workspace: the merged files, the base store rebuilt from
//! the new render, and the new lockfile.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::model::lock::Lock;
use crate::stage::base_store::BASE_DIR;

use super::{Workspace, base_path};

/// What to do with one file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Leave,
    Write(String),
    Delete,
}

impl Workspace<'_> {
    /// Stages `action` on the file at `path`.
    pub fn stage(&mut self, path: &str, action: Action) {
        match action {
            Action::Leave => {}
            Action::Write(text) => self.tree.write(path, text),
            Action::Delete => self.tree.delete(path),
        }
    }

    /// Makes the base store hold exactly `copies` (generated path to pristine content): each is
    /// written, and every other copy (of a file the lockfile records, or a stray) is deleted.
    /// Call it before [`Self::replace_lock`]: the copies to drop are found in the current lock.
    pub fn replace_pristine_copies(&mut self, copies: &BTreeMap<String, String>) -> Result<()> {
        for (path, content) in copies {
            if let Some(copy) = base_path(path) {
                self.tree.write(&copy, content.clone());
            }
        }
        let dropped: Vec<String> = (self.lock.files.iter())
            .filter(|f| !copies.contains_key(&f.path))
            .filter_map(|f| base_path(&f.path))
            .collect();
        for copy in dropped {
            self.tree.delete(&copy);
        }
        let strays: Vec<String> = (self.tree.stored_copies()?.paths())
            .filter(|path| !copies.contains_key(*path))
            .map(|path| format!("{BASE_DIR}/{path}"))
            .collect();
        for stray in strays {
            self.tree.delete(&stray);
        }
        Ok(())
    }

    /// Replaces the lockfile [`Self::finish`] writes: `upgrade` records the new render.
    pub fn replace_lock(&mut self, lock: Lock) {
        self.lock = lock;
    }
}
