//! `saaskit upgrade`: brings a workspace's generated files and snippets to this saaskit's
//! templates with a three-way merge.
//!
//! For every generated file, *base* is the pristine copy in `.saaskit/base/` (what saaskit last
//! wrote there, snippets included), *ours* the file as it is now, and *theirs* what the current
//! templates generate for the workspace's manifest (a fresh render in memory, as `saaskit diff`
//! uses). A change only the templates made is applied, a change only the user made is kept, and
//! changes on both sides are merged by lines ([`crate::edit::merge`]); lines both changed differently
//! are written with conflict markers. Afterwards the lockfile and the base store describe the new
//! render, so the next upgrade starts from it (for a conflicted file too: the conflict is the
//! user's to resolve, and a resolved hunk must not come back).
//!
//! A file without a usable pristine copy (the workspace predates the base store, or the copy no
//! longer agrees with the lockfile) is judged by the lockfile's hashes instead; see [`Base`].
//! `.env` is never merged: only its module blocks are brought up to date, keeping every value.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result, bail};

use crate::cli::UpgradeArgs;
use crate::edit::inject::{self, CommentStyle};
use crate::edit::merge::{self, Labels};
use crate::model::catalog::Catalog;
use crate::model::lock::{self, Lock};
use crate::stage::base_store::PACK_FILE;
use crate::workspace::generated::{generated_paths, own_content};
use crate::workspace::upgrade::Action;
use crate::workspace::{ENV_FILE, EnvRefresh, Workspace, base_path, find_root};

/// What the upgrade does to one generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Already what the templates generate, or changed by the user only: left as it is.
    Unchanged,
    /// Changed by the templates only: replaced with the new render.
    Updated,
    /// Changed on both sides, on different lines: merged.
    Merged,
    /// Changed on both sides on the same lines (or with nothing to tell whose change a line is):
    /// written with this many conflicts.
    Conflict(usize),
    /// New in the templates.
    Added,
    /// No longer generated, and not edited by the user: deleted.
    Removed,
    /// No longer generated, but edited by the user: kept, and no longer tracked.
    Kept,
    /// Deleted by the user: stays deleted.
    DeletedByUser,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Updated => "updated",
            Outcome::Merged => "merged",
            Outcome::Conflict(_) => "conflict",
            Outcome::Added => "added",
            Outcome::Removed => "removed",
            Outcome::Kept => "kept",
            Outcome::DeletedByUser => "deleted-by-user",
        }
    }

    fn detail(&self) -> String {
        match self {
            Outcome::Conflict(1) => " (1 conflict)".into(),
            Outcome::Conflict(n) => format!(" ({n} conflicts)"),
            Outcome::Kept => {
                " (you edited it and the templates no longer generate it: saaskit stops tracking it)"
                    .into()
            }
            Outcome::DeletedByUser => " (you deleted it: it stays deleted)".into(),
            _ => String::new(),
        }
    }
}

/// What the file descends from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Base {
    /// The pristine copy, which agrees with the lockfile (`\n` line endings).
    Copy(String),
    /// No usable copy; what the lockfile's hashes tell: the file on disk is exactly as generated
    /// (`untouched`), or the templates generate exactly what they generated (`template_unchanged`).
    /// A file with inserted Cargo dependencies is neither: the lock keeps no hash of their entries.
    Hashes {
        untouched: bool,
        template_unchanged: bool,
    },
}

/// The upgrade of one file: `recorded` says whether the lockfile lists it as generated; `ours`
/// is the file on disk, `theirs` what the templates generate now (`None`: no longer generated).
fn decide(
    recorded: bool,
    base: &Base,
    ours: Option<&str>,
    theirs: Option<&str>,
    labels: &Labels,
) -> (Outcome, Action) {
    // A checkout may have turned the file's line endings into CRLF: merge in its style.
    let crlf = ours.is_some_and(uses_crlf);
    let theirs = theirs.map(|t| in_style(t, crlf));
    let base_text = match base {
        Base::Copy(copy) => Some(in_style(copy, crlf)),
        Base::Hashes { .. } => None,
    };
    let Some(ours) = ours else {
        return match theirs {
            None => (Outcome::Unchanged, Action::Leave),
            Some(_) if recorded => (Outcome::DeletedByUser, Action::Leave),
            Some(theirs) => (Outcome::Added, Action::Write(theirs)),
        };
    };
    let Some(theirs) = theirs else {
        let untouched = match base {
            Base::Copy(_) => base_text.as_deref() == Some(ours),
            Base::Hashes { untouched, .. } => *untouched,
        };
        return if recorded && untouched {
            (Outcome::Removed, Action::Delete)
        } else {
            (Outcome::Kept, Action::Leave)
        };
    };
    if ours == theirs {
        return (Outcome::Unchanged, Action::Leave);
    }
    let two_way = || {
        let merged = merge::merge_without_base(ours, &theirs, labels);
        (
            Outcome::Conflict(merged.conflicts),
            Action::Write(merged.text),
        )
    };
    if !recorded {
        // A file of the user's where the templates now generate one.
        return two_way();
    }
    match (base, base_text) {
        (Base::Copy(_), Some(base)) => {
            if base == theirs {
                return (Outcome::Unchanged, Action::Leave);
            }
            if base == ours {
                return (Outcome::Updated, Action::Write(theirs));
            }
            let merged = merge::merge(&base, ours, &theirs, labels);
            match merged.conflicts {
                0 if merged.text == ours => (Outcome::Unchanged, Action::Leave),
                0 => (Outcome::Merged, Action::Write(merged.text)),
                n => (Outcome::Conflict(n), Action::Write(merged.text)),
            }
        }
        (
            Base::Hashes {
                untouched: true, ..
            },
            _,
        ) => (Outcome::Updated, Action::Write(theirs)),
        (
            Base::Hashes {
                template_unchanged: true,
                ..
            },
            _,
        ) => (Outcome::Unchanged, Action::Leave),
        _ => two_way(),
    }
}

fn uses_crlf(text: &str) -> bool {
    let crlf = text.matches("\r\n").count();
    crlf > 0 && crlf * 2 >= text.matches('\n').count()
}

fn in_style(text: &str, crlf: bool) -> String {
    let lf = text.replace("\r\n", "\n");
    if crlf { lf.replace('\n', "\r\n") } else { lf }
}

/// Whether `text` is what the lockfile recorded for `path`: its own content (fenced blocks and
/// inserted dependencies taken out) and each of its snippets hash as recorded, and it holds no
/// other fenced block.
fn agrees_with_lock(path: &str, text: &str, lock: &Lock) -> bool {
    let Some(recorded) = lock.file(path) else {
        return false;
    };
    let own_matches =
        own_content(path, text, lock).is_ok_and(|own| lock::hash(&own) == recorded.sha256);
    let style = CommentStyle::for_path(path);
    let snippets: Vec<_> = lock.snippets.iter().filter(|s| s.path == path).collect();
    own_matches
        && inject::scan(text, style).blocks.len() == snippets.len()
        && snippets.iter().all(|s| {
            matches!(
                inject::block_body(text, style, &s.marker, &s.module),
                Ok(Some((body, _))) if lock::hash(&body) == s.sha256
            )
        })
}

fn base_of(workspace: &Workspace, fresh: &Lock, path: &str, ours: Option<&str>) -> Result<Base> {
    let old = workspace.lock();
    if let Some(copy_path) = base_path(path)
        && let Some(copy) = workspace.tree().read(&copy_path)?
    {
        let copy = copy.replace("\r\n", "\n");
        if agrees_with_lock(path, &copy, old) {
            return Ok(Base::Copy(copy));
        }
    }
    let has_dependencies = |lock: &Lock| lock.dependencies.iter().any(|d| d.path == path);
    let snippets = |lock: &Lock| -> BTreeSet<(String, String, String)> {
        lock.snippets
            .iter()
            .filter(|s| s.path == path)
            .map(|s| (s.marker.clone(), s.module.clone(), s.sha256.clone()))
            .collect()
    };
    let untouched = !has_dependencies(old)
        && ours.is_some_and(|ours| agrees_with_lock(path, &ours.replace("\r\n", "\n"), old));
    let template_unchanged = !has_dependencies(old)
        && !has_dependencies(fresh)
        && old.file(path).is_some_and(|o| {
            fresh
                .file(path)
                .is_some_and(|f| f.sha256 == o.sha256 && snippets(old) == snippets(fresh))
        });
    Ok(Base::Hashes {
        untouched,
        template_unchanged,
    })
}

/// `theirs` with the fenced blocks after each marker in the order `reference` has them (blocks
/// `reference` lacks keep their places in `theirs`, see [`reference_order`]). The fresh render
/// installs the modules service by service, so blocks the workspace's history put in another
/// order would otherwise show as moved. `theirs` as it is when it cannot be reordered.
fn in_reference_order(path: &str, theirs: &str, reference: &str) -> String {
    let style = CommentStyle::for_path(path);
    let theirs_blocks = inject::scan(theirs, style).blocks;
    if theirs_blocks.len() < 2 {
        return theirs.to_string();
    }
    let reference_blocks = inject::scan(reference, style).blocks;
    let markers: BTreeSet<&str> = theirs_blocks.iter().map(|b| b.marker.as_str()).collect();
    let mut text = theirs.to_string();
    for marker in markers {
        let current: Vec<&str> = theirs_blocks
            .iter()
            .filter(|b| b.marker == marker)
            .map(|b| b.module.as_str())
            .collect();
        let known: Vec<&str> = reference_blocks
            .iter()
            .filter(|b| b.marker == marker)
            .map(|b| b.module.as_str())
            .collect();
        let wanted = reference_order(&current, &known);
        if wanted == current {
            continue;
        }
        match reorder(&text, style, marker, &wanted) {
            Ok(reordered) => text = reordered,
            Err(_) => return theirs.to_string(),
        }
    }
    text
}

/// `current` (the modules of one marker's blocks, in file order) with the modules `reference`
/// also has in `reference`'s order, each module `reference` lacks staying at its index. The
/// fresh render put a new block (a module's templates gained a snippet there) where its module's
/// install order puts it, which holds for either direction of the marker's order, so it stays
/// between the same neighbours rather than going to an end.
fn reference_order<'a>(current: &[&'a str], reference: &[&str]) -> Vec<&'a str> {
    let mut known = reference
        .iter()
        .filter_map(|r| current.iter().find(|c| *c == r).copied());
    current
        .iter()
        .map(|module| {
            if reference.contains(module) {
                known.next().unwrap_or(module)
            } else {
                *module
            }
        })
        .collect()
}

/// The blocks of `modules` at `marker`, taken out and put back so that they follow the marker in
/// that order: backwards at a reverse-order marker, where each new block goes first.
fn reorder(text: &str, style: CommentStyle, marker: &str, modules: &[&str]) -> Result<String> {
    let mut bodies = Vec::new();
    for module in modules {
        let (body, _) = inject::block_body(text, style, marker, module)?
            .with_context(|| format!("no block {module}@{marker}"))?;
        bodies.push(body);
    }
    let mut text = text.to_string();
    for module in modules {
        text = inject::remove_block(&text, style, marker, module)?
            .with_context(|| format!("no block {module}@{marker}"))?;
    }
    let mut blocks: Vec<(&&str, String)> = modules.iter().zip(bodies).collect();
    if inject::is_reverse_order(marker) {
        blocks.reverse();
    }
    for (module, body) in blocks {
        text = inject::insert_block(&text, style, marker, module, &body)?;
    }
    Ok(text)
}

/// The lockfile after the upgrade: the fresh render's, but with each module's reason from before
/// (the fresh render installs every module as if asked for) and `.env`'s record unchanged (the
/// file is not regenerated).
fn upgraded_lock(old: &Lock, fresh: &Lock) -> Lock {
    let mut lock = fresh.clone();
    for module in &mut lock.modules {
        if let Some(before) = old.module(&module.id) {
            module.reason = before.reason;
        }
    }
    if let Some(env) = old.file(ENV_FILE) {
        lock.files.retain(|f| f.path != ENV_FILE);
        lock.files.push(env.clone());
    }
    lock
}

/// Refuses to merge into files that still hold the markers of an earlier upgrade's conflicts.
fn refuse_unresolved_conflicts(workspace: &Workspace) -> Result<()> {
    let mut places = Vec::new();
    for file in workspace.lock().files.iter().filter(|f| f.path != ENV_FILE) {
        if let Some(text) = workspace.tree().read(&file.path)?
            && let Some(line) = merge::conflict_marker_line(&text)
        {
            places.push(format!("  {}:{line}", file.path));
        }
    }
    if !places.is_empty() {
        bail!(
            "unresolved conflicts from an earlier `saaskit upgrade`:\n{}\n\
             Resolve each one first (keep the lines you want and delete the `<<<<<<<`, `|||||||`, \
             `=======` and `>>>>>>>` lines), then run `saaskit upgrade` again. Nothing was changed.",
            places.join("\n")
        );
    }
    Ok(())
}

pub fn run(args: UpgradeArgs) -> Result<()> {
    let root = find_root(&std::env::current_dir()?)?;
    let catalog = Catalog::load()?;
    let mut workspace = Workspace::open(&catalog, &root)?;
    refuse_unresolved_conflicts(&workspace)?;
    let fresh = Workspace::render_fresh(&catalog, workspace.manifest())?;
    let old = workspace.lock().clone();
    let new_lock = upgraded_lock(&old, fresh.lock());

    let files = plan_files(&workspace, &fresh)?;
    let copies = pristine_copies(&new_lock, &files.generated, &fresh)?;
    let mut report = Vec::new();
    for upgrade in files.upgrades {
        workspace.stage(&upgrade.path, upgrade.action);
        report.push((upgrade.path, upgrade.outcome));
    }
    workspace.replace_pristine_copies(&copies)?;
    let env_refresh = workspace.refresh_env()?;
    let module_changes = module_changes(&old, &new_lock);
    workspace.replace_lock(new_lock);
    let (plan, _, staged) =
        workspace.finish(|plan| super::stage_plan(&root, plan, args.dry_run))?;

    let (changed, copies) = super::write_plan(&plan, staged)?;
    let summary = Summary {
        report,
        env_refresh,
        module_changes,
        copies,
        without_copy: files.without_copy,
        from: old.saaskit_version,
    };
    summary.print(args.dry_run);
    if args.dry_run {
        println!(
            "dry run: {} file(s) would change; nothing was written",
            changed.len()
        );
        return Ok(());
    }
    let conflicted = summary.conflicted();
    if !conflicted.is_empty() {
        bail!(
            "{} file(s) have conflicts: {}.\n\
             The rest of the upgrade was applied. In each file, resolve every block between \
             `<<<<<<< ours` and `>>>>>>> theirs` (keep the lines you want, delete the marker lines), \
             then check with `cargo build` and `saaskit diff`.",
            conflicted.len(),
            conflicted.join(", ")
        );
    }
    Ok(())
}

/// The upgrade of one generated file.
struct FileUpgrade {
    path: String,
    outcome: Outcome,
    action: Action,
}

/// What the upgrade does to the generated files.
struct FilesPlan {
    upgrades: Vec<FileUpgrade>,
    /// What the templates generate, blocks in the workspace's order: the new base copies.
    generated: BTreeMap<String, String>,
    /// Files judged by the lock's hashes for want of a usable copy.
    without_copy: usize,
}

/// Decides the upgrade of every file either lockfile records: merged against its pristine copy,
/// or judged by the hashes when it has none.
fn plan_files(workspace: &Workspace, fresh: &Workspace) -> Result<FilesPlan> {
    let old = workspace.lock();
    let from = &old.saaskit_version;
    let to = env!("CARGO_PKG_VERSION");
    let mut plan = FilesPlan {
        upgrades: Vec::new(),
        generated: BTreeMap::new(),
        without_copy: 0,
    };
    for path in generated_paths(old, fresh.lock()) {
        let ours = workspace.tree().read(path)?;
        let base = base_of(workspace, fresh.lock(), path, ours.as_deref())?;
        let theirs = theirs(fresh, path, &base, ours.as_deref())?;
        if let Some(theirs) = &theirs {
            plan.generated.insert(path.to_string(), theirs.clone());
        }
        let base_label = format!("{path} as saaskit {from} generated it");
        let theirs_label = format!("{path} as saaskit {to} generates it");
        let labels = Labels {
            ours: path,
            base: &base_label,
            theirs: &theirs_label,
        };
        let recorded = old.file(path).is_some();
        let (outcome, action) =
            decide(recorded, &base, ours.as_deref(), theirs.as_deref(), &labels);
        if recorded && matches!(base, Base::Hashes { .. }) && outcome != Outcome::Unchanged {
            plan.without_copy += 1;
        }
        plan.upgrades.push(FileUpgrade {
            path: path.to_string(),
            outcome,
            action,
        });
    }
    Ok(plan)
}

/// What the templates generate now at `path` (`None`: no longer generated), its blocks in the
/// order the file descends from.
fn theirs(
    fresh: &Workspace,
    path: &str,
    base: &Base,
    ours: Option<&str>,
) -> Result<Option<String>> {
    let reference = match base {
        Base::Copy(copy) => Some(copy.as_str()),
        Base::Hashes { .. } => ours,
    };
    Ok(match (fresh.lock().file(path), reference) {
        (None, _) => None,
        (Some(_), None) => fresh.tree().read(path)?,
        (Some(_), Some(reference)) => fresh
            .tree()
            .read(path)?
            .map(|theirs| in_reference_order(path, &theirs, reference)),
    })
}

/// The base store after the upgrade: the new render, one copy per generated file.
fn pristine_copies(
    new_lock: &Lock,
    generated: &BTreeMap<String, String>,
    fresh: &Workspace,
) -> Result<BTreeMap<String, String>> {
    let mut copies = BTreeMap::new();
    for file in &new_lock.files {
        if base_path(&file.path).is_none() {
            continue;
        }
        let content = match generated.get(&file.path) {
            Some(content) => Some(content.clone()),
            None => fresh.tree().read(&file.path)?,
        };
        if let Some(content) = content {
            copies.insert(file.path.clone(), content);
        }
    }
    Ok(copies)
}

/// `id old -> new` for each module whose version changes.
fn module_changes(old: &Lock, new_lock: &Lock) -> Vec<String> {
    new_lock
        .modules
        .iter()
        .filter_map(|m| {
            let before = old.module(&m.id)?;
            (before.version != m.version)
                .then(|| format!("{} {} -> {}", m.id, before.version, m.version))
        })
        .collect()
}

/// What an upgrade did (or would do), for the report after it.
struct Summary {
    report: Vec<(String, Outcome)>,
    env_refresh: EnvRefresh,
    /// `id old -> new` for each module whose version changes.
    module_changes: Vec<String>,
    /// Pristine copies written or deleted.
    copies: usize,
    /// Files judged by the lock's hashes for want of a usable copy.
    without_copy: usize,
    /// The saaskit version the workspace was generated with.
    from: String,
}

impl Summary {
    fn conflicted(&self) -> Vec<&str> {
        self.report
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Conflict(_)))
            .map(|(p, _)| p.as_str())
            .collect()
    }

    fn print(&self, dry_run: bool) {
        let to = env!("CARGO_PKG_VERSION");
        let reported: Vec<&(String, Outcome)> = self
            .report
            .iter()
            .filter(|(_, o)| *o != Outcome::Unchanged)
            .collect();
        for (path, outcome) in &reported {
            println!("  {:<16} {path}{}", outcome.label(), outcome.detail());
        }
        let mut keys = Vec::new();
        let env = &self.env_refresh;
        if !env.added.is_empty() {
            keys.push(format!("new keys {}", env.added.join(", ")));
        }
        if !env.dropped.is_empty() {
            keys.push(format!("dropped {}", env.dropped.join(", ")));
        }
        if !env.kept.is_empty() {
            keys.push(format!(
                "kept {} at the end, which no module reads any more: move the values where they belong",
                env.kept.join(", ")
            ));
        }
        if !keys.is_empty() {
            println!(
                "  {:<16} {ENV_FILE} ({}; the values you set are kept)",
                "updated",
                keys.join("; ")
            );
        }
        if self.copies > 0 {
            let noun = if self.copies == 1 { "copy" } else { "copies" };
            println!(
                "  and {} pristine {noun} in {PACK_FILE} brought to the new templates",
                self.copies
            );
        }
        if reported.is_empty() && keys.is_empty() && self.module_changes.is_empty() {
            println!(
                "already up to date: the generated files match what saaskit {to} generates (or only you changed them)"
            );
        } else {
            let verb = if dry_run { "would upgrade" } else { "upgraded" };
            let since = if self.from == to {
                String::new()
            } else {
                format!(" (from saaskit {})", self.from)
            };
            let modules = if self.module_changes.is_empty() {
                String::new()
            } else {
                format!(": {}", self.module_changes.join(", "))
            };
            println!("{verb} to the templates of saaskit {to}{since}{modules}");
        }
        if self.without_copy > 0 {
            println!(
                "note: {} file(s) had no usable pristine copy in {PACK_FILE} (the workspace \
                 predates it, or the copy disagrees with saaskit.lock): they were judged by \
                 saaskit.lock's hashes, and where those could not tell your edits from the \
                 templates' changes, every difference was marked as a conflict. The upgrade \
                 writes a copy of every generated file, so the next one merges normally.",
                self.without_copy
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: Labels = Labels {
        ours: "f.rs",
        base: "f.rs as saaskit 0.1.0 generated it",
        theirs: "f.rs as saaskit 0.2.0 generates it",
    };

    fn copy(text: &str) -> Base {
        Base::Copy(text.into())
    }

    const UNKNOWN: Base = Base::Hashes {
        untouched: false,
        template_unchanged: false,
    };

    #[test]
    fn with_a_pristine_copy_each_side_s_change_is_taken() {
        let base = copy("a\nb\nc\nd\n");
        let write = |s: &str| Action::Write(s.into());
        assert_eq!(
            decide(
                true,
                &base,
                Some("a\nb\nc\nd\n"),
                Some("A\nb\nc\nd\n"),
                &LABELS
            ),
            (Outcome::Updated, write("A\nb\nc\nd\n"))
        );
        assert_eq!(
            decide(
                true,
                &base,
                Some("a\nb\nc\nD\n"),
                Some("a\nb\nc\nd\n"),
                &LABELS
            ),
            (Outcome::Unchanged, Action::Leave)
        );
        assert_eq!(
            decide(
                true,
                &base,
                Some("a\nb\nc\nD\n"),
                Some("A\nb\nc\nd\n"),
                &LABELS
            ),
            (Outcome::Merged, write("A\nb\nc\nD\n"))
        );
        let (outcome, _) = decide(
            true,
            &base,
            Some("x\nb\nc\nd\n"),
            Some("y\nb\nc\nd\n"),
            &LABELS,
        );
        assert_eq!(outcome, Outcome::Conflict(1));
    }

    #[test]
    fn deleted_added_and_dropped_files() {
        let base = copy("a\n");
        assert_eq!(
            decide(true, &base, None, Some("b\n"), &LABELS),
            (Outcome::DeletedByUser, Action::Leave)
        );
        assert_eq!(
            decide(false, &UNKNOWN, None, Some("b\n"), &LABELS),
            (Outcome::Added, Action::Write("b\n".into()))
        );
        assert_eq!(
            decide(true, &base, Some("a\n"), None, &LABELS),
            (Outcome::Removed, Action::Delete)
        );
        assert_eq!(
            decide(true, &base, Some("a\nmine\n"), None, &LABELS),
            (Outcome::Kept, Action::Leave)
        );
        // A file of the user's where the templates now generate one is not overwritten.
        let (outcome, action) = decide(false, &UNKNOWN, Some("mine\n"), Some("theirs\n"), &LABELS);
        assert_eq!(outcome, Outcome::Conflict(1));
        assert!(matches!(action, Action::Write(text) if text.contains("mine\n=======\ntheirs\n")));
    }

    #[test]
    fn without_a_copy_the_hashes_decide_and_doubt_means_conflict() {
        let untouched = Base::Hashes {
            untouched: true,
            template_unchanged: false,
        };
        assert_eq!(
            decide(true, &untouched, Some("old\n"), Some("new\n"), &LABELS),
            (Outcome::Updated, Action::Write("new\n".into()))
        );
        let same_templates = Base::Hashes {
            untouched: false,
            template_unchanged: true,
        };
        assert_eq!(
            decide(
                true,
                &same_templates,
                Some("mine\n"),
                Some("new\n"),
                &LABELS
            ),
            (Outcome::Unchanged, Action::Leave)
        );
        let (outcome, action) = decide(
            true,
            &UNKNOWN,
            Some("same\nmine\n"),
            Some("same\nnew\n"),
            &LABELS,
        );
        assert_eq!(outcome, Outcome::Conflict(1));
        assert!(matches!(action, Action::Write(text) if !text.contains("|||||||")));
        assert_eq!(
            decide(true, &UNKNOWN, Some("mine\n"), None, &LABELS),
            (Outcome::Kept, Action::Leave)
        );
    }

    #[test]
    fn known_blocks_take_the_reference_order_and_new_ones_keep_their_place() {
        assert_eq!(
            reference_order(&["a", "n", "b"], &["b", "a"]),
            ["b", "n", "a"]
        );
        assert_eq!(
            reference_order(&["a", "b"], &["b", "gone", "a"]),
            ["b", "a"]
        );
        assert_eq!(reference_order(&["n", "a"], &[]), ["n", "a"]);
    }

    /// `.env`-style text with one block per module after `marker`, in the given order.
    fn blocks_at(marker: &str, modules: &[&str]) -> String {
        let mut text = format!("A=1\n# <<<inject:{marker}>>>\n");
        for module in modules {
            text.push_str(&format!(
                "# <<<begin:{module}@{marker}>>>\n{module}=1\n# <<<end:{module}@{marker}>>>\n"
            ));
        }
        text.push_str("B=2\n");
        text
    }

    #[test]
    fn blocks_are_put_in_the_reference_order_at_either_kind_of_marker() {
        for marker in ["env", "shutdown"] {
            let theirs = blocks_at(marker, &["db", "new", "jobs"]);
            let reference = blocks_at(marker, &["jobs", "db"]);
            assert_eq!(
                in_reference_order("x.toml", &theirs, &reference),
                blocks_at(marker, &["jobs", "new", "db"]),
                "at `{marker}`"
            );
        }
    }

    #[test]
    fn a_crlf_file_is_merged_and_written_in_crlf() {
        let base = copy("a\nb\nc\nd\n");
        assert_eq!(
            decide(
                true,
                &base,
                Some("a\r\nb\r\nc\r\nD\r\n"),
                Some("A\nb\nc\nd\n"),
                &LABELS
            ),
            (
                Outcome::Merged,
                Action::Write("A\r\nb\r\nc\r\nD\r\n".into())
            )
        );
        assert_eq!(
            decide(
                true,
                &base,
                Some("a\r\nb\r\nc\r\nd\r\n"),
                Some("a\nb\nc\nd\n"),
                &LABELS
            ),
            (Outcome::Unchanged, Action::Leave)
        );
    }
}
