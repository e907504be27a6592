//! One module per command. Each plans its whole change in memory, then [`commit`] prints it
//! (`--dry-run`) or hands it to the one writer.

mod add;
mod catalog_view;
#[cfg(unix)]
mod dev;
mod diff;
mod doctor;
mod generate;
mod generate_handlers;
mod keys;
mod new;
mod remove;
mod service;
mod upgrade;

use std::path::Path;

use anyhow::Result;

use crate::cli::Command;
use crate::stage::base_store::{self, PACK_FILE};
use crate::stage::change::{Change, render_diff, summarize};
use crate::stage::fsio::{self, Staged};
use crate::stage::tree::Plan;
use crate::workspace::Workspace;

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::New(args) => new::run(args),
        Command::Add(args) => add::run(args),
        Command::Remove(args) => remove::run(args),
        Command::Service(command) => service::run(command),
        Command::Generate(command) => generate::run(command),
        Command::Destroy(command) => generate::destroy(command),
        Command::List(args) => catalog_view::list(args),
        Command::Info(args) => catalog_view::info(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Upgrade(args) => upgrade::run(args),
        #[cfg(unix)]
        Command::Dev(args) => dev::run(args),
        #[cfg(not(unix))]
        Command::Dev(_) => anyhow::bail!("`saaskit dev` runs on Linux and macOS only"),
        Command::Keys(command) => keys::run(command),
        Command::Completions(args) => {
            let mut command = <crate::cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "saaskit", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// A plan's files written beside their targets ([`fsio::stage`]), not in place yet; nothing for
/// a dry run, which only prints the plan.
fn stage_plan(root: &Path, plan: &Plan, dry_run: bool) -> Result<Option<Staged>> {
    if dry_run {
        return Ok(None);
    }
    fsio::stage(root, &plan.writes()).map(Some)
}

/// Finishes `workspace`, its files written while its spliced files are checked, then puts them
/// in place and reports them ([`commit_staged`]). Returns the plan.
fn finish_and_commit(
    workspace: Workspace<'_>,
    root: &Path,
    dry_run: bool,
    list: bool,
) -> Result<Plan> {
    let (plan, notes, staged) = workspace.finish(|plan| stage_plan(root, plan, dry_run))?;
    commit_staged(&plan, staged, &notes, list)?;
    Ok(plan)
}

/// [`stage_plan`] then [`commit_staged`], for a plan made without a workspace (`keys`).
fn commit(root: &Path, plan: &Plan, notes: &[String], dry_run: bool, list: bool) -> Result<()> {
    commit_staged(plan, stage_plan(root, plan, dry_run)?, notes, list)
}

/// Prints the plan as a diff (no `staged`: a dry run) or puts its staged files in place
/// ([`write_plan`]), and lists the files written (when `list`: `new` lists its hundred files only
/// with `--verbose`). The base store's copies are written with the rest but only counted: they
/// repeat the generated files.
fn commit_staged(plan: &Plan, staged: Option<Staged>, notes: &[String], list: bool) -> Result<()> {
    let dry_run = staged.is_none();
    let (files, copies) = write_plan(plan, staged)?;
    if dry_run {
        println!(
            "dry run: {} file(s) would change; nothing was written",
            files.len()
        );
    } else if list {
        print!("{}", summarize(&files));
    }
    if copies > 0 && (list || dry_run) {
        let noun = if copies == 1 { "copy" } else { "copies" };
        println!(
            "  and {copies} pristine {noun} in {PACK_FILE} (what `saaskit upgrade` merges against)"
        );
    }
    for note in notes {
        println!("note: {note}");
    }
    Ok(())
}

/// The one path from a plan to the disk: prints the plan as a diff (no `staged`) or puts its
/// staged files in place. Returns the plan's changes outside the base store and how many copies
/// in it change, for the command's report.
fn write_plan(plan: &Plan, staged: Option<Staged>) -> Result<(Vec<&Change>, usize)> {
    let (files, copies) = without_base_copies(&plan.changes);
    match staged {
        None => print!("{}", render_diff(&files)),
        Some(staged) => staged.commit(&plan.writes())?,
    }
    Ok((files, copies))
}

/// The plan's changes outside the base store, and how many copies in it change.
fn without_base_copies(changes: &[Change]) -> (Vec<&Change>, usize) {
    let (copies, files): (Vec<&Change>, Vec<&Change>) = changes
        .iter()
        .partition(|c| base_store::original(&c.path).is_some());
    (files, copies.len())
}

/// `api, admin` from a list of (module, services).
fn describe_installed(installed: &[(String, Vec<String>)]) -> String {
    installed
        .iter()
        .map(|(id, services)| format!("`{id}` on {}", services.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}
