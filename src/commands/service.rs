//! `saaskit service add|remove`: a service of any kind added to or removed from a workspace,
//! planned in memory and written atomically like every command (see
//! [`crate::workspace::Workspace::add_service`]).

use anyhow::Result;

use crate::cli::{ServiceAddArgs, ServiceCommand, ServiceRemoveArgs};
use crate::edit::render::ServiceVars;
use crate::model::catalog::Catalog;
use crate::workspace::{Workspace, find_root};

pub fn run(command: ServiceCommand) -> Result<()> {
    match command {
        ServiceCommand::Add(args) => add(args),
        ServiceCommand::Remove(args) => remove(args),
    }
}

fn add(args: ServiceAddArgs) -> Result<()> {
    let catalog = Catalog::load()?;
    let root = find_root(&std::env::current_dir()?)?;
    let mut workspace = Workspace::open(&catalog, &root)?;
    let installed = workspace.add_service(&args.name, &args.kind, args.port)?;
    let port = workspace
        .manifest()
        .service(&args.name)
        .map(|s| s.port)
        .unwrap_or_default();
    super::finish_and_commit(workspace, &root, args.dry_run, true)?;
    let verb = if args.dry_run { "would add" } else { "added" };
    let modules = if installed.is_empty() {
        "no modules".to_string()
    } else {
        super::describe_installed(&installed)
    };
    println!(
        "{verb} service `{}` ({} kind, port {port}) in {}, with {modules}",
        args.name,
        args.kind,
        ServiceVars::dir_of(&args.name)
    );
    Ok(())
}

fn remove(args: ServiceRemoveArgs) -> Result<()> {
    let catalog = Catalog::load()?;
    let root = find_root(&std::env::current_dir()?)?;
    let mut workspace = Workspace::open(&catalog, &root)?;
    workspace.force_removal(args.force);
    let removed = workspace.remove_service(&args.name)?;
    super::finish_and_commit(workspace, &root, args.dry_run, true)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let modules = if removed.is_empty() {
        String::new()
    } else {
        format!(" and {}", super::describe_installed(&removed))
    };
    println!("{verb} service `{}`{modules}", args.name);
    // What saaskit did not generate stays: the user's own files, build output, node_modules.
    let dir = root.join(ServiceVars::dir_of(&args.name));
    if !args.dry_run && dir.is_dir() {
        println!(
            "note: {} still holds files saaskit did not generate (your own, build output, \
             dependencies): delete the folder yourself once you have kept what you need",
            dir.display()
        );
    }
    Ok(())
}
