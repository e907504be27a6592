//! `saaskit generate resource` and `saaskit destroy resource`: the product's own resources,
//! planned in memory and written atomically like every command (see
//! [`crate::workspace::Workspace::generate_resource`]).

use anyhow::Result;

use super::generate_handlers as handlers;
use crate::cli::{DestroyCommand, DestroyResourceArgs, GenerateCommand, GenerateResourceArgs};
use crate::model::catalog::Catalog;
use crate::model::manifest::ResourceSpec;
use crate::resource::handler::Kind;
use crate::resource::spec;
use crate::workspace::{Workspace, find_root};

pub fn run(command: GenerateCommand) -> Result<()> {
    match command {
        GenerateCommand::Resource(args) => resource(args),
        GenerateCommand::Job(args) => handlers::generate(Kind::Job, args),
        GenerateCommand::Email(args) => handlers::generate(Kind::Email, args),
    }
}

pub fn destroy(command: DestroyCommand) -> Result<()> {
    match command {
        DestroyCommand::Resource(args) => destroy_resource(args),
        DestroyCommand::Job(args) => handlers::destroy(Kind::Job, args),
        DestroyCommand::Email(args) => handlers::destroy(Kind::Email, args),
    }
}

fn resource(args: GenerateResourceArgs) -> Result<()> {
    // The fields first: a bad spec is reported before the workspace is even read.
    if let Err(error) = spec::parse_fields(&args.fields) {
        anyhow::bail!("{error}");
    }
    let resource = change_workspace(args.dry_run, false, |workspace| {
        workspace.generate_resource(ResourceSpec {
            name: args.name.clone(),
            service: args.service.clone(),
            owner: args
                .owner
                .map(|o| spec_owner(o).as_str().to_string())
                .unwrap_or_default(),
            migration: 0,
            fields: args.fields.clone(),
            // Kept only where the workspace has an admin service (see `generate_resource`).
            admin: !args.no_admin,
        })
    })?;
    let verb = if args.dry_run {
        "would generate"
    } else {
        "generated"
    };
    let owner = match resource.owner {
        spec::Owner::User => "each row a user's",
        spec::Owner::Org => "each row an organization's",
    };
    println!(
        "{verb} resource `{}` on service `{}` (table `{}`, {owner}); undo with `saaskit destroy resource {}`",
        resource.name,
        resource.service,
        resource.table(),
        resource.name
    );
    Ok(())
}

/// Opens the workspace around the current directory, makes `change` to it in memory, then
/// writes the result atomically (or prints it as a diff with `dry_run`): every `generate` and
/// `destroy`. `force`: remove generated code even where it was edited.
pub(super) fn change_workspace<T>(
    dry_run: bool,
    force: bool,
    change: impl FnOnce(&mut Workspace<'_>) -> Result<T>,
) -> Result<T> {
    let catalog = Catalog::load()?;
    let root = find_root(&std::env::current_dir()?)?;
    let mut workspace = Workspace::open(&catalog, &root)?;
    workspace.force_removal(force);
    let changed = change(&mut workspace)?;
    super::finish_and_commit(workspace, &root, dry_run, true)?;
    Ok(changed)
}

fn spec_owner(owner: crate::cli::Owner) -> spec::Owner {
    match owner {
        crate::cli::Owner::User => spec::Owner::User,
        crate::cli::Owner::Org => spec::Owner::Org,
    }
}

fn destroy_resource(args: DestroyResourceArgs) -> Result<()> {
    let destroyed = change_workspace(args.dry_run, args.force, |workspace| {
        workspace.destroy_resource(&args.name)
    })?;
    let verb = if args.dry_run {
        "would destroy"
    } else {
        "destroyed"
    };
    println!("{verb} resource `{}`", args.name);
    // The migration files go with the rest, but a database that applied them keeps the table:
    // start-up ignores a migration it applied that the binary no longer has (src/db.rs).
    println!(
        "note: a database where the migration {} was applied keeps the table `{}` and its rows; \
         services start as before. Drop it yourself when you no longer need the data \
         (`DROP TABLE {};`), and before generating a resource of this name again.",
        destroyed.migrations.join(" / "),
        destroyed.table,
        destroyed.table
    );
    Ok(())
}
