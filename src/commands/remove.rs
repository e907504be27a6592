use anyhow::Result;

use crate::cli::RemoveArgs;
use crate::model::catalog::Catalog;
use crate::workspace::{Workspace, find_root};

pub fn run(args: RemoveArgs) -> Result<()> {
    let catalog = Catalog::load()?;
    let root = find_root(&std::env::current_dir()?)?;
    let mut workspace = Workspace::open(&catalog, &root)?;
    workspace.force_removal(args.force);
    let removed = workspace.uninstall(&args.module, args.service.as_deref())?;
    super::finish_and_commit(workspace, &root, args.dry_run, true)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!("{verb} {}", super::describe_installed(&removed));
    Ok(())
}
