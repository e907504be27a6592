//! What saaskit generated in a workspace, as `diff` and `upgrade` compare it: the files either
//! lockfile records, and a file's own content without what modules spliced or inserted into it.

use std::collections::BTreeSet;

use anyhow::Result;

use crate::edit::cargo_deps::{self, Added};
use crate::edit::inject::{self, CommentStyle};
use crate::model::lock::Lock;

use super::ENV_FILE;

/// A file's own content: every fenced block and every dependency `lock` says a module inserted
/// taken out again, which gives back what the file's template produced.
pub fn own_content(path: &str, content: &str, lock: &Lock) -> Result<String> {
    let style = CommentStyle::for_path(path);
    let mut text = content.to_string();
    for block in inject::scan(content, style).blocks {
        if let Ok(Some(stripped)) = inject::remove_block(&text, style, &block.marker, &block.module)
        {
            text = stripped;
        }
    }
    for record in lock.dependencies.iter().filter(|d| d.path == path).rev() {
        let added = Added {
            inserted: record.inserted,
            features: record.features.clone(),
        };
        text = cargo_deps::remove(path, &text, &record.name, &added)?;
    }
    Ok(text)
}

/// The files either lock records, but `.env`: it holds the user's own values and secrets, which
/// are never compared nor merged.
pub fn generated_paths<'a>(recorded: &'a Lock, fresh: &'a Lock) -> BTreeSet<&'a str> {
    recorded
        .files
        .iter()
        .chain(&fresh.files)
        .map(|f| f.path.as_str())
        .filter(|p| *p != ENV_FILE)
        .collect()
}
