//! The product's own jobs and emails (`saaskit generate job|email`, `saaskit destroy
//! job|email`): each is rendered into an in-memory module (`job/<name>`, `email/<name>`) and
//! installed, recorded and removed by the same code as a resource (see `resources.rs`), so the
//! lock, `diff`, `doctor` and `upgrade` treat it as module output.

use anyhow::{Result, bail};

use crate::edit::render::ServiceVars;
use crate::model::manifest::{EMAILS, FILE_NAME, HandlerSpec, JOBS, Manifest};
use crate::resource::handler::{Handler, Kind, parse_fields, render_handler};
use crate::resource::spec;

use super::Workspace;

impl<'c> Workspace<'c> {
    /// Generates job or email `spec.name` after checking that the service has the module it
    /// needs and that nothing in the workspace has the name. For an email, `spec.service` is
    /// only where the `email` module is looked for; it is not recorded.
    pub fn generate_handler(&mut self, kind: Kind, mut spec: HandlerSpec) -> Result<Handler> {
        let name = spec.name.clone();
        let what = kind.as_str();
        if let Some(problem) = spec::handler_name_problem(&name) {
            bail!("cannot generate {what} `{name}`: {problem}");
        }
        let fields = parse_fields(kind, &spec.fields)?;
        let Some(service) = self.manifest.service(&spec.service) else {
            return Err(self.unknown_service(&spec.service));
        };
        let module = kind.module();
        if !service.modules.iter().any(|m| m == module) {
            bail!(
                "service `{}` has no `{module}` module, which a generated {what} needs: run \
                 `saaskit add {module} --service {}` first",
                service.name,
                service.name
            );
        }
        self.check_handler_name_is_free(what, &name)?;
        if kind == Kind::Email {
            spec.service.clear();
        }
        let handler = Handler {
            kind,
            name,
            service: spec.service.clone(),
            fields,
        };
        self.manifest.add_handler(kind.table(), spec);
        self.apply_handler(&handler)?;
        Ok(handler)
    }

    /// Installs the files and snippets of a job or email the manifest records: what `generate`
    /// writes, and what the fresh render of `diff` and `upgrade` compares with.
    fn apply_handler(&mut self, handler: &Handler) -> Result<()> {
        let service_dir = ServiceVars::dir_of(&handler.service);
        let rendered = render_handler(handler, &self.manifest.core, &service_dir)?;
        self.apply_generated(
            &handler.id(),
            &format!("{} `{}`", handler.kind.as_str(), handler.name),
            rendered,
        )
    }

    /// Every job and email of the manifest, installed in its order (the fresh render).
    pub(super) fn apply_handlers(&mut self) -> Result<()> {
        for kind in [Kind::Job, Kind::Email] {
            let specs = self.manifest.handlers(kind.table()).to_vec();
            for spec in &specs {
                let handler = Handler {
                    kind,
                    name: spec.name.clone(),
                    service: spec.service.clone(),
                    fields: parse_fields(kind, &spec.fields)
                        .map_err(|e| anyhow::anyhow!("{} `{}`: {e}", kind.as_str(), spec.name))?,
                };
                self.apply_handler(&handler)?;
            }
        }
        Ok(())
    }

    /// Removes job or email `name`: its snippets, then its files, each only when the lock says
    /// it is unchanged (else the command stops, or with `--force` removes it anyway), and its
    /// record in saaskit.toml.
    pub fn destroy_handler(&mut self, kind: Kind, name: &str) -> Result<()> {
        let table = kind.table();
        if !self.manifest.handlers(table).iter().any(|h| h.name == name) {
            let names: Vec<&str> = self
                .manifest
                .handlers(table)
                .iter()
                .map(|h| h.name.as_str())
                .collect();
            let known = if names.is_empty() {
                "this workspace has none".to_string()
            } else {
                format!("it has: {}", names.join(", "))
            };
            bail!("no {} `{name}` in {FILE_NAME} ({known})", kind.as_str());
        }
        let id = Handler::id_of(kind, name);
        self.remove_recorded(&id)?;
        self.lock.forget_module(&id);
        self.manifest.remove_handler(table, name);
        Ok(())
    }

    /// Refuses to remove module `id` from `services` while a generated job or email needs it
    /// there: `jobs` from the service that runs a job (or from its last service, which takes
    /// the queue's code away), `email` from its last service.
    pub(super) fn check_no_generated_handler_needs(
        &self,
        id: &str,
        services: &[String],
    ) -> Result<()> {
        let last = services.len() == self.manifest.services_with(id).len();
        let (kind, needing) = match id {
            "jobs" => (
                Kind::Job,
                self.manifest
                    .jobs
                    .iter()
                    .find(|job| last || services.contains(&job.service)),
            ),
            "email" if last => (Kind::Email, self.manifest.emails.first()),
            _ => return Ok(()),
        };
        if let Some(handler) = needing {
            let text = self.tree.read(FILE_NAME)?.unwrap_or_default();
            let line = Manifest::handler_line(&text, kind.table(), &handler.name).unwrap_or(1);
            bail!(
                "cannot remove `{id}`: the generated {what} `{name}` ({FILE_NAME}:{line}) needs it. \
                 Run `saaskit destroy {what} {name}` first.",
                what = kind.as_str(),
                name = handler.name
            );
        }
        Ok(())
    }

    /// Refuses a name that a resource, job or email of saaskit.toml, a declared module of the
    /// core crate, a catalog module or a file already has, with the file and line that has it.
    fn check_handler_name_is_free(&self, what: &str, name: &str) -> Result<()> {
        let manifest_text = self.tree.read(FILE_NAME)?.unwrap_or_default();
        for table in ["resources", JOBS, EMAILS] {
            if let Some(line) = Manifest::handler_line(&manifest_text, table, name) {
                bail!(
                    "cannot generate {what} `{name}`: {FILE_NAME}:{line} has [{table}.{name}] \
                     already; pick another name, or `saaskit destroy` that one first"
                );
            }
        }
        let lib = format!("{}/src/lib.rs", self.manifest.core.dir);
        let text = self.tree.read(&lib)?.unwrap_or_default();
        let declared = [format!("mod {name};"), format!("pub mod {name};")];
        if let Some(index) = text
            .lines()
            .position(|line| declared.iter().any(|d| line.trim() == d))
        {
            bail!(
                "cannot generate {what} `{name}`: {lib}:{} declares a module `{name}` already; \
                 pick another name",
                index + 1
            );
        }
        self.check_files_are_free(what, name, &[name])?;
        let templates = format!("{}/templates/emails/{name}.txt", self.manifest.core.dir);
        if what == Kind::Email.as_str() && self.tree.read(&templates)?.is_some() {
            bail!("cannot generate {what} `{name}`: {templates} exists already; pick another name");
        }
        Ok(())
    }
}
