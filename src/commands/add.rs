use anyhow::Result;

use crate::cli::AddArgs;
use crate::model::catalog::Catalog;
use crate::workspace::{Workspace, find_root};

pub fn run(args: AddArgs) -> Result<()> {
    let catalog = Catalog::load()?;
    let root = find_root(&std::env::current_dir()?)?;
    let mut workspace = Workspace::open(&catalog, &root)?;
    let installed = workspace.install(&args.module, args.service.as_deref())?;
    if installed.is_empty() {
        let on: Vec<String> = workspace
            .manifest()
            .services_with(&args.module)
            .iter()
            .map(|s| s.name.clone())
            .collect();
        // A module installed only as a requirement is now asked for by name: the lock records
        // that, so removing what required it keeps it.
        let (plan, notes, staged) =
            workspace.finish(|plan| super::stage_plan(&root, plan, args.dry_run))?;
        if plan.changes.is_empty() {
            println!(
                "`{}` is already installed on {}: nothing to do",
                args.module,
                on.join(", ")
            );
        } else {
            super::commit_staged(&plan, staged, &notes, true)?;
            println!(
                "`{}` is already installed on {}; it is now recorded as wanted for itself, so removing the modules that required it keeps it",
                args.module,
                on.join(", ")
            );
        }
        return Ok(());
    }
    super::finish_and_commit(workspace, &root, args.dry_run, true)?;
    let verb = if args.dry_run {
        "would install"
    } else {
        "installed"
    };
    println!("{verb} {}", super::describe_installed(&installed));
    Ok(())
}
