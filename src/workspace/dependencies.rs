//! The Cargo dependencies modules insert into a crate's `Cargo.toml`, and who owns each.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use toml_edit::DocumentMut;

use crate::edit::cargo_deps::{self, Added};
use crate::edit::render::ServiceVars;
use crate::model::catalog::{self, CrateTarget, Module};
use crate::model::lock::LockedDependency;
use crate::stage::change::{Text, same_text};

use super::Workspace;

impl<'c> Workspace<'c> {
    pub(super) fn add_dependencies(
        &mut self,
        module: &Module,
        cargo_toml: &str,
        dependencies: &[&catalog::Dependency],
    ) -> Result<()> {
        let Some(text) = self.tree.read_shared(cargo_toml)? else {
            bail!(
                "module `{}` adds dependencies to {cargo_toml}, which does not exist",
                module.id
            );
        };
        let mut doc = match self.cargo_tomls.take(cargo_toml, &text) {
            Some(doc) => doc,
            None => cargo_deps::parse(cargo_toml, &text)?,
        };
        let changes = cargo_deps::add_to_document(cargo_toml, &mut doc, dependencies)?;
        if changes.iter().all(Added::is_empty) {
            self.keep_cargo_toml(cargo_toml, text, doc);
            return Ok(());
        }
        let updated = Text::new(doc.to_string());
        self.keep_cargo_toml(cargo_toml, updated.clone(), doc);
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
            if same_text(base, &text) {
                return Ok(Some(updated.clone()));
            }
            Ok(Some(Text::new(
                cargo_deps::add(cargo_toml, base, &changed)?.0,
            )))
        })?;
        self.tree.write_shared(cargo_toml, updated);
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

    /// Keeps `doc`, parsed or edited to `text`, for the next dependencies added to `cargo_toml`
    /// in this command, if they would give the same there as on a parse of `text`.
    fn keep_cargo_toml(&mut self, cargo_toml: &str, text: Text, doc: DocumentMut) {
        if cargo_deps::can_be_kept(&doc) {
            self.cargo_tomls.keep(cargo_toml, text, doc);
        }
    }

    /// Takes out the dependencies `module` inserted into `cargo_toml`, unless another installed
    /// module declares the same crate there: then that module becomes its owner.
    pub(super) fn remove_dependencies(&mut self, module: &str, cargo_toml: &str) -> Result<()> {
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
            None => (self.installed(), CrateTarget::Core),
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
}
