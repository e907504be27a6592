//! The one place that writes to the disk.
//!
//! Writing a plan is two steps. [`stage`] writes every new content beside its target (a tree that
//! does not exist yet: into a temporary directory beside it), and [`Staged::commit`] renames them
//! into place; a command stages its files while it is still checking its plan (the spliced files
//! being parsed) and drops what it staged if a check fails, which removes it. If a rename or a
//! deletion fails half-way, the files already changed are restored from the plan's `before`
//! contents, so a failed command leaves the workspace byte-identical. [`apply`] is both steps.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::stage::change::{Change, Text};

const TEMP_SUFFIX: &str = ".saaskit-tmp";

/// Writes `changes` (owned, or borrowed from a plan) under `root`, all or nothing.
pub fn apply<C: Borrow<Change>>(root: &Path, changes: &[C]) -> Result<()> {
    stage(root, changes)?.commit(changes)
}

/// A plan's new contents, written but not in place: [`Staged::commit`] puts them there, and
/// dropping it instead removes them (and the directories made for them).
#[must_use = "dropping what was staged removes it"]
pub struct Staged {
    root: PathBuf,
    /// The directories created for the staged files, outermost first.
    created_dirs: Vec<PathBuf>,
    files: StagedFiles,
}

enum StagedFiles {
    /// A tree that does not exist yet (`saaskit new`), written whole into this temporary
    /// directory beside it: one rename puts it in place, and it appears complete or not at all.
    Fresh(PathBuf),
    /// Each change's content in a temporary file beside its target (`None`: a deletion).
    Beside(Vec<Option<PathBuf>>),
    /// Committed, or removed: nothing left to clean up.
    Done,
}

/// Writes the new contents of `changes` under `root` without putting them in place yet.
pub fn stage<C: Borrow<Change>>(root: &Path, changes: &[C]) -> Result<Staged> {
    let changes: Vec<&Change> = changes.iter().map(Borrow::borrow).collect();
    let mut staged = Staged {
        root: root.to_path_buf(),
        created_dirs: Vec::new(),
        files: StagedFiles::Done,
    };
    if !root.exists() && changes.iter().all(|change| change.after.is_some()) {
        stage_fresh(&mut staged, &changes).context("nothing was written")?;
    } else {
        stage_beside(&mut staged, &changes)?;
    }
    Ok(staged)
}

/// The fresh tree written into its temporary directory; on failure, `staged` holds what to
/// remove.
fn stage_fresh(staged: &mut Staged, changes: &[&Change]) -> Result<()> {
    if let Some(parent) = staged.root.parent() {
        create_dirs(parent, &mut staged.created_dirs)?;
    }
    let temp = temp_path(&staged.root);
    if let Err(error) = fs::create_dir(&temp) {
        let hint = if error.kind() == std::io::ErrorKind::AlreadyExists {
            " (left by an interrupted saaskit? remove it and run the command again)"
        } else {
            ""
        };
        return Err(error)
            .with_context(|| format!("cannot create directory {}{hint}", temp.display()));
    }
    staged.files = StagedFiles::Fresh(temp.clone());
    write_in_parallel(&temp, changes)
}

/// Each new content written to a temporary file beside its target.
fn stage_beside(staged: &mut Staged, changes: &[&Change]) -> Result<()> {
    let mut temps: Vec<Option<PathBuf>> = Vec::with_capacity(changes.len());
    for change in changes {
        if change.after.is_none() {
            temps.push(None);
            continue;
        }
        let target = staged.root.join(&change.path);
        let temp = temp_path(&target);
        let result = (|| -> Result<()> {
            if let Some(parent) = target.parent() {
                create_dirs(parent, &mut staged.created_dirs)?;
            }
            write_file(&temp, change.after.as_ref())
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            staged.files = StagedFiles::Beside(temps);
            return Err(e);
        }
        temps.push(Some(temp));
    }
    staged.files = StagedFiles::Beside(temps);
    Ok(())
}

impl Staged {
    /// Puts the staged contents in place and deletes the files `changes` delete; `changes` are
    /// the ones [`stage`] was given.
    pub fn commit<C: Borrow<Change>>(mut self, changes: &[C]) -> Result<()> {
        let changes: Vec<&Change> = changes.iter().map(Borrow::borrow).collect();
        match std::mem::replace(&mut self.files, StagedFiles::Done) {
            StagedFiles::Fresh(temp) => {
                fs::rename(&temp, &self.root)
                    .with_context(|| format!("cannot move {} into place", self.root.display()))
                    .map_err(|error| {
                        self.files = StagedFiles::Fresh(temp);
                        error.context("nothing was written")
                    })?;
            }
            // On failure, dropping `self` removes the directories made for the files.
            StagedFiles::Beside(temps) => commit_beside(&self.root, &changes, &temps)?,
            StagedFiles::Done => {}
        }
        self.created_dirs.clear();
        Ok(())
    }
}

impl Drop for Staged {
    /// Not committed: the staged files are removed, and the directories made for them.
    fn drop(&mut self) {
        match std::mem::replace(&mut self.files, StagedFiles::Done) {
            StagedFiles::Fresh(temp) => {
                let _ = fs::remove_dir_all(temp);
            }
            StagedFiles::Beside(temps) => {
                for temp in temps.iter().flatten() {
                    let _ = fs::remove_file(temp);
                }
            }
            StagedFiles::Done => {}
        }
        remove_empty_dirs(&self.created_dirs);
    }
}

/// Renames each temporary file over its target (or deletes the target); restores the files
/// already changed if one fails.
fn commit_beside(root: &Path, changes: &[&Change], temps: &[Option<PathBuf>]) -> Result<()> {
    for (index, change) in changes.iter().enumerate() {
        let target = root.join(&change.path);
        let result = match &temps[index] {
            Some(temp) => fs::rename(temp, &target)
                .with_context(|| format!("cannot move {} into place", target.display())),
            None => fs::remove_file(&target)
                .with_context(|| format!("cannot delete {}", target.display())),
        };
        if let Err(error) = result {
            roll_back(root, &changes[..index]);
            for temp in temps[index..].iter().flatten() {
                let _ = fs::remove_file(temp);
            }
            return Err(
                error.context("nothing was changed: the files already written were restored")
            );
        }
    }
    // Deleting a module's last file in a directory should not leave the directory behind.
    let mut emptied: Vec<PathBuf> = changes
        .iter()
        .filter(|c| c.after.is_none())
        .filter_map(|c| root.join(&c.path).parent().map(Path::to_path_buf))
        .collect();
    emptied.sort();
    emptied.dedup();
    for dir in emptied {
        remove_empty_ancestors(root, &dir);
    }
    Ok(())
}

/// Writes each change's content under `dir`, creating the directories it needs, spread over the
/// machine's cores: on a disk, creating a file is mostly the kernel's work of allocating its
/// inode, which runs in parallel (on a 2-core machine, `saaskit new` went from 22.8 to 17.3 ms
/// median). The changes are cut into runs of consecutive paths of about the same cost
/// ([`write_cost`]: the base store's pack alone is as much work as a hundred small files), so
/// that the files of a directory are mostly created by one thread, and each thread takes the next
/// run no thread has taken ([`crate::shared::each`]): three runs a thread, so that one the
/// system starts late takes fewer.
fn write_in_parallel(dir: &Path, changes: &[&Change]) -> Result<()> {
    let writers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let runs: Vec<Vec<(PathBuf, Option<Text>)>> = split_by_cost(changes, 3 * writers)
        .into_iter()
        .map(|run| {
            run.iter()
                .map(|change| (dir.join(&change.path), change.after.clone()))
                .collect()
        })
        .collect();
    crate::shared::each(runs, writers - 1, |run| write_run(run))
        .into_iter()
        .collect()
}

/// Writes the files of a run, each directory created once, not looked up again for every file in
/// it; two runs creating the same one is fine (`create_dir_all` takes one that appeared
/// meanwhile).
fn write_run(run: &[(PathBuf, Option<Text>)]) -> Result<()> {
    let mut created: BTreeSet<&Path> = BTreeSet::new();
    for (target, content) in run {
        if let Some(parent) = target.parent()
            && !created.contains(parent)
        {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create directory {}", parent.display()))?;
            created.insert(parent);
        }
        write_file(target, content.as_ref())?;
    }
    Ok(())
}

/// What writing a file costs, in bytes of content it is worth: creating a file on tmpfs took
/// about as long as copying 32 KiB into it (`saaskit new`'s 224 files against its 1.5 MB pack).
fn write_cost(change: &Change) -> usize {
    32 * 1024 + change.after.as_ref().map_or(0, Text::byte_len)
}

/// Creates (or truncates) `path` with `content`, written as [`Text::write_to`] does.
fn write_file(path: &Path, content: Option<&Text>) -> Result<()> {
    let mut file =
        fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(content) = content {
        content
            .write_to(&mut file)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `changes` cut into at most `parts` runs of consecutive changes of about the same cost.
fn split_by_cost<'c, 'p>(changes: &'p [&'c Change], parts: usize) -> Vec<&'p [&'c Change]> {
    let total: usize = changes.iter().map(|change| write_cost(change)).sum();
    let share = total.div_ceil(parts.max(1)).max(1);
    let mut runs = Vec::with_capacity(parts);
    let (mut start, mut cost) = (0, 0);
    for (index, change) in changes.iter().enumerate() {
        cost += write_cost(change);
        if cost >= share && runs.len() + 1 < parts {
            runs.push(&changes[start..=index]);
            (start, cost) = (index + 1, 0);
        }
    }
    if start < changes.len() {
        runs.push(&changes[start..]);
    }
    runs
}

fn temp_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(TEMP_SUFFIX);
    target.with_file_name(name)
}

fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    // A relative root's parent is the empty path: the current directory, which exists.
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, created)?;
    }
    fs::create_dir(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    created.push(dir.to_path_buf());
    Ok(())
}

fn roll_back(root: &Path, applied: &[&Change]) {
    for change in applied.iter().rev() {
        let target = root.join(&change.path);
        let _ = match &change.before {
            Some(content) => fs::write(&target, content),
            None => fs::remove_file(&target),
        };
    }
}

/// Removes directories created by a failed command, deepest first, if they are empty.
fn remove_empty_dirs(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        let _ = fs::remove_dir(dir);
    }
}

fn remove_empty_ancestors(root: &Path, dir: &Path) {
    let mut current = Some(dir);
    while let Some(dir) = current {
        if dir == root || !dir.starts_with(root) || fs::remove_dir(dir).is_err() {
            break;
        }
        current = dir.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::change::Text;

    fn change(path: &str, before: Option<&str>, after: Option<&str>) -> Change {
        Change {
            path: path.into(),
            before: before.map(Into::into),
            after: after.map(|text| Text::new(text.to_string())),
        }
    }

    fn listing(root: &Path) -> Vec<String> {
        let mut paths: Vec<String> = walkdir::WalkDir::new(root)
            .into_iter()
            .map(|e| {
                e.unwrap()
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        paths.sort();
        paths
    }

    #[test]
    fn a_fresh_tree_appears_whole_or_not_at_all() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("parent/acme");
        let changes = [
            change("Cargo.toml", None, Some("[workspace]")),
            change("crates/core/src/lib.rs", None, Some("pub mod db;")),
        ];
        apply(&root, &changes).unwrap();
        assert_eq!(
            listing(&root),
            [
                "",
                "Cargo.toml",
                "crates",
                "crates/core",
                "crates/core/src",
                "crates/core/src/lib.rs"
            ]
        );

        // A path that cannot be written (a file where a directory must go) leaves nothing,
        // not even the parent directories it created.
        let failing = temp.path().join("other/acme");
        let clash = [
            change("a", None, Some("file")),
            change("a/b", None, Some("under a file")),
        ];
        let error = apply(&failing, &clash).unwrap_err();
        assert!(
            format!("{error:#}").contains("nothing was written"),
            "{error:#}"
        );
        assert!(!temp.path().join("other").exists());
    }

    #[test]
    fn what_was_staged_and_not_committed_is_removed() {
        let temp = tempfile::tempdir().unwrap();
        // A fresh tree: its temporary directory and the parents made for it go.
        let root = temp.path().join("parent/acme");
        let fresh = [change("Cargo.toml", None, Some("[workspace]"))];
        let staged = stage(&root, &fresh).unwrap();
        assert!(temp_path(&root).join("Cargo.toml").is_file());
        drop(staged);
        assert_eq!(listing(temp.path()), [""]);

        // An existing tree: the files beside their targets go, the targets are as they were.
        let root = temp.path();
        fs::write(root.join("kept.txt"), "before").unwrap();
        let before = listing(root);
        let changes = [
            change("kept.txt", Some("before"), Some("after")),
            change("new/dir/file.rs", None, Some("fresh")),
        ];
        drop(stage(root, &changes).unwrap());
        assert_eq!(listing(root), before);
        assert_eq!(fs::read_to_string(root.join("kept.txt")).unwrap(), "before");

        // Committed, nothing is removed.
        stage(root, &changes).unwrap().commit(&changes).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("new/dir/file.rs")).unwrap(),
            "fresh"
        );
        assert_eq!(fs::read_to_string(root.join("kept.txt")).unwrap(), "after");
    }

    #[test]
    fn write_runs_are_consecutive_and_cost_about_the_same() {
        let pack = "x".repeat(200 * 1024);
        let mut owned = vec![change(".saaskit/base.pack", None, Some(&pack))];
        owned.extend((0..12).map(|i| change(&format!("src/f{i:02}.rs"), None, Some("fn f() {}"))));
        let changes: Vec<&Change> = owned.iter().collect();

        let runs = split_by_cost(&changes, 2);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs.concat(), changes, "every change once, in order");
        // The pack (32 KiB + 200 KiB of cost) against twelve small files (12 x 32 KiB): the pack
        // and a few files on one side, the rest on the other, not six files each.
        let lengths: Vec<usize> = runs.iter().map(|run| run.len()).collect();
        assert!(lengths[0] < lengths[1], "{lengths:?}");

        assert_eq!(split_by_cost(&changes, 1), vec![&changes[..]]);
        assert!(split_by_cost(&[], 2).is_empty());
    }

    #[test]
    fn a_temporary_directory_left_behind_is_named_and_kept() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("acme");
        fs::create_dir(temp_path(&root)).unwrap();
        fs::write(temp_path(&root).join("stale"), "from an interrupted run").unwrap();
        let error = apply(&root, &[change("Cargo.toml", None, Some("[workspace]"))]).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("interrupted"), "{message}");
        assert!(!root.exists());
        assert!(
            temp_path(&root).join("stale").exists(),
            "not ours to delete"
        );
    }

    #[test]
    fn writes_creates_and_deletes_and_prunes_emptied_directories() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        fs::create_dir_all(root.join("gone/deep")).unwrap();
        fs::write(root.join("gone/deep/old.rs"), "old").unwrap();
        fs::write(root.join("kept.txt"), "before").unwrap();
        let changes = [
            change("kept.txt", Some("before"), Some("after")),
            change("new/dir/file.rs", None, Some("fresh")),
            change("gone/deep/old.rs", Some("old"), None),
        ];
        apply(root, &changes).unwrap();
        assert_eq!(fs::read_to_string(root.join("kept.txt")).unwrap(), "after");
        assert_eq!(
            fs::read_to_string(root.join("new/dir/file.rs")).unwrap(),
            "fresh"
        );
        assert!(
            !root.join("gone").exists(),
            "emptied directories are removed"
        );
    }

    #[test]
    fn a_failure_half_way_restores_every_file_and_leaves_no_temporary_file() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        fs::write(root.join("a.txt"), "original a").unwrap();
        fs::write(root.join("doomed.txt"), "original doomed").unwrap();
        // A non-empty directory where the plan expects a file: its rename fails, after `a.txt`
        // was already replaced and `doomed.txt` deleted.
        fs::create_dir_all(root.join("blocker/inside")).unwrap();
        let before = listing(root);
        let changes = [
            change("a.txt", Some("original a"), Some("new a")),
            change("doomed.txt", Some("original doomed"), None),
            change("new/file.txt", None, Some("new file")),
            change("blocker", None, Some("cannot replace a directory")),
        ];
        let error = apply(root, &changes).unwrap_err();
        assert!(
            format!("{error:#}").contains("nothing was changed"),
            "{error:#}"
        );
        assert_eq!(
            fs::read_to_string(root.join("a.txt")).unwrap(),
            "original a"
        );
        assert_eq!(
            fs::read_to_string(root.join("doomed.txt")).unwrap(),
            "original doomed"
        );
        assert_eq!(
            listing(root),
            before,
            "no file or directory was left behind"
        );
    }
}
