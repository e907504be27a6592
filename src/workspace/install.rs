//! Installing a module: on which services it and its requirements go, and what each service
//! and the workspace get from it.

use anyhow::{Context as _, Result, bail};

use crate::edit::render::{Context, ServiceVars};
use crate::model::catalog::{self, BASE_ID, CrateTarget, Language, Module, Scope};
use crate::model::lock::Reason;

use super::files::{render_file, render_migrations};
use super::{Installed, Workspace};

impl<'c> Workspace<'c> {
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
                    return Err(self.unknown_service(name));
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
    pub(super) fn apply(
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
            for (index, file) in module.files.iter().enumerate() {
                if !file.applies_in(kind) {
                    continue;
                }
                let prerendered = self
                    .prerendered
                    .and_then(|prerendered| prerendered.take_file(module, index, context));
                let rendered = match prerendered {
                    Some(rendered) => rendered,
                    None => render_file(module, file, context)?,
                };
                self.add_file(module, rendered)?;
            }
            if scope == Scope::Workspace {
                let migrations_dir = self.manifest.core.migrations_dir();
                for migration in render_migrations(module, &migrations_dir)? {
                    self.add_file(module, migration)?;
                }
            }
            for (index, snippet) in module.snippets.iter().enumerate() {
                if snippet.applies_in(kind) {
                    self.add_snippet(module, index, snippet, context)?;
                }
            }
            let (crate_target, cargo_toml) = match &context.service {
                // `crate = "service"` dependencies are Cargo dependencies of a Rust service: a
                // service in another language has no Cargo.toml to put them in (its own
                // dependencies come with its files, e.g. a package.json).
                Some(service) if service.language != Language::Rust => continue,
                Some(service) => (CrateTarget::Service, format!("{}/Cargo.toml", service.dir)),
                None => (CrateTarget::Core, self.manifest.core.manifest_path()),
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
}
