//! A workspace being changed in memory: its manifest, lockfile and staged files.
//!
//! [`Workspace::install`] and [`Workspace::uninstall`] turn a module into planned edits of the
//! staged [`Tree`] (files, snippets, env keys, Cargo dependencies, migrations) and record them in
//! the manifest and the lockfile; [`Workspace::finish`] returns the plan. Nothing here writes to
//! the disk: the commands hand the plan to [`crate::stage::fsio::apply`].
//!
//! One file per concern: `install` (where a module and its requirements go, and what each
//! service gets), `uninstall`, `files` (generated files and spliced snippets, each edit replayed
//! on the pristine copy), `dependencies` (Cargo dependencies and who owns them), `env_blocks`
//! (the module blocks of `.env` and `.env.example`), [`upgrade`] (what `upgrade` stages), and
//! [`generated`] (what `diff` and `upgrade` compare). The state is private: commands read it
//! through [`Workspace::manifest`], [`Workspace::lock`] and [`Workspace::tree`], and change it
//! through the methods here only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use toml_edit::DocumentMut;

use crate::edit::inject;
use crate::edit::render::ServiceVars;
use crate::edit::secrets::Secrets;
use crate::model::catalog::{BASE_ID, Catalog};
use crate::model::lock::{self, Lock};
use crate::model::manifest::{self, Manifest};
use crate::stage::base_store::BASE_DIR;
use crate::stage::change::Text;
use crate::stage::tree::{Plan, Tree};

pub use env::{env_value, read_env};
pub use env_blocks::EnvRefresh;
pub use parse_ahead::ParseAhead;
pub use prerender::Prerendered;

mod dependencies;
mod env;
mod env_blocks;
mod files;
pub mod generated;
mod handlers;
mod install;
mod kept;
mod parse_ahead;
mod prerender;
pub mod resources;
mod services;
mod uninstall;
pub mod upgrade;

use files::Splices;
use kept::KeptParses;

pub const ENV_FILE: &str = ".env";
pub const ENV_EXAMPLE_FILE: &str = ".env.example";

pub struct Workspace<'c> {
    catalog: &'c Catalog,
    manifest: Manifest,
    lock: Lock,
    tree: Tree,
    secrets: Secrets,
    /// Files that exist but that saaskit did not generate may be overwritten (`new --force`).
    overwrite: bool,
    /// Remove generated files and snippets even when the user edited them (`remove --force`).
    force: bool,
    /// What the user should be told after the command (files kept, etc.).
    notes: Vec<String>,
    /// The Rust and TypeScript files snippets were spliced into, each with its text before the first splice
    /// and the splices in order: [`Workspace::finish`] parses each file once, and replays the
    /// splices only to name the one that broke it.
    spliced: BTreeMap<String, Splices>,
    /// The fences of each file as the last splice left it: the next splice into the file reuses
    /// them instead of scanning it again.
    fences: KeptParses<inject::Fences>,
    /// Each `Cargo.toml` as the last dependency edit left it, parsed: the next edit starts from
    /// that document instead of parsing the file again.
    cargo_tomls: KeptParses<DocumentMut>,
    /// Each Rust snippet formatted so far, by its rendered text: a module's snippet for every
    /// service that gets it often renders the same, and formatting is a parse and a print.
    formatted_rust: HashMap<String, String>,
    /// What another thread rendered ahead of the installation (`new`).
    prerendered: Option<&'c Prerendered>,
    /// The spliced Rust files, queued to be parsed as the command goes.
    parse_ahead: Arc<ParseAhead>,
    /// Whether a thread of the command's own works the queue ([`Workspace::lend_parse_worker`]);
    /// otherwise `finish` starts one.
    parse_worker_lent: bool,
}

/// What an `install` did: the modules newly applied and to which services.
pub type Installed = Vec<(String, Vec<String>)>;

/// Where the pristine copy of the generated file `path` is kept; `None` for `.env`, which holds
/// the user's values and secrets and is never copied.
pub fn base_path(path: &str) -> Option<String> {
    (path != ENV_FILE).then(|| format!("{BASE_DIR}/{path}"))
}

/// Walks up from `start` to the directory holding `saaskit.toml`.
pub fn find_root(start: &Path) -> Result<PathBuf> {
    let mut dir = Some(start);
    while let Some(current) = dir {
        if current.join(manifest::FILE_NAME).is_file() {
            return Ok(current.to_path_buf());
        }
        dir = current.parent();
    }
    bail!(
        "not inside a saaskit workspace: no {} in {} or any parent directory.\n\
         Create one with `saaskit new <name>`, or run the command from inside a workspace.",
        manifest::FILE_NAME,
        start.display()
    )
}
impl<'c> Workspace<'c> {
    /// The workspace at `root`, as it is on disk.
    pub fn open(catalog: &'c Catalog, root: &Path) -> Result<Workspace<'c>> {
        let tree = Tree::new(root);
        let text = tree
            .read(manifest::FILE_NAME)?
            .context("saaskit.toml disappeared")?;
        let manifest = Manifest::parse(&text)?;
        let lock = match tree.read(lock::FILE_NAME)? {
            Some(text) => Lock::parse(&text)?,
            None => bail!(
                "{} is missing next to saaskit.toml; restore it from version control \
                 (saaskit needs it to tell generated code from yours)",
                lock::FILE_NAME
            ),
        };
        for service in &manifest.services {
            for id in &service.modules {
                if !catalog.modules.contains_key(id) {
                    bail!(
                        "saaskit.toml: service `{}` lists module `{id}`, which this saaskit does not know ({})",
                        service.name,
                        catalog.unknown_module_message(id)
                    );
                }
            }
        }
        Ok(Workspace::with(catalog, manifest, lock, tree, false))
    }

    /// A new workspace at `root` from a freshly rendered manifest.
    pub fn create(
        catalog: &'c Catalog,
        root: &Path,
        manifest: Manifest,
        overwrite: bool,
    ) -> Workspace<'c> {
        Workspace::with(catalog, manifest, Lock::new(), Tree::new(root), overwrite)
    }

    /// What the current templates produce for `manifest`'s services and modules, in memory only:
    /// the reference `saaskit diff` compares a workspace with.
    pub fn render_fresh(catalog: &'c Catalog, manifest: &Manifest) -> Result<Workspace<'c>> {
        let mut bare = manifest.clone();
        let installed: Vec<(String, Vec<String>)> = manifest
            .services
            .iter()
            .map(|s| (s.name.clone(), s.modules.clone()))
            .collect();
        for (service, modules) in &installed {
            for id in modules {
                bare.remove_module(service, id);
            }
        }
        let mut fresh = Workspace::with(catalog, bare, Lock::new(), Tree::in_memory(), false);
        fresh.install_base()?;
        for (service, modules) in &installed {
            for id in modules {
                fresh.install(id, Some(service))?;
            }
        }
        fresh.apply_resources()?;
        fresh.apply_handlers()?;
        Ok(fresh)
    }

    fn with(
        catalog: &'c Catalog,
        manifest: Manifest,
        lock: Lock,
        tree: Tree,
        overwrite: bool,
    ) -> Workspace<'c> {
        Workspace {
            catalog,
            manifest,
            lock,
            tree,
            secrets: Secrets::from_environment(),
            overwrite,
            force: false,
            notes: Vec::new(),
            spliced: BTreeMap::new(),
            fences: KeptParses::default(),
            cargo_tomls: KeptParses::default(),
            formatted_rust: HashMap::new(),
            prerendered: None,
            parse_ahead: Arc::default(),
            parse_worker_lent: false,
        }
    }

    /// The manifest as planned so far.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The lockfile as planned so far.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// The staged tree: the workspace's files with the planned changes, to read.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Takes what `prerendered` rendered ahead instead of rendering it again.
    pub fn use_prerendered(&mut self, prerendered: &'c Prerendered) {
        self.prerendered = Some(prerendered);
    }

    /// The queue of spliced files to parse, for a thread of the caller's to work
    /// ([`ParseAhead::work`]) until [`Workspace::finish`] closes it; if `finish` does not come,
    /// the caller closes it ([`ParseAhead::close`]).
    pub fn lend_parse_worker(&mut self) -> Arc<ParseAhead> {
        self.parse_worker_lent = true;
        Arc::clone(&self.parse_ahead)
    }

    /// Removes generated files and snippets even when the user edited them (`remove --force`).
    pub fn force_removal(&mut self, force: bool) {
        self.force = force;
    }

    /// The plan: manifest and lockfile written into the tree, then every changed file. Fails
    /// when a Rust or TypeScript file snippets were spliced into no longer parses.
    ///
    /// `stage` gets the plan while the last spliced files are parsed (a command writes its files
    /// beside their targets meanwhile, [`crate::stage::fsio::stage`]); what it returns is
    /// dropped if a file does not parse.
    pub fn finish<S>(
        self,
        stage: impl FnOnce(&Plan) -> Result<S>,
    ) -> Result<(Plan, Vec<String>, S)> {
        let spliced = files::spliced_files(&self.tree, &self.spliced)?;
        let files: Vec<(&str, Text)> = (spliced.iter())
            .map(|(target, _, text)| (*target, text.clone()))
            .collect();
        let (mut tree, manifest, lock) = (self.tree, &self.manifest, &self.lock);
        let ahead = &self.parse_ahead;
        // The spliced files are parsed once each (their final texts), however many snippets they
        // got; what does not depend on them parsing is done meanwhile, and thrown away if one
        // does not.
        let (parses, planned) = std::thread::scope(|scope| {
            if !self.parse_worker_lent && !files.is_empty() {
                // Without a thread (the system refused one), this one parses them all.
                let _ = std::thread::Builder::new().spawn_scoped(scope, || ahead.work());
            }
            let planned = (|| {
                tree.write(manifest::FILE_NAME, manifest.to_text());
                tree.write(lock::FILE_NAME, lock.to_text());
                let plan = tree.into_plan()?;
                let staged = stage(&plan);
                anyhow::Ok((plan, staged))
            })();
            (ahead.verdicts(&files), planned)
        });
        if let Some(index) = parses.iter().position(|parses| !parses) {
            let (target, splices, _) = &spliced[index];
            return Err(files::unparsable(target, splices));
        }
        let (plan, staged) = planned?;
        Ok((plan, self.notes, staged?))
    }

    /// Modules installed on at least one service.
    pub fn installed(&self) -> BTreeSet<&str> {
        self.manifest
            .services
            .iter()
            .flat_map(|s| s.modules.iter().map(String::as_str))
            .collect()
    }

    /// The error for a service name the manifest does not have, listing those it has.
    pub(super) fn unknown_service(&self, name: &str) -> anyhow::Error {
        let known: Vec<&str> = self
            .manifest
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        anyhow::anyhow!(
            "no service `{name}` in this workspace (services: {})",
            known.join(", ")
        )
    }

    pub(super) fn services_having(&self, id: &str) -> Vec<ServiceVars> {
        self.manifest
            .services
            .iter()
            .filter(|s| id == BASE_ID || s.modules.iter().any(|m| m == id))
            .map(ServiceVars::new)
            .collect()
    }
}

#[cfg(test)]
mod tests;
