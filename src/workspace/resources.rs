//! The product's own resources (`saaskit generate resource`, `saaskit destroy resource`): each
//! is rendered into an in-memory module (`resource/<name>`) and installed, recorded and removed
//! by the same code as a catalog module, so the lock, `diff`, `doctor` and `upgrade` treat it as
//! module output. The first resource also brings the file they share (module `resources`); the
//! last one's removal takes it away.

use anyhow::{Result, bail};

use crate::edit::render::ServiceVars;
use crate::model::catalog::Module;
use crate::model::lock::Reason;
use crate::model::manifest::ResourceSpec;
use crate::resource::admin::{self, ADMIN_KIT_ID, admin_file, render_admin, render_admin_kit};
use crate::resource::render::{KIT_ID, Rendered, Resource, render_kit, render_resource};
use crate::resource::spec::{self, FieldType, Owner};

use super::Workspace;

/// Names a resource cannot take: the files of the core crate and of an api service that are not
/// a module's, and the shared file.
const TAKEN_NAMES: &[&str] = &[
    "config",
    "error",
    "http",
    "metrics",
    "telemetry",
    "lib",
    "main",
    "state",
    "resources",
    "build",
    "tests",
    "openapi",
];

/// What `destroy` says about the migration of the resource it removed.
pub struct Destroyed {
    pub table: String,
    pub migrations: Vec<String>,
}

impl<'c> Workspace<'c> {
    /// Generates resource `spec.name` with its fields on `spec.service`, after checking that
    /// nothing in the workspace clashes with it. `spec.migration` is ignored: the version is
    /// chosen after every migration the workspace has.
    pub fn generate_resource(&mut self, mut spec: ResourceSpec) -> Result<Resource> {
        let name = spec.name.clone();
        if let Some(problem) = spec::resource_name_problem(&name) {
            bail!("cannot generate resource `{name}`: {problem}");
        }
        if self.manifest.resource(&name).is_some() {
            bail!(
                "resource `{name}` exists already (saaskit.toml, [resources.{name}]); change its \
                 generated code, or `saaskit destroy resource {name}` and generate it again"
            );
        }
        self.check_name_is_free(&name)?;
        let Some(service) = self.manifest.service(&spec.service) else {
            return Err(self.unknown_service(&spec.service));
        };
        if service.kind != "api" {
            bail!(
                "service `{}` is a `{}` service: resources are served by an `api` service",
                service.name,
                service.kind
            );
        }
        if !service.modules.iter().any(|m| m == "auth") {
            bail!(
                "service `{}` has no `auth` module: a resource belongs to a signed-in user or an \
                 organization. Run `saaskit add auth --service {}` first.",
                service.name,
                service.name
            );
        }
        let has_orgs = service.modules.iter().any(|m| m == "orgs");
        if spec.owner.is_empty() {
            spec.owner = if has_orgs { "org" } else { "user" }.to_string();
        }
        if spec.owner == "org" && !has_orgs {
            bail!(
                "`--owner org` needs the `orgs` module on service `{}`: run `saaskit add orgs` \
                 first, or generate the resource with `--owner user`",
                service.name
            );
        }
        if spec.admin && self.admin_service_dir().is_none() {
            spec.admin = false;
            self.notes.push(format!(
                "no admin pages for resource `{name}`: the workspace has no admin service with \
                 the `admin/core` module"
            ));
        }
        if spec.admin
            && let Some(problem) = admin::name_problem(&name)
        {
            bail!("cannot generate resource `{name}`: {problem}");
        }
        if spec.admin
            && let Some(dir) = self.admin_service_dir()
        {
            let resource = self.resource_of(&spec)?;
            let path = admin_file(&resource, &dir);
            if self.tree.read(&path)?.is_some() {
                bail!(
                    "cannot generate resource `{name}`: {path} exists already (its admin pages \
                     would go there); pick another name, or generate it with `--no-admin`"
                );
            }
        }
        spec.migration = self.next_migration_version()?;
        let resource = self.resource_of(&spec)?;
        for field in &resource.fields {
            if let FieldType::Ref(target) = &field.kind {
                // The first row could refer to none: its id is only made when it is created.
                if *target == resource.name && !field.optional {
                    bail!(
                        "field `{}`: a reference of `{name}` to itself must be optional \
                         (`{target}:ref?`): the first row has no row to refer to",
                        field.name
                    );
                }
                self.check_reference(&resource, target)?;
            }
        }
        self.manifest.add_resource(spec);
        self.apply_resource(&resource)?;
        Ok(resource)
    }

    /// Installs the files and snippets of a resource the manifest records (and the shared file
    /// when it is the first): what `generate` writes, and what the fresh render of `diff` and
    /// `upgrade` compares with.
    pub(super) fn apply_resource(&mut self, resource: &Resource) -> Result<()> {
        let core = self.manifest.core.clone();
        if self.lock.module(KIT_ID).is_none() {
            self.apply_kit(
                KIT_ID,
                "what the generated resources share",
                render_kit(&core)?,
            )?;
        }
        let service = self
            .manifest
            .service(&resource.service)
            .map(ServiceVars::new)
            .ok_or_else(|| self.unknown_service(&resource.service))?;
        let mut rendered = render_resource(resource, &core, &service.dir)?;
        if resource.admin {
            let Some(admin_dir) = self.admin_service_dir() else {
                bail!(
                    "resource `{}` has admin pages (saaskit.toml, [resources.{}] admin = true), \
                     but the workspace has no admin service with the `admin/core` module",
                    resource.name,
                    resource.name
                );
            };
            if self.lock.module(ADMIN_KIT_ID).is_none() {
                let kit = render_admin_kit(&core, &admin_dir)?;
                let summary = "what the admin pages of generated resources share";
                self.apply_kit(ADMIN_KIT_ID, summary, kit)?;
            }
            let pages = render_admin(resource, &core, &admin_dir)?;
            rendered.files.extend(pages.files);
            rendered.snippets.extend(pages.snippets);
        }
        self.apply_generated(
            &resource.id(),
            &format!("resource `{}`", resource.name),
            rendered,
        )
    }

    /// Installs what `generate` rendered as module `id` (a resource, a job, an email) and
    /// records it in the lock, as a module the user asked for.
    pub(super) fn apply_generated(
        &mut self,
        id: &str,
        summary: &str,
        rendered: Rendered,
    ) -> Result<()> {
        let module = Module::generated(id, summary, rendered.files, rendered.snippets);
        self.apply(&module, &[], true)?;
        self.lock
            .record_module(id, &module.version, Reason::Explicit);
        Ok(())
    }

    /// Installs what several resources share, as module `id`, recorded as a dependency (of the
    /// resources that need it, which remove it with the last of them).
    fn apply_kit(&mut self, id: &str, summary: &str, kit: Rendered) -> Result<()> {
        let module = Module::generated(id, summary, kit.files, kit.snippets);
        self.apply(&module, &[], true)?;
        self.lock
            .record_module(id, &module.version, Reason::Dependency);
        Ok(())
    }

    /// Every resource of the manifest, installed in its order (the fresh render).
    pub(super) fn apply_resources(&mut self) -> Result<()> {
        let specs = self.manifest.resources.clone();
        for spec in &specs {
            let resource = self.resource_of(spec)?;
            self.apply_resource(&resource)?;
        }
        Ok(())
    }

    /// Removes resource `name`: its snippets, then its files, each only when the lock says it is
    /// unchanged (else the command stops, or with `--force` removes it anyway); the shared file
    /// goes with the last resource.
    pub fn destroy_resource(&mut self, name: &str) -> Result<Destroyed> {
        let Some(spec) = self.manifest.resource(name).cloned() else {
            let known = self.known_resources();
            bail!("no resource `{name}` in saaskit.toml ({known})");
        };
        if let Some(other) = self.manifest.resources.iter().find(|r| {
            r.name != name
                && r.fields
                    .iter()
                    .any(|f| f.starts_with(&format!("{name}:ref")))
        }) {
            bail!(
                "resource `{}` references `{name}` (saaskit.toml, [resources.{}]): destroy `{}` \
                 first",
                other.name,
                other.name,
                other.name
            );
        }
        let resource = self.resource_of(&spec)?;
        let id = resource.id();
        self.remove_recorded(&id)?;
        self.lock.forget_module(&id);
        self.manifest.remove_resource(name);
        if spec.admin && !self.manifest.resources.iter().any(|r| r.admin) {
            self.remove_recorded(ADMIN_KIT_ID)?;
            self.lock.forget_module(ADMIN_KIT_ID);
        }
        if self.manifest.resources.is_empty() {
            self.remove_recorded(KIT_ID)?;
            self.lock.forget_module(KIT_ID);
        }
        Ok(Destroyed {
            table: resource.table(),
            migrations: resource.migration_files(&self.manifest.core).to_vec(),
        })
    }

    /// Removes what the lock records for module `id`: snippets first (the files they are in
    /// may go next), then files.
    pub(super) fn remove_recorded(&mut self, id: &str) -> Result<()> {
        let snippets: Vec<(String, String)> = self
            .lock
            .snippets
            .iter()
            .rev()
            .filter(|s| s.module == id)
            .map(|s| (s.path.clone(), s.marker.clone()))
            .collect();
        for (path, marker) in snippets {
            self.remove_snippet(id, &path, &marker)?;
        }
        let files: Vec<String> = self
            .lock
            .files
            .iter()
            .filter(|f| f.module == id)
            .map(|f| f.path.clone())
            .collect();
        for path in files {
            self.remove_file(id, &path)?;
        }
        Ok(())
    }

    /// `it has: a, b` (or that it has none), for the errors that name a resource it lacks.
    fn known_resources(&self) -> String {
        let names: Vec<&str> = self
            .manifest
            .resources
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        if names.is_empty() {
            "this workspace has none".to_string()
        } else {
            format!("it has: {}", names.join(", "))
        }
    }

    /// The typed resource a manifest record describes.
    fn resource_of(&self, spec: &ResourceSpec) -> Result<Resource> {
        let fields = spec::parse_fields(&spec.fields)
            .map_err(|e| anyhow::anyhow!("resource `{}`: {e}", spec.name))?;
        let owner = Owner::parse(&spec.owner).unwrap_or(Owner::User);
        Ok(Resource {
            name: spec.name.clone(),
            fields,
            owner,
            service: spec.service.clone(),
            migration: spec.migration,
            admin: spec.admin,
        })
    }

    /// The directory of the admin service that gets resources' pages: the first with
    /// `admin/core`, which they are built on.
    fn admin_service_dir(&self) -> Option<String> {
        self.manifest
            .services
            .iter()
            .find(|s| s.kind == "admin" && s.modules.iter().any(|m| m == "admin/core"))
            .map(|s| ServiceVars::dir_of(&s.name))
    }

    /// Refuses a name that a module, another resource, a file or a table already has.
    fn check_name_is_free(&self, name: &str) -> Result<()> {
        let table = spec::plural(name);
        self.check_files_are_free("resource", name, &[name, &table])?;
        // A table of that name in a migration saaskit wrote, or one of yours.
        let dir = self.manifest.core.migrations_dir();
        for path in self.migration_paths(&dir)? {
            let Some(sql) = self.tree.read(&path)? else {
                continue;
            };
            let lower = sql.to_lowercase();
            for statement in ["create table ", "create table if not exists "] {
                let needle = format!("{statement}{table} ");
                let needle_paren = format!("{statement}{table}(");
                if let Some(at) = lower.find(&needle).or_else(|| lower.find(&needle_paren)) {
                    let line = sql[..at].matches('\n').count() + 1;
                    bail!(
                        "cannot generate resource `{name}`: {path}:{line} creates a table \
                         `{table}` already; pick another name"
                    );
                }
            }
        }
        Ok(())
    }

    /// Refuses (as `generate <what> <name>`) a name that a module has (or one of `module_names`),
    /// or that names a file the generated code has: the core crate's or a service's
    /// `src/<name>.rs`, where the new code would go.
    pub(super) fn check_files_are_free(
        &self,
        what: &str,
        name: &str,
        module_names: &[&str],
    ) -> Result<()> {
        for id in self.catalog.modules.keys() {
            if id.split('/').any(|segment| module_names.contains(&segment)) {
                bail!(
                    "cannot generate {what} `{name}`: module `{id}` has that name (pick another, \
                     e.g. `{name}_item`)"
                );
            }
        }
        if TAKEN_NAMES.contains(&name) {
            bail!("cannot generate {what} `{name}`: the generated code has a file of that name");
        }
        let core = &self.manifest.core;
        let mut paths = vec![
            format!("{}/src/{name}.rs", core.dir),
            format!("{}/src/{name}/mod.rs", core.dir),
        ];
        for service in &self.manifest.services {
            paths.push(format!(
                "{}/src/{name}.rs",
                ServiceVars::dir_of(&service.name)
            ));
        }
        for path in paths {
            if self.tree.read(&path)?.is_some() {
                bail!(
                    "cannot generate {what} `{name}`: {path} exists already (its code would go \
                     there); pick another name"
                );
            }
        }
        Ok(())
    }

    /// A reference must name a resource generated before, with the same owner.
    fn check_reference(&self, resource: &Resource, target: &str) -> Result<()> {
        if target == resource.name {
            return Ok(());
        }
        let Some(other) = self.manifest.resource(target) else {
            bail!(
                "field `{target}:ref`: no resource `{target}` in this workspace ({}); generate it \
                 first",
                self.known_resources()
            );
        };
        if other.owner != resource.owner.as_str() || other.service != resource.service {
            bail!(
                "field `{target}:ref`: resource `{target}` belongs to the {} (on service `{}`), \
                 `{}` to the {} (on `{}`): a reference joins rows of one owner and one service",
                other.owner,
                other.service,
                resource.name,
                resource.owner.as_str(),
                resource.service
            );
        }
        Ok(())
    }

    /// The migration files of the workspace, saaskit's and the user's.
    fn migration_paths(&self, dir: &str) -> Result<Vec<String>> {
        let mut paths: Vec<String> = self
            .lock
            .files
            .iter()
            .filter(|f| f.path.starts_with(&format!("{dir}/")))
            .map(|f| f.path.clone())
            .collect();
        for backend in ["sqlite", "postgres"] {
            let Some(root) = self.tree.root() else {
                break;
            };
            let on_disk = root.join(dir).join(backend);
            let Ok(entries) = std::fs::read_dir(&on_disk) else {
                continue;
            };
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if file.ends_with(".sql") {
                    paths.push(format!("{dir}/{backend}/{file}"));
                }
            }
        }
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    /// A version after every migration of the workspace, and not before now (`YYYYMMDDHHMMSS`
    /// in UTC, as the modules' versions are written): the tables a new resource references are
    /// then created before its own.
    fn next_migration_version(&self) -> Result<u64> {
        let dir = self.manifest.core.migrations_dir();
        let latest = self
            .migration_paths(&dir)?
            .iter()
            .filter_map(|path| {
                let file = path.rsplit('/').next()?;
                file.split('_').next()?.parse::<u64>().ok()
            })
            .chain(self.manifest.resources.iter().map(|r| r.migration))
            .max()
            .unwrap_or(0);
        Ok((latest + 1).max(utc_timestamp()))
    }
}

/// The current time as `YYYYMMDDHHMMSS` in UTC.
fn utc_timestamp() -> u64 {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, time) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = (year as u64) * 10_000 + (month as u64) * 100 + day as u64;
    date * 1_000_000 + (time / 3_600) * 10_000 + (time % 3_600 / 60) * 100 + time % 60
}
