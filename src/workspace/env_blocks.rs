//! The module blocks of `.env` and `.env.example`: written from the modules' env entries, kept
//! values, brought up to date by `upgrade`.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};

use crate::edit::env_file;
use crate::edit::inject::{self, CommentStyle};
use crate::edit::render::{Context, render};
use crate::model::catalog::Module;

use super::{ENV_EXAMPLE_FILE, ENV_FILE, Workspace};

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

impl<'c> Workspace<'c> {
    /// Rewrites the module's fenced blocks in `.env` and `.env.example` for the services that have
    /// it now, keeping values already in `.env` (the user's, or secrets generated earlier); removes
    /// the blocks when no service has the module any more.
    pub(super) fn sync_env(&mut self, module: &Module) -> Result<()> {
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
            let kind = context.service_kind();
            for var in module.env.iter().filter(|v| v.applies_in(kind)) {
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
                let kind = context.service_kind();
                for var in module
                    .env
                    .iter()
                    .filter(|v| v.applies_in(kind) && !v.is_optional())
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
        let Some(source) = self.tree.read_shared(ENV_FILE)? else {
            return Ok(BTreeMap::new());
        };
        // The fences the last splice of `.env` left: each module's sync reads the file anew.
        let fences = self.fences.get(ENV_FILE, &source).cloned();
        let body = inject::block_body_with(&source, fences, CommentStyle::Hash, ENV_MARKER, module)
            .context(ENV_FILE)?;
        Ok(body
            .map(|(body, _)| env_file::written(&body))
            .unwrap_or_default())
    }
}
