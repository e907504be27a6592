//! `saaskit.toml`, the workspace manifest: the workspace's name, default database, and each
//! service with its kind, port and installed modules.
//!
//! It is read and edited with toml_edit so that a user's comments, blank lines and key order
//! survive every command; only the values saaskit owns are touched. Schema: `docs/manifest.md`.

use std::ops::Range;

use anyhow::{Result, bail};
use toml_edit::{Array, Document, DocumentMut, Item, Table, Value};

use crate::model::catalog::SERVICE_KINDS;

pub const FILE_NAME: &str = "saaskit.toml";
pub const DATABASES: [&str; 2] = ["sqlite", "postgres"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub kind: String,
    pub port: u16,
    pub modules: Vec<String>,
}

/// A resource `saaskit generate resource` made, as `[resources.<name>]` records it: what renders
/// it again (`diff`, `upgrade`) and what `destroy` removes. The fields are kept as written on
/// the command line; `crate::resource::spec` parses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSpec {
    pub name: String,
    pub service: String,
    /// `user` or `org`.
    pub owner: String,
    /// The version of its migration.
    pub migration: u64,
    pub fields: Vec<String>,
    /// Whether it has pages in the admin service (`admin = true`; absent is false).
    pub admin: bool,
}

/// A job or an email `saaskit generate job|email` made, as `[jobs.<name>]` or `[emails.<name>]`
/// records it: what renders it again (`diff`, `upgrade`) and what `destroy` removes. The
/// payload's (or the message's) fields are kept as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerSpec {
    pub name: String,
    /// The service whose worker runs the job; empty for an email (the `email` module's worker
    /// sends it, whichever service that is).
    pub service: String,
    pub fields: Vec<String>,
}

/// The workspace's library crate, which every service depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreCrate {
    /// The Cargo package name: `acme-core`.
    pub package: String,
    /// Its directory in the workspace: `crates/core`.
    pub dir: String,
    /// How Rust code names it: `acme_core`.
    pub ident: String,
}

impl CoreCrate {
    /// The crate of a workspace whose manifest names it (`[workspace] core = "acme-core"`).
    pub fn named(package: &str) -> CoreCrate {
        CoreCrate::at(package, "crates/core")
    }

    /// The crate of a workspace generated before the manifest named it: `shared`, in
    /// `crates/shared`. Such workspaces keep it, so that their code and lockfile stay valid.
    pub fn legacy() -> CoreCrate {
        CoreCrate::at("shared", "crates/shared")
    }

    fn at(package: &str, dir: &str) -> CoreCrate {
        CoreCrate {
            package: package.to_string(),
            dir: dir.to_string(),
            ident: package.replace('-', "_"),
        }
    }

    /// The name `saaskit new` gives the library crate of workspace `name`.
    pub fn package_for(name: &str) -> String {
        format!("{name}-core")
    }

    /// Its `Cargo.toml`, where modules add the crate's dependencies.
    pub fn manifest_path(&self) -> String {
        format!("{}/Cargo.toml", self.dir)
    }

    /// Where the migrations of every module are written, one folder per database backend.
    pub fn migrations_dir(&self) -> String {
        format!("{}/migrations", self.dir)
    }
}

/// The typed view of the manifest plus the document it came from, for lossless edits.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub database: String,
    /// `[workspace] core`, or the `shared` crate of a workspace from before that key.
    pub core: CoreCrate,
    pub services: Vec<ServiceSpec>,
    /// `[resources.<name>]`, in the file's order.
    pub resources: Vec<ResourceSpec>,
    /// `[jobs.<name>]`, in the file's order.
    pub jobs: Vec<HandlerSpec>,
    /// `[emails.<name>]`, in the file's order.
    pub emails: Vec<HandlerSpec>,
    document: DocumentMut,
}

/// A problem at a place in the manifest, printed as `saaskit.toml:LINE:COLUMN: message`.
fn located(
    text: &str,
    span: Option<Range<usize>>,
    message: impl std::fmt::Display,
) -> anyhow::Error {
    match span {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            anyhow::anyhow!("{FILE_NAME}:{line}:{column}: {message}")
        }
        None => anyhow::anyhow!("{FILE_NAME}: {message}"),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let end = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| i >= offset)
        .unwrap_or(text.len());
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest> {
        let parsed = Document::parse(text).map_err(|e| {
            let message = e.message().trim_end().to_string();
            located(text, e.span(), format!("invalid TOML: {message}"))
        })?;
        let root = parsed.as_table();
        let at = |item: &Item, message: String| located(text, item.span(), message);

        let workspace = match root.get("workspace") {
            Some(Item::Table(table)) => table,
            Some(other) => return Err(at(other, "`workspace` must be a table".into())),
            None => {
                bail!("{FILE_NAME}: missing the [workspace] table (with `name` and `database`)")
            }
        };
        let name = required_str(text, workspace, "workspace", "name")?;
        validate_name(&name).map_err(|e| at(&workspace["name"], e))?;
        let database = required_str(text, workspace, "workspace", "database")?;
        if !DATABASES.contains(&database.as_str()) {
            return Err(at(
                &workspace["database"],
                format!("unknown database `{database}`: expected \"sqlite\" or \"postgres\""),
            ));
        }
        let core = match workspace.get("core") {
            None => CoreCrate::legacy(),
            Some(item) => {
                let package = required_str(text, workspace, "workspace", "core")?;
                validate_name(&package).map_err(|e| at(item, e))?;
                CoreCrate::named(&package)
            }
        };

        let services_table = match root.get("services") {
            Some(Item::Table(table)) => table,
            Some(other) => {
                return Err(at(
                    other,
                    "`services` must be a table of [services.<name>] tables".into(),
                ));
            }
            None => bail!(
                "{FILE_NAME}: no [services.<name>] table: a workspace needs at least one service"
            ),
        };
        let mut services: Vec<ServiceSpec> = Vec::new();
        for (service_name, item) in services_table.iter() {
            let Item::Table(table) = item else {
                return Err(at(
                    item,
                    format!("`services.{service_name}` must be a table"),
                ));
            };
            let context = format!("services.{service_name}");
            validate_name(service_name).map_err(|e| at(item, e))?;
            if service_name == core.package {
                return Err(at(
                    item,
                    format!(
                        "`{service_name}` is the package name of the workspace's library crate; \
                         pick another service name"
                    ),
                ));
            }
            let kind = required_str(text, table, &context, "kind")?;
            if !SERVICE_KINDS.contains(&kind.as_str()) {
                return Err(at(
                    &table["kind"],
                    format!(
                        "unknown service kind `{kind}`: expected one of {}",
                        SERVICE_KINDS.join(", ")
                    ),
                ));
            }
            let port = match table.get("port") {
                Some(item) => match item.as_integer() {
                    Some(port) if (1..=65535).contains(&port) => port as u16,
                    _ => {
                        return Err(at(
                            item,
                            format!("`{context}.port` must be an integer from 1 to 65535"),
                        ));
                    }
                },
                None => {
                    return Err(located(
                        text,
                        table.span(),
                        format!("`{context}` is missing `port`"),
                    ));
                }
            };
            if let Some(other) = services.iter().find(|s| s.port == port) {
                return Err(at(
                    &table["port"],
                    format!("port {port} is already used by service `{}`", other.name),
                ));
            }
            let modules = match table.get("modules") {
                None => Vec::new(),
                Some(item) => match item.as_array() {
                    Some(array) if array.iter().all(|v| v.as_str().is_some()) => array
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                    _ => {
                        return Err(at(
                            item,
                            format!("`{context}.modules` must be an array of module ids"),
                        ));
                    }
                },
            };
            services.push(ServiceSpec {
                name: service_name.to_string(),
                kind,
                port,
                modules,
            });
        }
        if services.is_empty() {
            bail!(
                "{FILE_NAME}: no [services.<name>] table: a workspace needs at least one service"
            );
        }
        let resources = parse_resources(text, root)?;
        let jobs = parse_handlers(text, root, JOBS)?;
        let emails = parse_handlers(text, root, EMAILS)?;
        Ok(Manifest {
            name,
            database,
            core,
            services,
            resources,
            jobs,
            emails,
            document: parsed.into_mut(),
        })
    }

    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Services on which module `id` is installed.
    pub fn services_with(&self, id: &str) -> Vec<&ServiceSpec> {
        self.services
            .iter()
            .filter(|s| s.modules.iter().any(|m| m == id))
            .collect()
    }

    /// Records module `id` as installed on `service`, appending to its `modules` array.
    pub fn add_module(&mut self, service: &str, id: &str) {
        let Some(spec) = self.services.iter_mut().find(|s| s.name == service) else {
            return;
        };
        if spec.modules.iter().any(|m| m == id) {
            return;
        }
        spec.modules.push(id.to_string());
        let array = self.modules_array(service);
        array.push(id);
        normalise_single_line(array);
    }

    /// Records a new service with no modules, as a `[services.<name>]` table after the others.
    /// The caller has checked the name, kind and port.
    pub fn add_service(&mut self, name: &str, kind: &str, port: u16) {
        let mut table = Table::new();
        table.insert("kind", toml_edit::value(kind));
        table.insert("port", toml_edit::value(i64::from(port)));
        table.insert("modules", Item::Value(Value::Array(Array::new())));
        if let Some(services) = self.document["services"].as_table_mut() {
            services.insert(name, Item::Table(table));
        }
        self.services.push(ServiceSpec {
            name: name.to_string(),
            kind: kind.to_string(),
            port,
            modules: Vec::new(),
        });
    }

    /// Forgets service `name`: its table goes, with the comments in it.
    pub fn remove_service(&mut self, name: &str) {
        if let Some(services) = self.document["services"].as_table_mut() {
            services.remove(name);
        }
        self.services.retain(|s| s.name != name);
    }

    /// Records module `id` as no longer installed on `service`.
    pub fn remove_module(&mut self, service: &str, id: &str) {
        let Some(spec) = self.services.iter_mut().find(|s| s.name == service) else {
            return;
        };
        spec.modules.retain(|m| m != id);
        let array = self.modules_array(service);
        let position = array.iter().position(|v| v.as_str() == Some(id));
        if let Some(index) = position {
            array.remove(index);
            normalise_single_line(array);
        }
    }

    fn modules_array(&mut self, service: &str) -> &mut Array {
        let table = self.document["services"][service]
            .as_table_mut()
            .expect("services were validated as tables at parse time");
        if !table.get("modules").is_some_and(Item::is_array) {
            table.insert("modules", Item::Value(Value::Array(Array::new())));
        }
        table["modules"]
            .as_array_mut()
            .expect("just ensured an array")
    }

    pub fn resource(&self, name: &str) -> Option<&ResourceSpec> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// Records a generated resource as a `[resources.<name>]` table after the others.
    pub fn add_resource(&mut self, spec: ResourceSpec) {
        let mut table = Table::new();
        table.insert("service", toml_edit::value(spec.service.as_str()));
        table.insert("owner", toml_edit::value(spec.owner.as_str()));
        // An integer would do, but TOML readers differ on 64-bit integers less than on strings.
        table.insert("migration", toml_edit::value(spec.migration.to_string()));
        let mut fields = Array::new();
        for field in &spec.fields {
            fields.push(field.as_str());
        }
        table.insert("fields", Item::Value(Value::Array(fields)));
        if spec.admin {
            table.insert("admin", toml_edit::value(true));
        }
        if !self.document.contains_key("resources") {
            let mut resources = Table::new();
            // `[resources.x]` headers only, no bare `[resources]`.
            resources.set_implicit(true);
            self.document.insert("resources", Item::Table(resources));
        }
        if let Some(resources) = self.document["resources"].as_table_mut() {
            resources.insert(&spec.name, Item::Table(table));
        }
        self.resources.push(spec);
    }

    /// Forgets resource `name`: its table goes, and `[resources]` with the last one.
    pub fn remove_resource(&mut self, name: &str) {
        if let Some(resources) = self.document["resources"].as_table_mut() {
            resources.remove(name);
            if resources.is_empty() {
                self.document.remove("resources");
            }
        }
        self.resources.retain(|r| r.name != name);
    }

    /// The jobs (`table` [`JOBS`]) or the emails ([`EMAILS`]).
    pub fn handlers(&self, table: &str) -> &[HandlerSpec] {
        if table == JOBS {
            &self.jobs
        } else {
            &self.emails
        }
    }

    /// Records a generated job or email as a `[<table>.<name>]` table after the others.
    pub fn add_handler(&mut self, table_name: &str, spec: HandlerSpec) {
        let mut table = Table::new();
        if !spec.service.is_empty() {
            table.insert("service", toml_edit::value(spec.service.as_str()));
        }
        let mut fields = Array::new();
        for field in &spec.fields {
            fields.push(field.as_str());
        }
        table.insert("fields", Item::Value(Value::Array(fields)));
        if !self.document.contains_key(table_name) {
            let mut all = Table::new();
            all.set_implicit(true);
            self.document.insert(table_name, Item::Table(all));
        }
        if let Some(all) = self.document[table_name].as_table_mut() {
            all.insert(&spec.name, Item::Table(table));
        }
        self.handlers_mut(table_name).push(spec);
    }

    /// Forgets job or email `name`: its table goes, and `[<table>]` with the last one.
    pub fn remove_handler(&mut self, table_name: &str, name: &str) {
        if let Some(all) = self
            .document
            .get_mut(table_name)
            .and_then(Item::as_table_mut)
        {
            all.remove(name);
            if all.is_empty() {
                self.document.remove(table_name);
            }
        }
        self.handlers_mut(table_name).retain(|h| h.name != name);
    }

    fn handlers_mut(&mut self, table: &str) -> &mut Vec<HandlerSpec> {
        if table == JOBS {
            &mut self.jobs
        } else {
            &mut self.emails
        }
    }

    /// The line of `[<table>.<name>]` in `text` (the manifest as read), for errors that point
    /// at it.
    pub fn handler_line(text: &str, table: &str, name: &str) -> Option<usize> {
        let header = format!("[{table}.{name}]");
        text.lines()
            .position(|line| line.trim() == header)
            .map(|index| index + 1)
    }

    pub fn to_text(&self) -> String {
        self.document.to_string()
    }
}

/// `<context>.fields`: an array of field specs.
fn field_specs(text: &str, table: &Table, context: &str) -> Result<Vec<String>> {
    match table.get("fields").and_then(Item::as_array) {
        Some(array) if array.iter().all(|v| v.as_str().is_some()) => Ok(array
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()),
        _ => Err(located(
            text,
            table.get("fields").and_then(Item::span).or(table.span()),
            format!("`{context}.fields` must be an array of field specs (`title:string`)"),
        )),
    }
}

/// The manifest's table of generated jobs, and of generated emails.
pub const JOBS: &str = "jobs";
pub const EMAILS: &str = "emails";

/// The `[jobs.<name>]` or `[emails.<name>]` tables.
fn parse_handlers(text: &str, root: &Table, key: &str) -> Result<Vec<HandlerSpec>> {
    let at = |item: &Item, message: String| located(text, item.span(), message);
    let table = match root.get(key) {
        None => return Ok(Vec::new()),
        Some(Item::Table(table)) => table,
        Some(other) => {
            return Err(at(
                other,
                format!("`{key}` must be a table of [{key}.<name>] tables"),
            ));
        }
    };
    let mut handlers = Vec::new();
    for (name, item) in table.iter() {
        let Item::Table(table) = item else {
            return Err(at(item, format!("`{key}.{name}` must be a table")));
        };
        let context = format!("{key}.{name}");
        let service = if key == JOBS {
            required_str(text, table, &context, "service")?
        } else {
            String::new()
        };
        let fields = field_specs(text, table, &context)?;
        handlers.push(HandlerSpec {
            name: name.to_string(),
            service,
            fields,
        });
    }
    Ok(handlers)
}

/// The `[resources.<name>]` tables.
fn parse_resources(text: &str, root: &Table) -> Result<Vec<ResourceSpec>> {
    let at = |item: &Item, message: String| located(text, item.span(), message);
    let table = match root.get("resources") {
        None => return Ok(Vec::new()),
        Some(Item::Table(table)) => table,
        Some(other) => {
            return Err(at(
                other,
                "`resources` must be a table of [resources.<name>] tables".into(),
            ));
        }
    };
    let mut resources = Vec::new();
    for (name, item) in table.iter() {
        let Item::Table(table) = item else {
            return Err(at(item, format!("`resources.{name}` must be a table")));
        };
        let context = format!("resources.{name}");
        let service = required_str(text, table, &context, "service")?;
        let owner = required_str(text, table, &context, "owner")?;
        if owner != "user" && owner != "org" {
            return Err(at(
                &table["owner"],
                format!("`{context}.owner` must be \"user\" or \"org\""),
            ));
        }
        let migration = required_str(text, table, &context, "migration")?;
        let migration: u64 = migration.parse().map_err(|_| {
            at(
                &table["migration"],
                format!("`{context}.migration` must be a migration version (digits)"),
            )
        })?;
        let fields = field_specs(text, table, &context)?;
        let admin = match table.get("admin") {
            None => false,
            Some(item) => item
                .as_bool()
                .ok_or_else(|| at(item, format!("`{context}.admin` must be true or false")))?,
        };
        resources.push(ResourceSpec {
            name: name.to_string(),
            service,
            owner,
            migration,
            fields,
            admin,
        });
    }
    Ok(resources)
}

/// A one-line array is kept in the canonical `["a", "b"]` shape so that adding then removing a
/// module gives back the same bytes; an array the user spread over several lines is left alone.
fn normalise_single_line(array: &mut Array) {
    if !array.to_string().contains('\n') {
        array.fmt();
    }
}

fn required_str(text: &str, table: &Table, context: &str, key: &str) -> Result<String> {
    match table.get(key) {
        Some(item) => match item.as_str() {
            Some(value) => Ok(value.to_string()),
            None => Err(located(
                text,
                item.span(),
                format!("`{context}.{key}` must be a string"),
            )),
        },
        None => Err(located(
            text,
            table.span(),
            format!("`{context}` is missing `{key}`"),
        )),
    }
}

/// The longest name `saaskit new` gives a workspace. Its library crate's Rust name, `<name>_core`,
/// stands in generated lines that must stay rustfmt-clean as generated: the module sources keep
/// those lines short enough for a name up to this long (scripts/check-modules.sh checks them).
pub const WORKSPACE_NAME_MAX: usize = 20;

/// A name for a new workspace: a valid name, at most [`WORKSPACE_NAME_MAX`] characters.
pub fn validate_workspace_name(name: &str) -> std::result::Result<(), String> {
    validate_name(name)?;
    if name.len() > WORKSPACE_NAME_MAX {
        return Err(format!(
            "`{name}` is {} characters long; a workspace name has at most {WORKSPACE_NAME_MAX} \
             (it names the library crate, `{name}-core`, in the generated code)",
            name.len()
        ));
    }
    Ok(())
}

/// Workspace and service names become Cargo package names and directory names.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64;
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use lowercase letters, digits, `-` or `_`, starting with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[workspace]\nname = \"acme\"\ncore = \"acme-core\"\ndatabase = \"sqlite\"\n\n\
                        [services.api]\nkind = \"api\"\nport = 8080\nmodules = []\n";

    #[test]
    fn a_job_and_an_email_recorded_then_forgotten_give_back_the_same_text() {
        let mut manifest = Manifest::parse(BASE).unwrap();
        let job = HandlerSpec {
            name: "send_report".into(),
            service: "api".into(),
            fields: vec!["user_id:string".into()],
        };
        let email = HandlerSpec {
            name: "invoice_due".into(),
            service: String::new(),
            fields: vec![],
        };
        manifest.add_handler(JOBS, job.clone());
        manifest.add_handler(EMAILS, email.clone());
        let text = manifest.to_text();
        assert!(
            text.contains(
                "\n[jobs.send_report]\nservice = \"api\"\nfields = [\"user_id:string\"]\n"
            )
        );
        let read = Manifest::parse(&text).unwrap();
        assert_eq!((read.jobs, read.emails), (vec![job], vec![email]));
        assert_eq!(
            Manifest::handler_line(&text, EMAILS, "invoice_due"),
            text.lines()
                .position(|l| l == "[emails.invoice_due]")
                .map(|i| i + 1)
        );

        manifest.remove_handler(JOBS, "send_report");
        manifest.remove_handler(EMAILS, "invoice_due");
        assert_eq!(manifest.to_text(), BASE);
    }

    #[test]
    fn a_job_without_its_service_is_refused_with_its_place() {
        let text = format!("{BASE}\n[jobs.send_report]\nfields = []\n");
        let error = Manifest::parse(&text).unwrap_err().to_string();
        assert!(
            error.contains("`jobs.send_report` is missing `service`"),
            "{error}"
        );
        assert!(error.starts_with("saaskit.toml:"), "{error}");
    }
}
