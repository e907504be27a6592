//! `saaskit generate job|email` and `saaskit destroy job|email`, planned in memory and written
//! atomically like `generate resource` (see [`crate::workspace::Workspace::generate_handler`]).

use anyhow::Result;

use crate::cli::DestroyResourceArgs;
use crate::model::catalog::Catalog;
use crate::model::manifest::HandlerSpec;
use crate::resource::handler::Kind;
use crate::workspace::{Workspace, find_root};

pub fn generate(
    kind: Kind,
    name: String,
    service: String,
    fields: Vec<String>,
    dry_run: bool,
) -> Result<()> {
    let catalog = Catalog::load()?;
    let root = find_root(&std::env::current_dir()?)?;
    let mut workspace = Workspace::open(&catalog, &root)?;
    let handler = workspace.generate_handler(
        kind,
        HandlerSpec {
            name,
            service,
            fields,
        },
    )?;
    let (plan, notes) = workspace.finish()?;
    super::commit(&root, &plan, &notes, dry_run, true)?;
    let verb = if dry_run {
        "would generate"
    } else {
        "generated"
    };
    let what = kind.as_str();
    let name = &handler.name;
    match kind {
        Kind::Job => println!(
            "{verb} job `{name}` (kind `{}`, run by service `{}`); undo with `saaskit destroy \
             job {name}`",
            handler.job_kind(),
            handler.service
        ),
        Kind::Email => {
            println!("{verb} {what} `{name}`; undo with `saaskit destroy {what} {name}`")
        }
    }
    Ok(())
}

pub fn destroy(kind: Kind, args: DestroyResourceArgs) -> Result<()> {
    let catalog = Catalog::load()?;
    let root = find_root(&std::env::current_dir()?)?;
    let mut workspace = Workspace::open(&catalog, &root)?;
    workspace.force_removal(args.force);
    workspace.destroy_handler(kind, &args.name)?;
    let (plan, notes) = workspace.finish()?;
    super::commit(&root, &plan, &notes, args.dry_run, true)?;
    let verb = if args.dry_run {
        "would destroy"
    } else {
        "destroyed"
    };
    println!("{verb} {} `{}`", kind.as_str(), args.name);
    Ok(())
}
