//! `saaskit list` and `saaskit info`: the catalog, and where each module is installed when run
//! inside a workspace.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::cli::{InfoArgs, ListArgs};
use crate::model::catalog::{Catalog, DefaultOn, Language, Module, Scope};
use crate::model::manifest::Manifest;
use crate::workspace::find_root;

#[derive(Serialize)]
struct ModuleSummary<'a> {
    id: &'a str,
    version: &'a str,
    summary: &'a str,
    description: &'a str,
    /// The kinds of service it applies to.
    services: &'a [String],
    /// The languages of those kinds, in their order: one module may implement a feature for a
    /// Rust kind and for the TypeScript (`nest`) kind.
    languages: Vec<Language>,
    requires: &'a [String],
    conflicts: &'a [String],
    /// `true`, `false`, or the kinds it is a default on, as in `module.toml`.
    default: &'a DefaultOn,
    /// Services of the current workspace that have it; `null` outside a workspace.
    installed_on: Option<Vec<String>>,
}

#[derive(Serialize)]
struct ModuleDetails<'a> {
    #[serde(flatten)]
    summary: ModuleSummary<'a>,
    dependencies: Vec<String>,
    env: Vec<&'a str>,
    files: Vec<String>,
    snippets: Vec<String>,
    migrations: Vec<String>,
}

/// Which services have which module, if the current directory is inside a workspace.
fn installed_map() -> Option<BTreeMap<String, Vec<String>>> {
    let root = find_root(&std::env::current_dir().ok()?).ok()?;
    let manifest = Manifest::parse(
        &std::fs::read_to_string(root.join(crate::model::manifest::FILE_NAME)).ok()?,
    )
    .ok()?;
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for service in &manifest.services {
        for id in &service.modules {
            map.entry(id.clone())
                .or_default()
                .push(service.name.clone());
        }
    }
    Some(map)
}

fn summary<'a>(
    module: &'a Module,
    installed: &Option<BTreeMap<String, Vec<String>>>,
) -> ModuleSummary<'a> {
    ModuleSummary {
        id: &module.id,
        version: &module.version,
        summary: &module.summary,
        description: &module.description,
        services: &module.services,
        languages: languages(module),
        requires: &module.requires,
        conflicts: &module.conflicts,
        default: &module.default,
        installed_on: installed
            .as_ref()
            .map(|map| map.get(&module.id).cloned().unwrap_or_default()),
    }
}

fn languages(module: &Module) -> Vec<Language> {
    let mut languages: Vec<Language> = Vec::new();
    for kind in &module.services {
        let language = Language::of_kind(kind);
        if !languages.contains(&language) {
            languages.push(language);
        }
    }
    languages
}

/// `api, admin (Rust); nest (TypeScript)`: the kinds a module supports, by language.
fn kinds_by_language(module: &ModuleSummary) -> String {
    module
        .languages
        .iter()
        .map(|language| {
            let kinds: Vec<&str> = (module.services.iter())
                .filter(|kind| Language::of_kind(kind) == *language)
                .map(String::as_str)
                .collect();
            format!("{} ({})", kinds.join(", "), language.name())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn list(args: ListArgs) -> Result<()> {
    let catalog = Catalog::load()?;
    let installed = installed_map();
    let modules: Vec<ModuleSummary> = catalog
        .modules
        .values()
        .map(|m| summary(m, &installed))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&modules)?);
        return Ok(());
    }
    let width = modules.iter().map(|m| m.id.len()).max().unwrap_or(0);
    for module in &modules {
        let state = match &module.installed_on {
            Some(on) if !on.is_empty() => format!("installed: {}", on.join(", ")),
            Some(_) => "not installed".to_string(),
            None => String::new(),
        };
        let default = match module.default {
            DefaultOn::All(true) => " (default)".to_string(),
            DefaultOn::All(false) => String::new(),
            DefaultOn::Kinds(kinds) => format!(" (default on {})", kinds.join(", ")),
        };
        println!("{:<width$}  {}{default}", module.id, module.summary);
        let requires = if module.requires.is_empty() {
            "-".to_string()
        } else {
            module.requires.join(", ")
        };
        println!(
            "{:<width$}  kinds: {}  requires: {requires}  {state}",
            "",
            kinds_by_language(module)
        );
    }
    Ok(())
}

/// ` (per service)` after a per-service entry, naming the kinds it is limited to if any.
fn per_service(scope: Scope, kinds: Option<&[String]>) -> String {
    match (scope, kinds) {
        (Scope::Workspace, _) => String::new(),
        (Scope::Service, None) => " (per service)".to_string(),
        (Scope::Service, Some(kinds)) => format!(" (per service of kind {})", kinds.join(", ")),
    }
}

pub fn info(args: InfoArgs) -> Result<()> {
    let catalog = Catalog::load()?;
    let module = catalog.get(&args.module)?;
    let installed = installed_map();
    let details = ModuleDetails {
        summary: summary(module, &installed),
        dependencies: module
            .dependencies
            .iter()
            .map(|d| {
                let features = if d.features.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", d.features.join(", "))
                };
                format!("{} {}{features} -> {:?} crate", d.name, d.version, d.target).to_lowercase()
            })
            .collect(),
        env: module.env.iter().map(|e| e.key.as_str()).collect(),
        files: module
            .files
            .iter()
            .map(|f| format!("{}{}", f.target, per_service(f.scope, f.kinds.as_deref())))
            .collect(),
        snippets: module
            .snippets
            .iter()
            .map(|s| {
                let placement = per_service(s.scope, s.kinds.as_deref());
                format!("{} @ {}{placement}", s.target, s.marker)
            })
            .collect(),
        migrations: module
            .migrations
            .iter()
            .map(|m| format!("{}_{}", m.version, m.name))
            .collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&details)?);
        return Ok(());
    }
    let s = &details.summary;
    println!("{} {}\n  {}", s.id, s.version, s.description);
    println!("  kinds:      {}", kinds_by_language(s));
    let none = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    println!("  requires:   {}", none(s.requires));
    println!("  conflicts:  {}", none(s.conflicts));
    let default = match s.default {
        DefaultOn::All(true) => "yes".to_string(),
        DefaultOn::All(false) => "no".to_string(),
        DefaultOn::Kinds(kinds) => format!("on {} services", kinds.join(", ")),
    };
    println!("  default:    {default}");
    if let Some(on) = &s.installed_on {
        println!(
            "  installed:  {}",
            if on.is_empty() {
                "no".to_string()
            } else {
                on.join(", ")
            }
        );
    }
    let sections: [(&str, Vec<String>); 5] = [
        ("dependencies", details.dependencies.clone()),
        ("env", details.env.iter().map(|e| e.to_string()).collect()),
        ("files", details.files.clone()),
        ("snippets", details.snippets.clone()),
        ("migrations", details.migrations.clone()),
    ];
    for (title, items) in sections {
        if !items.is_empty() {
            println!("  {title}:");
            for item in items {
                println!("    {item}");
            }
        }
    }
    Ok(())
}
