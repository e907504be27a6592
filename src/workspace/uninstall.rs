//! Removing a module from services, and the requirements nothing needs any more.

use std::collections::BTreeSet;

use anyhow::{Result, bail};

use crate::edit::render::{Context, ServiceVars, render};
use crate::model::catalog::{Module, Scope};
use crate::model::lock::Reason;

use super::files::render_migrations;
use super::{Installed, Workspace};

impl<'c> Workspace<'c> {
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
        // A module may require one that lives on services of other kinds (`admin/orgs` on the
        // admin service requires `orgs`, on the api; its code in the library crate is shared).
        // Taken off its last service, the module's shared code goes, so a dependent anywhere
        // would no longer build.
        if targets.len() == self.manifest.services_with(id).len() {
            for spec in &self.manifest.services {
                let on_service: BTreeSet<&str> = spec.modules.iter().map(String::as_str).collect();
                if let Some(dependent) = catalog.dependents(id, &on_service).first() {
                    bail!(
                        "cannot remove `{id}`: module `{dependent}` on service `{}` requires it. \
                         Remove `{dependent}` first.",
                        spec.name
                    );
                }
            }
        }
        self.check_no_generated_handler_needs(id, &targets)?;
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
                let migrations_dir = self.manifest.core.migrations_dir();
                for migration in render_migrations(module, &migrations_dir)? {
                    self.remove_file(&module.id, &migration.target)?;
                }
            }
            let cargo_toml = match &context.service {
                Some(service) => format!("{}/Cargo.toml", service.dir),
                None => self.manifest.core.manifest_path(),
            };
            self.remove_dependencies(&module.id, &cargo_toml)?;
        }
        self.sync_env(module)?;
        if last {
            self.lock.forget_module(&module.id);
        }
        Ok(())
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
                    // A generated job or email counts as a dependent of what it needs.
                    let needed = self
                        .check_no_generated_handler_needs(id, std::slice::from_ref(&service.name))
                        .is_err();
                    if as_dependency
                        && !needed
                        && self.catalog.dependents(id, &on_service).is_empty()
                    {
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
