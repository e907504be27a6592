//! `saaskit diff`: for every generated file and injected snippet, whether it is unchanged, edited
//! by the user, missing, or changed in this saaskit's templates.
//!
//! Three versions of each item are compared by hash: what saaskit generated (the lockfile), what
//! the current templates generate (a fresh render in memory), and what is on disk. For a file
//! modules inject into, "the file" means its own content: its fenced blocks and the dependencies
//! modules inserted are stripped first, and compared as items of their own.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use similar::{Algorithm, udiff::unified_diff};

use crate::cli::DiffArgs;
use crate::edit::inject::{self, CommentStyle};
use crate::model::catalog::Catalog;
use crate::model::lock::{self, Lock};
use crate::stage::tree::Tree;
use crate::workspace::generated::{generated_paths, own_content};
use crate::workspace::{Workspace, find_root};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Status {
    Unchanged,
    /// The user changed it; the templates did not.
    Edited,
    Missing,
    /// The templates changed it; the user did not.
    TemplateChanged,
    /// Both changed it: `saaskit upgrade` will have to merge.
    EditedAndTemplateChanged,
}

impl Status {
    fn of(recorded: Option<&str>, fresh: Option<&str>, disk: Option<&str>) -> Status {
        let Some(disk) = disk else {
            // Absent and never generated here: something the templates now add.
            return if recorded.is_none() {
                Status::TemplateChanged
            } else {
                Status::Missing
            };
        };
        let edited = recorded.is_some_and(|r| r != disk);
        let template_changed = recorded != fresh;
        match (edited, template_changed) {
            (false, false) => Status::Unchanged,
            (true, false) => Status::Edited,
            (false, true) => Status::TemplateChanged,
            (true, true) => Status::EditedAndTemplateChanged,
        }
    }

    /// What `--check` fails on: the generated output is not what the current templates produce.
    fn is_drift(self) -> bool {
        matches!(
            self,
            Status::Missing | Status::TemplateChanged | Status::EditedAndTemplateChanged
        )
    }

    fn label(self) -> &'static str {
        match self {
            Status::Unchanged => "unchanged",
            Status::Edited => "edited",
            Status::Missing => "missing",
            Status::TemplateChanged => "template-changed",
            Status::EditedAndTemplateChanged => "edited+template-changed",
        }
    }
}

#[derive(Debug, Serialize)]
struct Item {
    path: String,
    module: String,
    /// Set for snippets: the marker they follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    marker: Option<String>,
    status: Status,
    /// From the workspace (`a/`) to what the current templates generate (`b/`).
    #[serde(skip_serializing_if = "String::is_empty")]
    diff: String,
}

impl Item {
    /// Classifies an item from its `(recorded, generated)` hashes and its content on disk and in
    /// the fresh render, with the diff between the two when it is not unchanged.
    fn compare(
        path: &str,
        module: String,
        marker: Option<&str>,
        (recorded, generated): (Option<&str>, Option<&str>),
        disk: Option<String>,
        reference: Option<String>,
    ) -> Item {
        let status = Status::of(
            recorded,
            generated,
            disk.as_deref().map(lock::hash).as_deref(),
        );
        let diff = match status {
            Status::Unchanged => String::new(),
            _ => diff(path, disk.as_deref(), reference.as_deref()),
        };
        Item {
            path: path.to_string(),
            module,
            marker: marker.map(str::to_string),
            status,
            diff,
        }
    }
}

pub fn run(args: DiffArgs) -> Result<()> {
    let root = find_root(&std::env::current_dir()?)?;
    let catalog = Catalog::load()?;
    let workspace = Workspace::open(&catalog, &root)?;
    let fresh = Workspace::render_fresh(&catalog, workspace.manifest())?;
    let mut items = files(&workspace, &fresh)?;
    items.extend(snippets(&workspace, &fresh)?);

    let drift = items.iter().filter(|i| i.status.is_drift()).count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else {
        print_report(&items);
    }
    if args.check && drift > 0 {
        bail!(
            "{drift} generated item(s) differ from what this saaskit's templates produce; see `saaskit diff`"
        );
    }
    Ok(())
}

fn print_report(items: &[Item]) {
    let unchanged = items
        .iter()
        .filter(|i| i.status == Status::Unchanged)
        .count();
    for item in items.iter().filter(|i| i.status != Status::Unchanged) {
        let place = match &item.marker {
            Some(marker) => format!("{} @ {marker}", item.path),
            None => item.path.clone(),
        };
        println!("{:<24} {place} ({})", item.status.label(), item.module);
        print!("{}", item.diff);
    }
    println!(
        "{unchanged} of {} generated files and snippets unchanged",
        items.len()
    );
}

fn diff(path: &str, disk: Option<&str>, fresh: Option<&str>) -> String {
    if disk == fresh {
        return String::new();
    }
    let old = if disk.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".into()
    };
    let new = if fresh.is_some() {
        format!("b/{path}")
    } else {
        "/dev/null".into()
    };
    let text = unified_diff(
        Algorithm::Myers,
        disk.unwrap_or(""),
        fresh.unwrap_or(""),
        3,
        Some((&old, &new)),
    );
    if text.ends_with('\n') {
        text
    } else {
        format!("{text}\n")
    }
}

fn own_content_at(tree: &Tree, path: &str, lock: &Lock) -> Result<Option<String>> {
    tree.read(path)?
        .map(|content| own_content(path, &content, lock))
        .transpose()
}

fn files(workspace: &Workspace, fresh: &Workspace) -> Result<Vec<Item>> {
    let paths = generated_paths(workspace.lock(), fresh.lock());
    let mut items = Vec::new();
    for path in paths {
        let recorded = workspace.lock().file(path);
        let generated = fresh.lock().file(path);
        let disk = own_content_at(workspace.tree(), path, workspace.lock())?;
        let reference = own_content_at(fresh.tree(), path, fresh.lock())?;
        let module = generated
            .or(recorded)
            .map(|f| f.module.clone())
            .unwrap_or_default();
        let hashes = (
            recorded.map(|r| r.sha256.as_str()),
            generated.map(|g| g.sha256.as_str()),
        );
        items.push(Item::compare(path, module, None, hashes, disk, reference));
    }
    Ok(items)
}

fn snippets(workspace: &Workspace, fresh: &Workspace) -> Result<Vec<Item>> {
    let keys: BTreeSet<(&str, &str, &str)> = workspace
        .lock()
        .snippets
        .iter()
        .chain(&fresh.lock().snippets)
        .map(|s| (s.path.as_str(), s.marker.as_str(), s.module.as_str()))
        .collect();
    let mut items = Vec::new();
    for (path, marker, module) in keys {
        let style = CommentStyle::for_path(path);
        let body_in = |tree: &Tree| -> Result<Option<String>> {
            let Some(source) = tree.read(path)? else {
                return Ok(None);
            };
            let located = inject::block_body(&source, style, marker, module)
                .with_context(|| path.to_string())?;
            Ok(located.map(|(body, _)| body))
        };
        let disk = body_in(workspace.tree())?;
        let reference = body_in(fresh.tree())?;
        let hashes = (
            workspace
                .lock()
                .snippet(path, marker, module)
                .map(|s| s.sha256.as_str()),
            fresh
                .lock()
                .snippet(path, marker, module)
                .map(|s| s.sha256.as_str()),
        );
        items.push(Item::compare(
            path,
            module.to_string(),
            Some(marker),
            hashes,
            disk,
            reference,
        ));
    }
    Ok(items)
}
