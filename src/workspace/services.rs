//! Adding a service to a workspace and removing one (`saaskit service add|remove`): the manifest,
//! the base template's part for the service, its default modules, `.env`, and the workspace's
//! files that list the services (Cargo members, the README, deployment files).

use std::borrow::Cow;

use anyhow::{Result, bail};

use crate::edit::merge::{self, Labels};
use crate::edit::render::{Context, ServiceVars};
use crate::model::catalog::{Module, SERVICE_KINDS};
use crate::model::lock;
use crate::model::manifest::{self, CoreCrate};

use super::files::render_file;
use super::generated::own_content;
use super::{Installed, Workspace, base_path};

/// The port of the first service of a workspace that has none.
const FIRST_PORT: u16 = 8080;

impl<'c> Workspace<'c> {
    /// Adds service `name` of `kind` on `port` (default: one above the highest port in use) with
    /// the modules that are a default on its kind. Returns the modules installed.
    pub fn add_service(&mut self, name: &str, kind: &str, port: Option<u16>) -> Result<Installed> {
        if !SERVICE_KINDS.contains(&kind) {
            bail!(
                "unknown service kind `{kind}`; expected one of {}",
                SERVICE_KINDS.join(", ")
            );
        }
        manifest::validate_name(name).map_err(anyhow::Error::msg)?;
        if name == self.manifest.core.package || name == CoreCrate::package_for(&self.manifest.name)
        {
            bail!(
                "`{name}` is the package name of the workspace's library crate; pick another name"
            );
        }
        if self.manifest.service(name).is_some() {
            bail!("the workspace already has a service `{name}` (see saaskit.toml)");
        }
        let dir = ServiceVars::dir_of(name);
        if self.tree.read(&format!("{dir}/Cargo.toml"))?.is_some()
            || self.tree.read(&format!("{dir}/package.json"))?.is_some()
        {
            bail!("{dir} already holds a project; move it away or pick another name");
        }
        let port = match port {
            Some(port) => {
                if let Some(other) = self.manifest.services.iter().find(|s| s.port == port) {
                    bail!("port {port} is already used by service `{}`", other.name);
                }
                port
            }
            None => match self.manifest.services.iter().map(|s| s.port).max() {
                None => FIRST_PORT,
                Some(highest) => highest.checked_add(1).ok_or_else(|| {
                    anyhow::anyhow!("no port above {highest} is free: choose one with --port")
                })?,
            },
        };

        let before = Context::for_manifest(&self.manifest);
        self.manifest.add_service(name, kind, port);
        let after = Context::for_manifest(&self.manifest);
        self.rerender_workspace_files(&before, &after, &format!("adding service `{name}`"))?;

        let base = &self.catalog.base;
        let spec = self.manifest.service(name).expect("just added");
        self.apply(base, &[ServiceVars::new(spec)], false)?;

        let mut installed = Installed::new();
        for id in self.catalog.defaults(&[kind]) {
            for (module, services) in self.install(id, Some(name))? {
                match installed.iter_mut().find(|(m, _)| *m == module) {
                    Some((_, on)) => on.extend(services),
                    None => installed.push((module, services)),
                }
            }
        }
        Ok(installed)
    }

    /// Removes service `name`: its modules (as `remove` would, one by one), the files the base
    /// template generated for it, its keys in `.env`, and its entries in the workspace's files.
    /// Refuses, naming file and line, when the user edited one of its generated files, unless
    /// forced ([`Self::force_removal`]). Returns the modules removed. Files of the service's
    /// folder that saaskit did not generate (the user's, build output, dependencies) stay.
    pub fn remove_service(&mut self, name: &str) -> Result<Installed> {
        let Some(spec) = self.manifest.service(name).cloned() else {
            return Err(self.unknown_service(name));
        };
        if self.manifest.services.len() == 1 {
            bail!("`{name}` is the workspace's only service; a workspace needs at least one");
        }
        let base = &self.catalog.base;
        let vars = ServiceVars::new(&spec);
        let service_context = Context::for_manifest(&self.manifest).with_service(&vars);
        let mut generated = Vec::new();
        for file in base.files.iter().filter(|f| f.applies_in(Some(&spec.kind))) {
            generated.push(render_file(base, file, &service_context)?.target);
        }
        if !self.force {
            self.refuse_edited(&generated)?;
        }

        let mut removed = Installed::new();
        while let Some(id) = self
            .manifest
            .service(name)
            .and_then(|s| s.modules.last().cloned())
        {
            for (module, services) in self.uninstall(&id, Some(name))? {
                match removed.iter_mut().find(|(m, _)| *m == module) {
                    Some((_, on)) => on.extend(services),
                    None => removed.push((module, services)),
                }
            }
        }
        for path in &generated {
            self.delete_generated(path)?;
        }
        let before = Context::for_manifest(&self.manifest);
        self.manifest.remove_service(name);
        let after = Context::for_manifest(&self.manifest);
        self.rerender_workspace_files(&before, &after, &format!("removing service `{name}`"))?;
        self.sync_env(base)?;
        Ok(removed)
    }

    /// Refuses when one of `paths` (generated files) was edited since saaskit wrote it, naming
    /// the first line that differs from what it wrote.
    fn refuse_edited(&self, paths: &[String]) -> Result<()> {
        let mut edited = Vec::new();
        for path in paths {
            let (Some(current), Some(locked)) = (self.tree.read(path)?, self.lock.file(path))
            else {
                continue;
            };
            if lock::hash(&own_content(path, &current, &self.lock)?) == locked.sha256 {
                continue;
            }
            let pristine = match base_path(path) {
                Some(copy) => self.tree.read(&copy)?,
                None => None,
            };
            let line = pristine.map_or(1, |pristine| first_differing_line(&pristine, &current));
            edited.push(format!(
                "  {path}:{line}: edited since saaskit generated it"
            ));
        }
        if !edited.is_empty() {
            bail!(
                "the service's generated files were edited; removing the service would lose those \
                 edits:\n{}\nMove what you want to keep elsewhere, or run again with --force to \
                 remove them anyway.",
                edited.join("\n")
            );
        }
        Ok(())
    }

    /// Deletes a generated file with its pristine copy and every record of it in the lockfile.
    fn delete_generated(&mut self, path: &str) -> Result<()> {
        self.lock.forget_file(path);
        self.lock.snippets.retain(|s| s.path != path);
        self.lock.dependencies.retain(|d| d.path != path);
        if let Some(copy) = base_path(path) {
            self.tree.delete(&copy);
        }
        if self.tree.read(path)?.is_some() {
            self.tree.delete(path);
        }
        Ok(())
    }

    /// Brings the workspace-wide files of the base and of every installed module (those that
    /// list the services: Cargo members, README, deployment files) from what they render to for
    /// `before` to what they render to for `after`, by a three-way merge: lines the user changed
    /// stay, and a change of the user's on the same lines stops the command (`what` says which).
    fn rerender_workspace_files(
        &mut self,
        before: &Context,
        after: &Context,
        what: &str,
    ) -> Result<()> {
        let catalog = self.catalog;
        let installed: Vec<String> = self.installed().into_iter().map(str::to_string).collect();
        let modules = std::iter::once(&catalog.base)
            .chain(installed.iter().filter_map(|id| catalog.modules.get(id)));
        let mut changed: Vec<(&Module, String, Cow<str>, Cow<str>)> = Vec::new();
        for module in modules {
            for file in module.files.iter().filter(|f| f.applies_in(None)) {
                let old = render_file(module, file, before)?;
                let new = render_file(module, file, after)?;
                if old.content != new.content {
                    changed.push((module, old.target, old.content, new.content));
                }
            }
        }
        for (module, path, old, new) in changed {
            self.merge_rerender(module, &path, &old, &new, what)?;
        }
        Ok(())
    }

    fn merge_rerender(
        &mut self,
        module: &Module,
        path: &str,
        old: &str,
        new: &str,
        what: &str,
    ) -> Result<()> {
        let labels = Labels {
            ours: "yours",
            base: "generated before",
            theirs: "generated now",
        };
        let Some(current) = self.tree.read(path)? else {
            self.notes.push(format!(
                "{path} was deleted: not regenerated for the change of services"
            ));
            return Ok(());
        };
        let merged = merge::merge(old, &current, new, &labels);
        if merged.conflicts > 0 {
            let line = merge::conflict_marker_line(&merged.text).unwrap_or(1);
            bail!(
                "{path}:{line}: {what} changes lines of this file that you edited; put them back \
                 as saaskit generated them (see `saaskit diff`), run the command again, then \
                 redo your change"
            );
        }
        self.tree.write(path, merged.text);
        // The pristine copy gets the same change; a copy it does not apply to is dropped.
        self.edit_base(path, |copy| {
            let merged = merge::merge(old, copy, new, &labels);
            if merged.conflicts > 0 {
                bail!("the pristine copy does not take the change");
            }
            Ok(Some(merged.text))
        })?;
        // The lock records the file's own content: what the template renders to, now `new`, when
        // it recorded `old` (a workspace from older templates keeps its record for `upgrade`).
        if self
            .lock
            .file(path)
            .is_some_and(|f| f.sha256 == lock::hash(old))
        {
            self.lock.record_file(path, &module.id, new);
        }
        Ok(())
    }
}

/// The 1-based number of the first line where `a` and `b` differ.
fn first_differing_line(a: &str, b: &str) -> usize {
    let mut lines = a.lines().zip(b.lines());
    let same = lines.by_ref().take_while(|(x, y)| x == y).count();
    same + 1
}

#[cfg(test)]
mod tests {
    use super::first_differing_line;

    #[test]
    fn the_first_differing_line_counts_from_one() {
        assert_eq!(first_differing_line("a\nb\nc\n", "a\nB\nc\n"), 2);
        assert_eq!(first_differing_line("a\n", "b\n"), 1);
        assert_eq!(first_differing_line("a\nb\n", "a\nb\nc\n"), 3);
    }
}
