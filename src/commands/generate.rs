//! `saaskit generate resource` and `saaskit destroy resource`: the product's own resources,
//! planned in memory and written atomically like every command (see
//! [`crate::workspace::Workspace::generate_resource`]).

use anyhow::Result;

use crate::cli::{DestroyCommand, DestroyResourceArgs, GenerateCommand, GenerateResourceArgs};
use crate::model::catalog::Catalog;
use crate::model::manifest::ResourceSpec;
use crate::resource::spec;
use crate::workspace::{Workspace, find_root};

pub fn run(command: GenerateCommand) -> Result<()> {
    match command {
        GenerateCommand::Resource(args) => resource(args),
    }
}

pub fn destroy(command: DestroyCommand) -> Result<()> {
    match command {
        DestroyCommand::Resource(args) => destroy_resource(args),
    }
}

fn resource(args: GenerateResourceArgs) -> Result<()> {
    // The fields first: a bad spec is reported before the workspace is even read.
    if let Err(error) = spec::parse_fields(&args.fields) {
        anyhow::bail!("{error}");
    }
    let catalog = Catalog::load()?;
    let root = find_root(&std::env::current_dir()?)?;
    let mut workspace = Workspace::open(&catalog, &root)?;
    let resource = workspace.generate_resource(ResourceSpec {
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
    })?;
    let (plan, notes) = workspace.finish()?;
    super::commit(&root, &plan, &notes, args.dry_run, true)?;
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

fn spec_owner(owner: crate::cli::Owner) -> spec::Owner {
    match owner {
        crate::cli::Owner::User => spec::Owner::User,
        crate::cli::Owner::Org => spec::Owner::Org,
    }
}

fn destroy_resource(args: DestroyResourceArgs) -> Result<()> {
    let catalog = Catalog::load()?;
    let root = find_root(&std::env::current_dir()?)?;
    let mut workspace = Workspace::open(&catalog, &root)?;
    workspace.force_removal(args.force);
    let destroyed = workspace.destroy_resource(&args.name)?;
    let (plan, notes) = workspace.finish()?;
    super::commit(&root, &plan, &notes, args.dry_run, true)?;
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
