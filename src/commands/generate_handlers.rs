//! `saaskit generate job|email` and `saaskit destroy job|email`, planned in memory and written
//! atomically like `generate resource` (see [`crate::workspace::Workspace::generate_handler`]).

use anyhow::Result;

use super::generate::change_workspace;
use crate::cli::{DestroyResourceArgs, GenerateHandlerArgs};
use crate::model::manifest::HandlerSpec;
use crate::resource::handler::Kind;

pub fn generate(kind: Kind, args: GenerateHandlerArgs) -> Result<()> {
    let handler = change_workspace(args.dry_run, false, |workspace| {
        workspace.generate_handler(
            kind,
            HandlerSpec {
                name: args.name.clone(),
                service: args.service.clone(),
                fields: args.fields.clone(),
            },
        )
    })?;
    let verb = if args.dry_run {
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
    change_workspace(args.dry_run, args.force, |workspace| {
        workspace.destroy_handler(kind, &args.name)
    })?;
    let verb = if args.dry_run {
        "would destroy"
    } else {
        "destroyed"
    };
    println!("{verb} {} `{}`", kind.as_str(), args.name);
    Ok(())
}
