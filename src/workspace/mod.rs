//! A workspace being changed in memory: its manifest, lockfile and staged files.
//!
//! [`Workspace::install`] and [`Workspace::uninstall`] turn a module into planned edits of the
//! staged [`Tree`] (files, snippets, env keys, Cargo dependencies, migrations) and record them in
//! the manifest and the lockfile; [`Workspace::finish`] returns the plan. Nothing here writes to
//! the disk: the commands hand the plan to [`crate::stage::fsio::apply`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::edit::cargo_deps::{self, Added};
use crate::edit::env_file;
use crate::edit::inject::{self, CommentStyle};
use crate::edit::render::{Context, ServiceVars, render};
use crate::edit::secrets::Secrets;
use crate::model::catalog::{
    self, BASE_ID, Catalog, CrateTarget, FileEntry, MIGRATIONS_DIR, Module, Scope, Snippet,
};
use crate::model::lock::{self, Lock, LockedDependency, Reason};
use crate::model::manifest::{self, Manifest};
use crate::stage::base_store::BASE_DIR;
use crate::stage::tree::{Plan, Tree};

pub use env::{env_value, read_env};

mod env;

pub const ENV_FILE: &str = ".env";
pub const ENV_EXAMPLE_FILE: &str = ".env.example";
const ENV_MARKER: &str = "env";

/// What [`Workspace::refresh_env`] changed in `.env`.
#[derive(Debug, Default)]
pub struct EnvRefresh {
    /// Keys a module now declares.
    pub added: Vec<String>,
    /// Keys no module declares any more, which had no value.
    pub dropped: Vec<String>,
    /// Keys no module declares any more whose values stay in `.env`, below the blocks.
    pub kept: Vec<String>,
}
const SHARED_MANIFEST: &str = "crates/shared/Cargo.toml";

pub struct Workspace<'c> {
    pub catalog: &'c Catalog,
    pub manifest: Manifest,
    pub lock: Lock,
    pub tree: Tree,
    secrets: Secrets,
    /// Files that exist but that saaskit did not generate may be overwritten (`new --force`).
    overwrite: bool,
    /// Remove generated files and snippets even when the user edited them (`remove --force`).
    force: bool,
    /// What the user should be told after the command (files kept, etc.).
    pub notes: Vec<String>,
    /// The Rust files snippets were spliced into, each with its text before the first splice
    /// and the splices in order: [`Workspace::finish`] parses each file once, and replays the
    /// splices only to name the one that broke it.
    spliced: BTreeMap<String, Splices>,
}

/// The snippets spliced into one Rust file by a command, and the file before them.
struct Splices {
    original: String,
    /// (module, marker, body), in order.
    blocks: Vec<(String, String, String)>,
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
        }
    }

    /// Removes generated files and snippets even when the user edited them (`remove --force`).
    pub fn force_removal(&mut self, force: bool) {
        self.force = force;
    }

    /// The plan: manifest and lockfile written into the tree, then every changed file. Fails
    /// when a Rust file snippets were spliced into no longer parses.
    pub fn finish(mut self) -> Result<(Plan, Vec<String>)> {
        self.check_spliced()?;
        self.tree
            .write(manifest::FILE_NAME, self.manifest.to_text());
        self.tree.write(lock::FILE_NAME, self.lock.to_text());
        Ok((self.tree.plan()?, self.notes))
    }

    /// Modules installed on at least one service.
    pub fn installed(&self) -> BTreeSet<&str> {
        self.manifest
            .services
            .iter()
            .flat_map(|s| s.modules.iter().map(String::as_str))
            .collect()
    }

    fn services_having(&self, id: &str) -> Vec<ServiceVars> {
        self.manifest
            .services
            .iter()
            .filter(|s| id == BASE_ID || s.modules.iter().any(|m| m == id))
            .map(ServiceVars::new)
            .collect()
    }

    // ---------------------------------------------------------------------------------------
    // install

    /// Generates the base template for every service (only for `new`).
    pub fn install_base(&mut self) -> Result<()> {
        let base = &self.catalog.base;
        let services = self.services_having(BASE_ID);
        self.apply(base, &services, true)?;
        self.lock
            .record_module(BASE_ID, &base.version, Reason::Explicit);
        Ok(())
    }

    /// Installs `id` and everything it requires on `only_service`, or on every service of a kind
    /// the module applies to. Returns what was newly installed (empty: nothing to do).
    pub fn install(&mut self, id: &str, only_service: Option<&str>) -> Result<Installed> {
        let module = self.catalog.get(id)?;
        let targets = self.target_services(module, only_service)?;
        self.install_on_targets(module, &targets)
    }

    /// Installs `id` where its `default` says, for `saaskit new` without a choice of modules: on
    /// every service of a kind it is a default on. Its requirements are placed as by
    /// [`Self::install`], so a required module may go on services of other kinds too.
    pub fn install_default(&mut self, id: &str) -> Result<Installed> {
        let module = self.catalog.get(id)?;
        let targets: Vec<String> = self
            .manifest
            .services
            .iter()
            .filter(|s| module.is_default_on(&s.kind))
            .map(|s| s.name.clone())
            .collect();
        if targets.is_empty() {
            return Ok(Installed::new());
        }
        self.install_on_targets(module, &targets)
    }

    /// Installs `module` on `targets` and everything it requires, requirements first.
    fn install_on_targets(&mut self, module: &'c Module, targets: &[String]) -> Result<Installed> {
        let catalog = self.catalog;
        let id = module.id.as_str();
        // Also refuses requirement cycles, which `place` would follow forever.
        let order = catalog.resolve(&[id])?;

        let mut all: Vec<&str> = self.installed().into_iter().collect();
        all.extend(order.iter().map(|m| m.id.as_str()));
        all.sort();
        all.dedup();
        if let Some((a, b)) = catalog.find_conflict(&all) {
            bail!(
                "modules `{a}` and `{b}` conflict: they cannot be installed in one workspace; remove one first"
            );
        }

        let mut placements = Vec::new();
        self.place(module, targets.to_vec(), &mut placements)?;
        let mut installed = Installed::new();
        for (dependency, services) in placements {
            let reason = if dependency.id == id {
                Reason::Explicit
            } else {
                Reason::Dependency
            };
            let newly: Vec<String> = services
                .into_iter()
                .filter(|s| {
                    !self
                        .manifest
                        .service(s)
                        .is_some_and(|spec| spec.modules.contains(&dependency.id))
                })
                .collect();
            if reason == Reason::Explicit {
                self.lock.mark_explicit(id);
            }
            if newly.is_empty() {
                continue;
            }
            self.install_on(dependency, &newly, reason)?;
            installed.push((dependency.id.clone(), newly));
        }
        Ok(installed)
    }

    fn target_services(&self, module: &Module, only_service: Option<&str>) -> Result<Vec<String>> {
        let kinds = module.services.join(", ");
        match only_service {
            Some(name) => {
                let Some(spec) = self.manifest.service(name) else {
                    let known: Vec<&str> = self
                        .manifest
                        .services
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect();
                    bail!(
                        "no service `{name}` in this workspace (services: {})",
                        known.join(", ")
                    );
                };
                if !module.applies_to(&spec.kind) {
                    bail!(
                        "module `{}` applies to services of kind {kinds}; `{name}` is a `{}` service",
                        module.id,
                        spec.kind
                    );
                }
                Ok(vec![name.to_string()])
            }
            None => {
                let matching: Vec<String> = self
                    .manifest
                    .services
                    .iter()
                    .filter(|s| module.applies_to(&s.kind))
                    .map(|s| s.name.clone())
                    .collect();
                if matching.is_empty() {
                    bail!(
                        "module `{}` applies to services of kind {kinds}, and this workspace has none",
                        module.id
                    );
                }
                Ok(matching)
            }
        }
    }

    /// Adds to `out` where `module` and, recursively, what it requires go when `module` goes on
    /// `targets`, requirements first. Each requirement is placed by the services of the module
    /// that requires it, not those of the module being installed: in a chain from an api module
    /// to a webhooks module to `db`, `db` must be on the webhooks service before the webhooks
    /// module is installed there, or its snippets would precede `db`'s. A module reached along
    /// several paths is installed on the union of their services, at its first place.
    fn place(
        &self,
        module: &'c Module,
        targets: Vec<String>,
        out: &mut Vec<(&'c Module, Vec<String>)>,
    ) -> Result<()> {
        let catalog = self.catalog;
        for id in &module.requires {
            let requirement = catalog.get(id)?;
            let services = self.services_for_requirement(module, requirement, &targets)?;
            self.place(requirement, services, out)?;
        }
        match out.iter_mut().find(|(placed, _)| placed.id == module.id) {
            Some((_, services)) => {
                for target in targets {
                    if !services.contains(&target) {
                        services.push(target);
                    }
                }
            }
            None => out.push((module, targets)),
        }
        Ok(())
    }

    /// A required module goes on the same services as the module requiring it, where it applies;
    /// if it applies to none of them, on every service of a kind it applies to.
    fn services_for_requirement(
        &self,
        module: &Module,
        requirement: &Module,
        targets: &[String],
    ) -> Result<Vec<String>> {
        let kind_of = |name: &str| {
            self.manifest
                .service(name)
                .map(|s| s.kind.clone())
                .unwrap_or_default()
        };
        let same: Vec<String> = targets
            .iter()
            .filter(|t| requirement.applies_to(&kind_of(t)))
            .cloned()
            .collect();
        if !same.is_empty() {
            return Ok(same);
        }
        self.target_services(requirement, None).with_context(|| {
            format!(
                "module `{}` requires `{}`, which cannot be installed here",
                module.id, requirement.id
            )
        })
    }

    fn install_on(&mut self, module: &Module, services: &[String], reason: Reason) -> Result<()> {
        let first = self.manifest.services_with(&module.id).is_empty();
        for service in services {
            self.manifest.add_module(service, &module.id);
        }
        let vars: Vec<ServiceVars> = services
            .iter()
            .filter_map(|s| self.manifest.service(s))
            .map(ServiceVars::new)
            .collect();
        self.apply(module, &vars, first)?;
        if first {
            self.lock.record_module(&module.id, &module.version, reason);
        }
        Ok(())
    }

    /// Applies the workspace part of `module` (when `workspace_part`) and its service part for
    /// each of `services`, then brings its env blocks up to date.
    fn apply(
        &mut self,
        module: &Module,
        services: &[ServiceVars],
        workspace_part: bool,
    ) -> Result<()> {
        let context = Context::for_manifest(&self.manifest);
        let mut contexts: Vec<Context> = services.iter().map(|s| context.with_service(s)).collect();
        if workspace_part {
            contexts.insert(0, context);
        }
        for context in &contexts {
            let scope = context.scope();
            let kind = context.service_kind();
            for file in module.files.iter().filter(|f| f.applies_in(kind)) {
                let (target, content) = render_file(module, file, context)?;
                self.add_file(module, &target, content)?;
            }
            if scope == Scope::Workspace {
                for (target, content) in render_migrations(module)? {
                    self.add_file(module, &target, content)?;
                }
            }
            for snippet in module.snippets.iter().filter(|s| s.applies_in(kind)) {
                self.add_snippet(module, snippet, context)?;
            }
            let (crate_target, cargo_toml) = match &context.service {
                Some(service) => (CrateTarget::Service, format!("{}/Cargo.toml", service.dir)),
                None => (CrateTarget::Shared, SHARED_MANIFEST.to_string()),
            };
            let dependencies: Vec<&catalog::Dependency> = module
                .dependencies
                .iter()
                .filter(|d| d.target == crate_target)
                .collect();
            if !dependencies.is_empty() {
                self.add_dependencies(module, &cargo_toml, &dependencies)?;
            }
        }
        self.sync_env(module)
    }

    fn add_file(&mut self, module: &Module, target: &str, content: String) -> Result<()> {
        if let Some(existing) = self.tree.read(target)?
            && existing != content
        {
            match self.lock.file(target) {
                Some(owner) if owner.module != module.id => {
                    bail!(
                        "modules `{}` and `{}` both generate {target}",
                        owner.module,
                        module.id
                    )
                }
                None if !self.overwrite => bail!(
                    "{target} already exists and was not generated by saaskit; module `{}` would overwrite it.\n\
                     Move the file away and run the command again.",
                    module.id
                ),
                _ => {}
            }
        }
        self.lock.record_file(target, &module.id, &content);
        if let Some(base) = base_path(target) {
            self.tree.write(&base, content.clone());
        }
        self.tree.write(target, content);
        Ok(())
    }

    /// Replays on the pristine copy of `path` an edit saaskit makes to the generated file. A
    /// workspace generated before the base store existed has no copy: nothing to replay. A copy
    /// the edit does not apply to is dropped, so that `upgrade` does not trust it.
    fn edit_base(
        &mut self,
        path: &str,
        edit: impl FnOnce(&str) -> Result<Option<String>>,
    ) -> Result<()> {
        let Some(base) = base_path(path) else {
            return Ok(());
        };
        let Some(current) = self.tree.read(&base)? else {
            return Ok(());
        };
        match edit(&current) {
            Ok(Some(updated)) => self.tree.write(&base, updated),
            Ok(None) => {}
            Err(_) => self.tree.delete(&base),
        }
        Ok(())
    }

    fn add_snippet(&mut self, module: &Module, snippet: &Snippet, context: &Context) -> Result<()> {
        let target = render(
            &format!("{} snippet target", module.id),
            &snippet.target,
            context,
        )?;
        let code = render(
            &format!("{} snippet for `{}`", module.id, snippet.marker),
            &snippet.code,
            context,
        )?;
        let style = CommentStyle::for_path(&target);
        let body = match style {
            CommentStyle::Rust => inject::format_rust_snippet(&code).with_context(|| {
                format!(
                    "module `{}`: its `{}` snippet for {target} is not valid Rust",
                    module.id, snippet.marker
                )
            })?,
            CommentStyle::Hash => code,
        };
        self.inject(&module.id, &target, &snippet.marker, &body)?;
        self.lock
            .record_snippet(&target, &snippet.marker, &module.id, &body);
        Ok(())
    }

    fn inject(&mut self, module: &str, target: &str, marker: &str, body: &str) -> Result<()> {
        let Some(source) = self.tree.read(target)? else {
            bail!(
                "module `{module}` injects into {target}, which does not exist; restore it or run `saaskit doctor`"
            );
        };
        let style = CommentStyle::for_path(target);
        // Rust files are parsed once, in `finish`, however many snippets they get.
        let updated = inject::splice_block(&source, style, marker, module, body)
            .with_context(|| format!("module `{module}`, marker `{marker}`: {target}"))?;
        if style == CommentStyle::Rust {
            self.spliced
                .entry(target.to_string())
                .or_insert_with(|| Splices {
                    original: source.to_string(),
                    blocks: Vec::new(),
                })
                .blocks
                .push((module.into(), marker.into(), body.into()));
        }
        self.tree.write(target, updated);
        // The pristine copy gets the same splice: it parses when the file does.
        self.edit_base(target, |base| {
            Ok(Some(inject::splice_block(
                base, style, marker, module, body,
            )?))
        })
    }

    /// Parses each Rust file snippets were spliced into; for one that does not parse, replays
    /// its splices one by one, checking each, so that the error names the module, the marker
    /// and the line.
    fn check_spliced(&self) -> Result<()> {
        for (target, splices) in &self.spliced {
            let Some(current) = self.tree.read(target)? else {
                continue;
            };
            if inject::parses(&current) {
                continue;
            }
            let mut text = splices.original.clone();
            for (module, marker, body) in &splices.blocks {
                text = inject::insert_block(&text, CommentStyle::Rust, marker, module, body)
                    .with_context(|| format!("module `{module}`, marker `{marker}`: {target}"))?;
            }
            bail!(
                "{target} does not parse after the snippets of this command were spliced into it"
            );
        }
        Ok(())
    }

    fn add_dependencies(
        &mut self,
        module: &Module,
        cargo_toml: &str,
        dependencies: &[&catalog::Dependency],
    ) -> Result<()> {
        let Some(text) = self.tree.read(cargo_toml)? else {
            bail!(
                "module `{}` adds dependencies to {cargo_toml}, which does not exist",
                module.id
            );
        };
        let (updated, changes) = cargo_deps::add(cargo_toml, &text, dependencies)?;
        if changes.iter().all(Added::is_empty) {
            return Ok(());
        }
        // The pristine copy gets what the file got, no more: a dependency the user had already
        // added by hand is not recorded, so `remove` would not take it out of the copy.
        let changed: Vec<&catalog::Dependency> = dependencies
            .iter()
            .zip(&changes)
            .filter(|(_, added)| !added.is_empty())
            .map(|(dependency, _)| *dependency)
            .collect();
        self.edit_base(cargo_toml, |base| {
            // Until the user edits the file, its pristine copy is the same text: no second parse.
            if base == text {
                return Ok(Some(updated.clone()));
            }
            Ok(Some(cargo_deps::add(cargo_toml, base, &changed)?.0))
        })?;
        self.tree.write(cargo_toml, updated);
        for (dependency, added) in dependencies.iter().zip(changes) {
            if added.is_empty() {
                continue;
            }
            self.lock.record_dependency(LockedDependency {
                path: cargo_toml.into(),
                module: module.id.clone(),
                name: dependency.name.clone(),
                inserted: added.inserted,
                features: added.features,
            });
        }
        Ok(())
    }

    /// Rewrites the module's fenced blocks in `.env` and `.env.example` for the services that have
    /// it now, keeping values already in `.env` (the user's, or secrets generated earlier); removes
    /// the blocks when no service has the module any more.
    fn sync_env(&mut self, module: &Module) -> Result<()> {
        self.sync_env_files(module, &[ENV_FILE, ENV_EXAMPLE_FILE])
    }

    /// [`Self::sync_env`] for some of the two files only.
    fn sync_env_files(&mut self, module: &Module, files: &[&str]) -> Result<()> {
        if module.env.is_empty() {
            return Ok(());
        }
        let contexts = self.env_contexts(module);
        let current = self.current_env_values(&module.id)?;
        let mut env_block = String::new();
        let mut example_block = String::new();
        for context in &contexts {
            let scope = context.scope();
            for var in module.env.iter().filter(|v| v.scope == scope) {
                let key = render(&format!("{} env key", module.id), &var.key, context)?;
                let (value, example) = match (&var.default, var.generate) {
                    (Some(default), _) => {
                        let value =
                            render(&format!("{} env `{key}`", module.id), default, context)?;
                        (value.clone(), value)
                    }
                    (None, Some(generator)) => {
                        (self.secrets.generate(&key, generator), String::new())
                    }
                    (None, None) => {
                        unreachable!("catalog validation requires a default or a generator")
                    }
                };
                let value = current.get(&key).cloned().unwrap_or(value);
                let description = render(
                    &format!("{} env `{key}` description", module.id),
                    &var.description,
                    context,
                )?;
                env_block.push_str(&format!("# {description}\n{key}={value}\n"));
                let note = if var.generate.is_some() {
                    " (a fresh random secret in each workspace's .env)"
                } else {
                    ""
                };
                example_block.push_str(&format!("# {description}{note}\n{key}={example}\n"));
            }
        }
        for (file, block) in [(ENV_FILE, env_block), (ENV_EXAMPLE_FILE, example_block)] {
            if !files.contains(&file) {
                continue;
            }
            let style = CommentStyle::Hash;
            let Some(source) = self.tree.read(file)? else {
                continue;
            };
            self.lock.forget_snippets_in(file, &module.id);
            if block.is_empty() {
                if let Some(updated) = inject::remove_block(&source, style, ENV_MARKER, &module.id)
                    .with_context(|| file.to_string())?
                {
                    self.tree.write(file, updated);
                }
                self.edit_base(file, |base| {
                    Ok(inject::remove_block(base, style, ENV_MARKER, &module.id)?)
                })?;
                continue;
            }
            self.inject(&module.id, file, ENV_MARKER, &block)?;
            // `.env` holds the user's values and secrets: only the committed example is tracked.
            if file == ENV_EXAMPLE_FILE {
                self.lock
                    .record_snippet(file, ENV_MARKER, &module.id, &block);
            }
        }
        Ok(())
    }

    /// Brings the module blocks of `.env` up to date with this saaskit's modules (`upgrade`): keys
    /// a module now declares get their default or a fresh secret, and every value already set is
    /// kept. A key no module declares any more goes when it was empty; with a value, it moves
    /// below the blocks, under a comment: the value is the user's (a replaced key's services
    /// refuse to start while it is set, saying where it goes), so it must not vanish silently.
    /// The rest of the file is the user's and stays as it is. Returns the keys added, dropped and
    /// kept that way.
    pub fn refresh_env(&mut self) -> Result<EnvRefresh> {
        let Some(before) = self.tree.read(ENV_FILE)? else {
            return Ok(EnvRefresh::default());
        };
        let catalog = self.catalog;
        let installed: Vec<String> = self.installed().into_iter().map(str::to_string).collect();
        let modules = std::iter::once(&catalog.base)
            .chain(installed.iter().filter_map(|id| catalog.modules.get(id)));
        for module in modules {
            if !module.env.is_empty() {
                self.sync_env_files(module, &[ENV_FILE])?;
                continue;
            }
            let source = self.tree.read(ENV_FILE)?.unwrap_or_default();
            if let Some(updated) =
                inject::remove_block(&source, CommentStyle::Hash, ENV_MARKER, &module.id)
                    .context(ENV_FILE)?
            {
                self.tree.write(ENV_FILE, updated);
            }
        }
        let mut after = self.tree.read(ENV_FILE)?.unwrap_or_default();
        let (before, current) = (env_file::written(&before), env_file::written(&after));
        let mut refresh = EnvRefresh {
            added: (current.keys())
                .filter(|key| !before.contains_key(*key))
                .cloned()
                .collect(),
            ..EnvRefresh::default()
        };
        let mut kept_lines = String::new();
        for (key, value) in before.iter().filter(|(k, _)| !current.contains_key(*k)) {
            if value.trim().is_empty() {
                refresh.dropped.push(key.clone());
            } else {
                kept_lines.push_str(&format!("{key}={value}\n"));
                refresh.kept.push(key.clone());
            }
        }
        if !kept_lines.is_empty() {
            if !after.is_empty() && !after.ends_with('\n') {
                after.push('\n');
            }
            after.push_str(&format!(
                "# Kept by `saaskit upgrade`: no module reads these keys any more. Move each value \
                 where it belongs now (a service that refuses to start while one is set names the \
                 keys that replaced it), then delete the line.\n{kept_lines}"
            ));
            self.tree.write(ENV_FILE, after);
        }
        Ok(refresh)
    }

    /// The contexts a module's env entries are rendered in: the workspace once, then each
    /// service that has the module; none when no service has it.
    fn env_contexts(&self, module: &Module) -> Vec<Context> {
        let services = self.services_having(&module.id);
        if services.is_empty() {
            return Vec::new();
        }
        let context = Context::for_manifest(&self.manifest);
        let mut contexts = vec![context.clone()];
        contexts.extend(services.iter().map(|s| context.with_service(s)));
        contexts
    }

    /// Every env key the base and the installed modules need set, with the module that needs it.
    /// Optional keys (empty default) are left out: the services run without them.
    pub fn expected_env_keys(&self) -> Result<Vec<(String, String)>> {
        let installed = self.installed();
        let modules = std::iter::once(&self.catalog.base).chain(
            installed
                .iter()
                .filter_map(|id| self.catalog.modules.get(*id)),
        );
        let mut keys = Vec::new();
        for module in modules {
            for context in self.env_contexts(module) {
                let scope = context.scope();
                for var in module
                    .env
                    .iter()
                    .filter(|v| v.scope == scope && !v.is_optional())
                {
                    let key = render(&format!("{} env key", module.id), &var.key, &context)?;
                    keys.push((module.id.clone(), key));
                }
            }
        }
        Ok(keys)
    }

    /// The values of the module's block in `.env`, as written.
    fn current_env_values(&self, module: &str) -> Result<BTreeMap<String, String>> {
        let Some(source) = self.tree.read(ENV_FILE)? else {
            return Ok(BTreeMap::new());
        };
        let body = inject::block_body(&source, CommentStyle::Hash, ENV_MARKER, module)
            .context(ENV_FILE)?;
        Ok(body
            .map(|(body, _)| env_file::written(&body))
            .unwrap_or_default())
    }

    // ---------------------------------------------------------------------------------------
    // uninstall

    /// Removes `id` from `only_service` or from every service that has it, then every module that
    /// was installed only as its requirement and is no longer required. Returns what was removed.
    pub fn uninstall(&mut self, id: &str, only_service: Option<&str>) -> Result<Installed> {
        let catalog = self.catalog;
        let module = catalog.get(id)?;
        let having: Vec<String> = self
            .manifest
            .services_with(id)
            .iter()
            .map(|s| s.name.clone())
            .collect();
        if having.is_empty() {
            bail!("module `{id}` is not installed in this workspace (see `saaskit list`)");
        }
        let targets: Vec<String> = match only_service {
            Some(name) if having.iter().any(|h| h == name) => vec![name.to_string()],
            Some(name) => bail!(
                "module `{id}` is not installed on service `{name}` (it is on: {})",
                having.join(", ")
            ),
            None => having,
        };
        for service in &targets {
            let spec = self
                .manifest
                .service(service)
                .expect("targets come from the manifest");
            let on_service: BTreeSet<&str> = spec.modules.iter().map(String::as_str).collect();
            if let Some(dependent) = catalog.dependents(id, &on_service).first() {
                bail!(
                    "cannot remove `{id}`: module `{dependent}` on service `{service}` requires it. \
                     Remove `{dependent}` first."
                );
            }
        }
        let mut removed = vec![(id.to_string(), targets.clone())];
        self.uninstall_from(module, &targets)?;
        removed.extend(self.remove_unneeded_requirements()?);
        Ok(removed)
    }

    fn uninstall_from(&mut self, module: &Module, services: &[String]) -> Result<()> {
        let vars: Vec<ServiceVars> = services
            .iter()
            .filter_map(|s| self.manifest.service(s))
            .map(ServiceVars::new)
            .collect();
        for service in services {
            self.manifest.remove_module(service, &module.id);
        }
        let last = self.manifest.services_with(&module.id).is_empty();
        let context = Context::for_manifest(&self.manifest);
        let mut contexts: Vec<Context> = vars.iter().map(|s| context.with_service(s)).collect();
        if last {
            contexts.push(context);
        }
        for context in &contexts {
            let scope = context.scope();
            let kind = context.service_kind();
            // Snippets first: the files they refer to may be removed next. The same entries as
            // `apply` chose, so a snippet limited to other kinds is not reported as gone.
            for snippet in module.snippets.iter().filter(|s| s.applies_in(kind)).rev() {
                let target = render(
                    &format!("{} snippet target", module.id),
                    &snippet.target,
                    context,
                )?;
                self.remove_snippet(&module.id, &target, &snippet.marker)?;
            }
            for file in module.files.iter().filter(|f| f.applies_in(kind)) {
                let target = render(&format!("{} file target", module.id), &file.target, context)?;
                self.remove_file(&module.id, &target)?;
            }
            if scope == Scope::Workspace {
                for (target, _) in render_migrations(module)? {
                    self.remove_file(&module.id, &target)?;
                }
            }
            let cargo_toml = match &context.service {
                Some(service) => format!("{}/Cargo.toml", service.dir),
                None => SHARED_MANIFEST.to_string(),
            };
            self.remove_dependencies(&module.id, &cargo_toml)?;
        }
        self.sync_env(module)?;
        if last {
            self.lock.forget_module(&module.id);
        }
        Ok(())
    }

    fn remove_snippet(&mut self, module: &str, target: &str, marker: &str) -> Result<()> {
        let locked = self.lock.snippet(target, marker, module).cloned();
        self.lock.forget_snippet(target, marker, module);
        let style = CommentStyle::for_path(target);
        self.edit_base(target, |base| {
            Ok(inject::remove_block(base, style, marker, module)?)
        })?;
        let Some(source) = self.tree.read(target)? else {
            return Ok(());
        };
        let located = inject::block_body(&source, style, marker, module)
            .with_context(|| target.to_string())?;
        let Some((body, line)) = located else {
            self.notes.push(format!(
                "{target}: the `{marker}` snippet of `{module}` was already gone"
            ));
            return Ok(());
        };
        let edited = locked.is_some_and(|l| l.sha256 != lock::hash(&body));
        if edited && !self.force {
            bail!(
                "{target}:{line}: the `{marker}` snippet of module `{module}` was edited since it was added; \
                 removing the module would lose those edits.\n\
                 Move your code out of the fenced block, or run again with --force to remove it anyway."
            );
        }
        let updated = inject::remove_block(&source, style, marker, module)
            .with_context(|| target.to_string())?
            .unwrap_or(source);
        self.tree.write(target, updated);
        Ok(())
    }

    fn remove_file(&mut self, module: &str, target: &str) -> Result<()> {
        let Some(locked) = self
            .lock
            .file(target)
            .filter(|f| f.module == module)
            .cloned()
        else {
            return Ok(());
        };
        self.lock.forget_file(target);
        // No longer generated: its pristine copy goes, whether the file itself goes or stays.
        if let Some(base) = base_path(target) {
            self.tree.delete(&base);
        }
        match self.tree.read(target)? {
            None => {}
            Some(current) if self.force || lock::hash(&current) == locked.sha256 => self.tree.delete(target),
            Some(_) => self.notes.push(format!(
                "kept {target}: you edited it since saaskit generated it (delete it yourself, or run again with --force)"
            )),
        }
        Ok(())
    }

    /// Takes out the dependencies `module` inserted into `cargo_toml`, unless another installed
    /// module declares the same crate there: then that module becomes its owner.
    fn remove_dependencies(&mut self, module: &str, cargo_toml: &str) -> Result<()> {
        let records: Vec<LockedDependency> = self
            .lock
            .dependencies
            .iter()
            .filter(|d| d.module == module && d.path == cargo_toml)
            .cloned()
            .collect();
        for record in records {
            let index = self
                .lock
                .dependencies
                .iter()
                .position(|d| d == &record)
                .expect("just found");
            if let Some(owner) = self.other_declarer(module, cargo_toml, &record.name) {
                self.lock.dependencies[index].module = owner;
                continue;
            }
            self.lock.dependencies.remove(index);
            let added = Added {
                inserted: record.inserted,
                features: record.features.clone(),
            };
            if let Some(text) = self.tree.read(cargo_toml)? {
                let updated = cargo_deps::remove(cargo_toml, &text, &record.name, &added)?;
                self.tree.write(cargo_toml, updated);
            }
            self.edit_base(cargo_toml, |base| {
                Ok(Some(cargo_deps::remove(
                    cargo_toml,
                    base,
                    &record.name,
                    &added,
                )?))
            })?;
        }
        Ok(())
    }

    fn other_declarer(&self, module: &str, cargo_toml: &str, name: &str) -> Option<String> {
        let service = self
            .manifest
            .services
            .iter()
            .find(|s| format!("{}/Cargo.toml", ServiceVars::new(s).dir) == cargo_toml);
        let (candidates, target): (BTreeSet<&str>, CrateTarget) = match service {
            Some(spec) => (
                spec.modules.iter().map(String::as_str).collect(),
                CrateTarget::Service,
            ),
            None => (self.installed(), CrateTarget::Shared),
        };
        candidates
            .into_iter()
            .filter(|id| *id != module)
            .filter_map(|id| self.catalog.modules.get(id))
            .find(|m| {
                m.dependencies
                    .iter()
                    .any(|d| d.target == target && d.name == name)
            })
            .map(|m| m.id.clone())
    }

    /// Modules installed as a requirement that nothing installed requires any more, per service.
    fn remove_unneeded_requirements(&mut self) -> Result<Installed> {
        let mut removed = Installed::new();
        loop {
            let mut found: Option<(String, String)> = None;
            'search: for service in &self.manifest.services {
                let on_service: BTreeSet<&str> =
                    service.modules.iter().map(String::as_str).collect();
                for id in &on_service {
                    let as_dependency = self
                        .lock
                        .module(id)
                        .is_some_and(|m| m.reason == Reason::Dependency);
                    if as_dependency && self.catalog.dependents(id, &on_service).is_empty() {
                        found = Some((id.to_string(), service.name.clone()));
                        break 'search;
                    }
                }
            }
            let Some((id, service)) = found else { break };
            let module = self.catalog.get(&id)?;
            self.uninstall_from(module, std::slice::from_ref(&service))?;
            match removed.iter_mut().find(|(m, _)| *m == id) {
                Some((_, services)) => services.push(service),
                None => removed.push((id, vec![service])),
            }
        }
        Ok(removed)
    }
}

/// A module file's target path and content: rendered when the source ends in `.jinja`.
fn render_file(module: &Module, file: &FileEntry, context: &Context) -> Result<(String, String)> {
    let target = render(&format!("{} file target", module.id), &file.target, context)?;
    let source = module.source(&file.source)?;
    let content = match file.source.strip_suffix(".jinja") {
        Some(_) => render(
            &format!("modules/{}/{}", module.id, file.source),
            source,
            context,
        )?,
        None => source.to_string(),
    };
    Ok((target, content))
}

/// Each migration as its two files, named as sqlx expects: `<version>_<name>.sql`.
fn render_migrations(module: &Module) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for migration in &module.migrations {
        for (backend, source) in [
            ("sqlite", &migration.sqlite),
            ("postgres", &migration.postgres),
        ] {
            let target = format!(
                "{MIGRATIONS_DIR}/{backend}/{}_{}.sql",
                migration.version, migration.name
            );
            files.push((target, module.source(source)?.to_string()));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::test_module;

    const MAIN: &str = "\
// <<<inject:mods>>>

fn main() {
    // <<<inject:routes>>>
    serve();
    // <<<inject:shutdown>>>
}
";

    const BASE: &str = r#"
summary = "base"
description = "base"
version = "0.1.0"
services = ["api", "admin", "webhooks"]

[[files]]
source = "main.rs"
target = "{{ service.dir }}/src/main.rs"
scope = "service"
"#;

    /// `auth` on api and webhooks services, with its handlers for the api only and a default on
    /// the api only; `db`, which it requires; `jobs`, a worker using the database.
    fn catalog() -> Catalog {
        let module = |id: &str, toml: &str| {
            let files = [("files/auth.rs", "pub fn routes() {}\n")];
            (id.to_string(), test_module(id, toml, &files).unwrap())
        };
        let db = r#"
summary = "db"
description = "db"
version = "0.1.0"
services = ["api", "admin", "webhooks"]
default = true

[[snippets]]
target = "{{ service.dir }}/src/main.rs"
marker = "shutdown"
scope = "service"
code = "db.close();"
"#;
        let auth = r#"
summary = "auth"
description = "auth"
version = "0.1.0"
services = ["api", "webhooks"]
requires = ["db"]
default = ["api"]

[[files]]
source = "files/auth.rs"
target = "{{ service.dir }}/src/auth.rs"
scope = "service"
kinds = ["api"]

[[snippets]]
target = "{{ service.dir }}/src/main.rs"
marker = "mods"
scope = "service"
kinds = ["api"]
code = "mod auth;"

[[snippets]]
target = "{{ service.dir }}/src/main.rs"
marker = "routes"
scope = "service"
kinds = ["api"]
code = "let app = auth::routes();"

[[snippets]]
target = "{{ service.dir }}/src/main.rs"
marker = "shutdown"
scope = "service"
code = "sessions.flush();"
"#;
        let jobs = r#"
summary = "jobs"
description = "jobs"
version = "0.1.0"
services = ["webhooks"]
requires = ["db"]

[[snippets]]
target = "{{ service.dir }}/src/main.rs"
marker = "shutdown"
scope = "service"
code = "jobs.drain();"
"#;
        // An api module whose data a webhooks worker keeps.
        let plans = r#"
summary = "plans"
description = "plans"
version = "0.1.0"
services = ["api"]
requires = ["jobs"]
"#;
        Catalog {
            base: test_module(BASE_ID, BASE, &[("main.rs", MAIN)]).unwrap(),
            modules: BTreeMap::from([
                module("db", db),
                module("auth", auth),
                module("jobs", jobs),
                module("plans", plans),
            ]),
        }
    }

    const MANIFEST: &str = r#"
[workspace]
name = "acme"
database = "sqlite"

[services.api]
kind = "api"
port = 8080
modules = []

[services.hooks]
kind = "webhooks"
port = 8081
modules = []
"#;

    const API_MAIN: &str = "services/api/src/main.rs";
    const HOOKS_MAIN: &str = "services/hooks/src/main.rs";

    /// A workspace with the base generated and no module, in an empty directory.
    fn workspace<'c>(catalog: &'c Catalog, root: &Path) -> Workspace<'c> {
        let manifest = Manifest::parse(MANIFEST).unwrap();
        let mut workspace = Workspace::create(catalog, root, manifest, false);
        workspace.install_base().unwrap();
        workspace
    }

    fn read(workspace: &Workspace, path: &str) -> Option<String> {
        workspace.tree.read(path).unwrap()
    }

    fn modules_of<'w>(workspace: &'w Workspace, service: &str) -> &'w [String] {
        &workspace.manifest.service(service).unwrap().modules
    }

    /// The modules of the blocks at `marker` in `path`, in file order.
    fn blocks(workspace: &Workspace, path: &str, marker: &str) -> Vec<String> {
        let text = read(workspace, path).unwrap();
        inject::scan(&text, CommentStyle::Rust)
            .blocks
            .into_iter()
            .filter(|b| b.marker == marker)
            .map(|b| b.module)
            .collect()
    }

    #[test]
    fn entries_limited_to_some_kinds_are_skipped_on_other_kinds_and_remove_agrees() {
        let catalog = catalog();
        let temp = tempfile::tempdir().unwrap();
        let mut workspace = workspace(&catalog, temp.path());
        let bare_api = read(&workspace, API_MAIN);
        let bare_hooks = read(&workspace, HOOKS_MAIN);

        workspace.install("auth", None).unwrap();
        assert_eq!(modules_of(&workspace, "hooks"), ["db", "auth"]);
        assert!(read(&workspace, "services/api/src/auth.rs").is_some());
        assert_eq!(read(&workspace, "services/hooks/src/auth.rs"), None);
        assert_eq!(blocks(&workspace, API_MAIN, "mods"), ["auth"]);
        assert_eq!(blocks(&workspace, API_MAIN, "routes"), ["auth"]);
        assert!(blocks(&workspace, HOOKS_MAIN, "mods").is_empty());
        assert!(blocks(&workspace, HOOKS_MAIN, "routes").is_empty());
        assert_eq!(blocks(&workspace, HOOKS_MAIN, "shutdown"), ["auth", "db"]);
        let recorded = |path: &str| workspace.lock.files.iter().any(|f| f.path == path);
        assert!(recorded("services/api/src/auth.rs") && !recorded("services/hooks/src/auth.rs"));
        let hooks_snippets: Vec<&str> = workspace
            .lock
            .snippets
            .iter()
            .filter(|s| s.path == HOOKS_MAIN && s.module == "auth")
            .map(|s| s.marker.as_str())
            .collect();
        assert_eq!(hooks_snippets, ["shutdown"]);

        workspace.uninstall("auth", None).unwrap();
        assert!(workspace.notes.is_empty(), "{:?}", workspace.notes);
        assert_eq!(read(&workspace, API_MAIN), bare_api);
        assert_eq!(read(&workspace, HOOKS_MAIN), bare_hooks);
        assert_eq!(read(&workspace, "services/api/src/auth.rs"), None);
        assert!(workspace.lock.snippets.is_empty() && workspace.installed().is_empty());
    }

    #[test]
    fn removing_from_the_service_of_another_kind_keeps_the_api_s_entries() {
        let catalog = catalog();
        let temp = tempfile::tempdir().unwrap();
        let mut workspace = workspace(&catalog, temp.path());
        workspace.install("auth", None).unwrap();
        let api_main = read(&workspace, API_MAIN);
        workspace.uninstall("auth", Some("hooks")).unwrap();
        assert!(workspace.notes.is_empty(), "{:?}", workspace.notes);
        assert_eq!(
            blocks(&workspace, HOOKS_MAIN, "shutdown"),
            Vec::<String>::new()
        );
        assert_eq!(read(&workspace, API_MAIN), api_main);
        assert!(read(&workspace, "services/api/src/auth.rs").is_some());
    }

    #[test]
    fn a_default_on_some_kinds_goes_on_their_services_and_requirements_as_usual() {
        let catalog = catalog();
        let temp = tempfile::tempdir().unwrap();
        let mut workspace = workspace(&catalog, temp.path());
        // What `saaskit new` does without a choice of modules.
        let defaults = catalog.defaults(&["api", "webhooks"]);
        assert_eq!(defaults, ["auth", "db"]);
        for id in defaults {
            workspace.install_default(id).unwrap();
        }
        assert_eq!(modules_of(&workspace, "api"), ["db", "auth"]);
        assert_eq!(modules_of(&workspace, "hooks"), ["db"]);
        // Not a default there, but `add` still puts it on the other kind.
        workspace.install("auth", Some("hooks")).unwrap();
        assert_eq!(modules_of(&workspace, "hooks"), ["db", "auth"]);
    }

    #[test]
    fn a_default_on_no_service_of_the_workspace_installs_nothing() {
        let catalog = catalog();
        let temp = tempfile::tempdir().unwrap();
        let manifest =
            Manifest::parse(&MANIFEST.replace("kind = \"api\"", "kind = \"admin\"")).unwrap();
        let mut workspace = Workspace::create(&catalog, temp.path(), manifest, false);
        workspace.install_base().unwrap();
        assert!(workspace.install_default("auth").unwrap().is_empty());
        assert!(workspace.installed().is_empty());
    }

    #[test]
    fn a_requirement_goes_where_the_module_requiring_it_goes() {
        let catalog = catalog();
        let temp = tempfile::tempdir().unwrap();
        let mut workspace = workspace(&catalog, temp.path());
        // `plans` (api) needs `jobs` (webhooks only), which needs `db` on the webhooks service,
        // before `jobs` is installed there: not on the api, where `plans` goes.
        let installed = workspace.install("plans", None).unwrap();
        let expected: Installed = vec![
            ("db".into(), vec!["hooks".into()]),
            ("jobs".into(), vec!["hooks".into()]),
            ("plans".into(), vec!["api".into()]),
        ];
        assert_eq!(installed, expected);
        assert_eq!(blocks(&workspace, HOOKS_MAIN, "shutdown"), ["jobs", "db"]);
        assert!(blocks(&workspace, API_MAIN, "shutdown").is_empty());
    }

    #[test]
    fn shutdown_blocks_run_in_reverse_install_order_in_every_render() {
        let catalog = catalog();
        let temp = tempfile::tempdir().unwrap();
        let mut workspace = workspace(&catalog, temp.path());
        workspace.install("db", None).unwrap();
        workspace.install("jobs", None).unwrap();
        workspace.install("auth", None).unwrap();
        assert_eq!(
            blocks(&workspace, HOOKS_MAIN, "shutdown"),
            ["auth", "jobs", "db"]
        );
        let installed = read(&workspace, HOOKS_MAIN);

        // What `diff` and `upgrade` compare with: the same order.
        let fresh = Workspace::render_fresh(&catalog, &workspace.manifest).unwrap();
        assert_eq!(read(&fresh, HOOKS_MAIN), installed);
        assert_eq!(read(&fresh, API_MAIN), read(&workspace, API_MAIN));

        // Removing the newest module and adding it again puts its block back first.
        workspace.uninstall("auth", None).unwrap();
        assert_eq!(blocks(&workspace, HOOKS_MAIN, "shutdown"), ["jobs", "db"]);
        workspace.install("auth", None).unwrap();
        assert_eq!(read(&workspace, HOOKS_MAIN), installed);
    }
}
