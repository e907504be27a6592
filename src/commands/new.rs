use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use dialoguer::{MultiSelect, Select};
use serde::Serialize;

use crate::cli::NewArgs;
use crate::edit::render::{kind_description, render};
use crate::model::catalog::{self, Catalog, DEFAULT_SERVICE_KINDS, SERVICE_KINDS};
use crate::model::manifest::{self, CoreCrate, DATABASES, Manifest};
use crate::workspace::{Prerendered, Workspace};

/// Ports of the default services, in this order; further services count up from the last.
const FIRST_PORT: u16 = 8080;

/// What the user chose (flags, wizard or defaults), before anything is generated.
#[derive(Debug, Serialize)]
struct Choices {
    name: String,
    /// The package name of the library crate.
    core: String,
    database: String,
    services: Vec<ServiceChoice>,
    #[serde(skip)]
    modules: Option<Vec<ModuleChoice>>,
}

/// A module to install, and where.
#[derive(Debug, Clone)]
struct ModuleChoice {
    id: String,
    /// On the services its `default` names (a default the user accepted), rather than on every
    /// service of a kind it applies to (a module the user asked for, like `saaskit add`).
    as_default: bool,
}

#[derive(Debug, Serialize)]
struct ServiceChoice {
    name: String,
    kind: String,
    port: u16,
}

pub fn run(args: NewArgs) -> Result<()> {
    manifest::validate_workspace_name(&args.name).map_err(anyhow::Error::msg)?;
    let catalog = Catalog::load()?;
    let root = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    check_target_directory(&root, args.force)?;

    let interactive =
        !args.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let choices = if interactive {
        ask(&args, &catalog)?
    } else {
        from_flags(&args)?
    };

    let manifest_text = render(
        "saaskit.toml",
        catalog::template("saaskit.toml.jinja")?,
        &choices,
    )?;
    let manifest = Manifest::parse(&manifest_text)
        .context("the rendered saaskit.toml is invalid (a saaskit bug)")?;
    let prerendered = Prerendered::default();
    let mut workspace = Workspace::create(&catalog, &root, manifest, args.force);
    workspace.use_prerendered(&prerendered);

    let kinds: Vec<&str> = choices.services.iter().map(|s| s.kind.as_str()).collect();
    let modules: Vec<ModuleChoice> = match &choices.modules {
        Some(chosen) => chosen.clone(),
        None => catalog
            .defaults(&kinds)
            .into_iter()
            .map(|id| ModuleChoice {
                id: id.to_string(),
                as_default: true,
            })
            .collect(),
    };
    // What the modules render, rendered on another thread meanwhile, in install order: the base,
    // then each module after what it requires (an unknown module is for the installing thread
    // to report). That thread then parses the files snippets were spliced into, as they settle.
    let ids: Vec<&str> = modules.iter().map(|m| m.id.as_str()).collect();
    let order: Vec<&catalog::Module> = std::iter::once(&catalog.base)
        .chain(catalog.resolve(&ids).unwrap_or_default())
        .collect();
    let planned = workspace.manifest().clone();
    let parse_ahead = workspace.lend_parse_worker();
    let (installed, plan) = std::thread::scope(|scope| {
        // Without a thread (the system refused one), this one does it all.
        let _ = std::thread::Builder::new()
            .name("saaskit-ahead".into())
            .spawn_scoped(scope, || {
                prerendered.fill(&planned, &order);
                parse_ahead.work();
            });
        let result = install(&mut workspace, &modules).and_then(|()| {
            prerendered.stop();
            let installed = workspace.installed().len();
            let plan = super::finish_and_commit(workspace, &root, args.dry_run, args.verbose)?;
            Ok((installed, plan))
        });
        // Ends the other thread's work whatever happened (`finish` did, if it came).
        prerendered.stop();
        parse_ahead.close();
        result
    })?;
    if !args.dry_run {
        let services: Vec<&str> = choices.services.iter().map(|s| s.name.as_str()).collect();
        println!(
            "created workspace `{}` in {}: {} ({}), {} module(s), {} files{}\n\nnext:\n  cd {}\n  saaskit dev",
            choices.name,
            root.display(),
            plural(services.len(), "service"),
            services.join(", "),
            installed,
            super::without_base_copies(&plan.changes).0.len(),
            if args.verbose {
                ""
            } else {
                " (--verbose lists them)"
            },
            root.display(),
        );
    }
    Ok(())
}

/// The base template, then `modules` in order.
fn install(workspace: &mut Workspace<'_>, modules: &[ModuleChoice]) -> Result<()> {
    workspace.install_base()?;
    for module in modules {
        if module.as_default {
            workspace.install_default(&module.id)?;
        } else {
            workspace.install(&module.id, None)?;
        }
    }
    Ok(())
}

/// `1 service`, `3 services`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn check_target_directory(root: &std::path::Path, force: bool) -> Result<()> {
    if root.is_file() {
        bail!(
            "{} is a file; pick another name or --output",
            root.display()
        );
    }
    let occupied = root.is_dir() && std::fs::read_dir(root)?.next().is_some();
    if occupied && !force {
        bail!(
            "{} already exists and is not empty; choose another --output, or pass --force to generate into it",
            root.display()
        );
    }
    Ok(())
}

fn from_flags(args: &NewArgs) -> Result<Choices> {
    let database = args.db.map_or("sqlite", |d| d.as_str()).to_string();
    let services = match &args.services {
        Some(specs) => parse_services(&args.name, specs)?,
        None => default_services(),
    };
    let modules = args.modules.as_ref().map(|m| {
        non_empty(m)
            .into_iter()
            .map(|id| ModuleChoice {
                id,
                as_default: false,
            })
            .collect()
    });
    Ok(Choices {
        name: args.name.clone(),
        core: CoreCrate::package_for(&args.name),
        database,
        services,
        modules,
    })
}

/// `--modules ''` arrives as one empty string: that means "no modules".
fn non_empty(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn default_services() -> Vec<ServiceChoice> {
    DEFAULT_SERVICE_KINDS
        .iter()
        .zip(FIRST_PORT..)
        .map(|(kind, port)| ServiceChoice {
            name: kind.to_string(),
            kind: kind.to_string(),
            port,
        })
        .collect()
}

/// `api`, `webhooks` or `billing=webhooks` (a name of one's own for a service of some kind).
fn parse_services(workspace: &str, specs: &[String]) -> Result<Vec<ServiceChoice>> {
    let mut services: Vec<ServiceChoice> = Vec::new();
    for spec in non_empty(specs) {
        let (name, kind) = spec.split_once('=').unwrap_or((&spec, &spec));
        if !SERVICE_KINDS.contains(&kind) {
            bail!(
                "--services: unknown service kind `{kind}`; expected {} (or name=kind)",
                SERVICE_KINDS.join(", ")
            );
        }
        manifest::validate_name(name).map_err(|e| anyhow::anyhow!("--services: {e}"))?;
        if name == CoreCrate::package_for(workspace) {
            bail!(
                "--services: `{name}` is the package name of the workspace's library crate; name the service otherwise (name=kind)"
            );
        }
        if services.iter().any(|s| s.name == name) {
            bail!("--services: service `{name}` is listed twice");
        }
        let port = FIRST_PORT + services.len() as u16;
        services.push(ServiceChoice {
            name: name.to_string(),
            kind: kind.to_string(),
            port,
        });
    }
    if services.is_empty() {
        bail!("--services: a workspace needs at least one service");
    }
    Ok(services)
}

/// The wizard: asks for whatever the flags left open.
fn ask(args: &NewArgs, catalog: &Catalog) -> Result<Choices> {
    let mut choices = from_flags(args)?;
    if args.services.is_none() {
        let items: Vec<String> = SERVICE_KINDS
            .iter()
            .map(|k| format!("{k:<9} {}", kind_description(k)))
            .collect();
        let picked = MultiSelect::new()
            .with_prompt("Services (space toggles, enter accepts)")
            .items(&items)
            .defaults(&SERVICE_KINDS.map(|kind| DEFAULT_SERVICE_KINDS.contains(&kind)))
            .interact()?;
        let kinds: Vec<String> = picked
            .iter()
            .map(|i| SERVICE_KINDS[*i].to_string())
            .collect();
        choices.services = parse_services(&args.name, &kinds)?;
    }
    if args.modules.is_none() {
        let kinds: Vec<&str> = choices.services.iter().map(|s| s.kind.as_str()).collect();
        let offered: Vec<&catalog::Module> = catalog
            .modules
            .values()
            .filter(|m| m.services.iter().any(|k| kinds.contains(&k.as_str())))
            .collect();
        let items: Vec<String> = offered
            .iter()
            .map(|m| {
                // A default on some kinds only is installed on those only: say so.
                let only = match &m.default {
                    catalog::DefaultOn::Kinds(kinds) => {
                        format!(" (by default on {} only)", kinds.join(", "))
                    }
                    catalog::DefaultOn::All(_) => String::new(),
                };
                format!("{:<28} {}{only}", m.id, m.summary)
            })
            .collect();
        let defaults: Vec<bool> = offered
            .iter()
            .map(|m| kinds.iter().any(|kind| m.is_default_on(kind)))
            .collect();
        let picked = MultiSelect::new()
            .with_prompt("Modules (requirements are added automatically)")
            .items(&items)
            .defaults(&defaults)
            .interact()?;
        // A default left ticked goes where `--yes` would put it, so that accepting every
        // proposal gives the same workspace as `--yes`.
        choices.modules = Some(
            picked
                .iter()
                .map(|i| ModuleChoice {
                    id: offered[*i].id.clone(),
                    as_default: defaults[*i],
                })
                .collect(),
        );
    }
    if args.db.is_none() {
        let items = [
            "sqlite    embedded, zero setup",
            "postgres  for several instances",
        ];
        let picked = Select::new()
            .with_prompt("Default database")
            .items(items)
            .default(0)
            .interact()?;
        choices.database = DATABASES[picked].to_string();
    }
    Ok(choices)
}
