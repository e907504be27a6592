//! Command-line interface: the clap definitions, nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "saaskit",
    version,
    about = "Generate a production-grade Rust SaaS backend (api, admin, webhooks) and keep it maintainable",
    after_help = "Start with `saaskit new acme`, then `cd acme && saaskit dev`.\nDocs: docs/manifest.md, docs/modules.md"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new workspace (asks what to include when run in a terminal without --yes)
    New(NewArgs),
    /// Install a module (and the modules it requires) into the current workspace
    Add(AddArgs),
    /// Remove a module, undoing exactly what `add` did
    Remove(RemoveArgs),
    /// Add or remove a service: a Rust `api`, `admin` or `webhooks` service, or a NestJS `nest` one
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Scaffold a resource of your product (table, repository, endpoints, OpenAPI, tests), recorded for `destroy`
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Remove what `generate` made, byte-exact, keeping what you edited unless --force
    #[command(subcommand)]
    Destroy(DestroyCommand),
    /// List the modules of the catalog and where they are installed
    List(ListArgs),
    /// Show everything about one module
    Info(InfoArgs),
    /// Check the workspace: toolchain, manifest, lock, markers, .env, database, ports
    Doctor(DoctorArgs),
    /// Compare the generated files and snippets with the lock and with this saaskit's templates
    Diff(DiffArgs),
    /// Bring the generated files and snippets to this saaskit's templates with a three-way merge
    Upgrade(UpgradeArgs),
    /// Build and run the services with their logs together; rebuild and restart them on changes
    Dev(DevArgs),
    /// Rotate, list or remove the api's access-token signing keys (AUTH_SIGNING_KEY and AUTH_PREVIOUS_KEYS in .env)
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a shell completion script (e.g. `saaskit completions bash > ~/.local/share/bash-completion/completions/saaskit`)
    Completions(CompletionsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Database {
    Sqlite,
    Postgres,
}

impl Database {
    pub fn as_str(self) -> &'static str {
        match self {
            Database::Sqlite => "sqlite",
            Database::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Workspace name: lowercase letters, digits, `-` or `_` (also the directory name)
    pub name: String,
    /// Take the defaults without asking
    #[arg(long, short)]
    pub yes: bool,
    /// Default database of the workspace
    #[arg(long, value_enum)]
    pub db: Option<Database>,
    /// Services to generate, as kind or name=kind, comma-separated (default: api,admin,webhooks)
    #[arg(long, value_delimiter = ',')]
    pub services: Option<Vec<String>>,
    /// Modules to install, comma-separated; `--modules ''` for none (default: the catalog's defaults)
    #[arg(long, value_delimiter = ',')]
    pub modules: Option<Vec<String>>,
    /// Directory to create (default: ./<name>)
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print the planned files as a unified diff instead of writing them
    #[arg(long)]
    pub dry_run: bool,
    /// Generate into a directory that is not empty, overwriting files with the same paths
    #[arg(long)]
    pub force: bool,
    /// List every file written (by default only a summary is printed)
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Module id, e.g. `db` or `auth/session` (see `saaskit list`)
    pub module: String,
    /// Install on this service only (default: every service of a kind the module applies to)
    #[arg(long, short)]
    pub service: Option<String>,
    /// Print the planned changes as a unified diff instead of writing them
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Module id
    pub module: String,
    /// Remove from this service only (default: from every service that has it)
    #[arg(long, short)]
    pub service: Option<String>,
    /// Also delete generated files and snippets you edited
    #[arg(long)]
    pub force: bool,
    /// Print the planned changes as a unified diff instead of writing them
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Add a service of some kind, with the modules that are a default on that kind
    Add(ServiceAddArgs),
    /// Remove a service: its modules, the files generated for it, its keys in .env
    Remove(ServiceRemoveArgs),
}

#[derive(Debug, Args)]
pub struct ServiceAddArgs {
    /// Service name: lowercase letters, digits, `-` or `_` (its folder is services/<name>)
    pub name: String,
    /// Kind of service: api, admin, webhooks (Rust) or nest (NestJS, TypeScript)
    #[arg(long, short)]
    pub kind: String,
    /// Port it listens on in development (default: one above the highest port in use)
    #[arg(long, short)]
    pub port: Option<u16>,
    /// Print the planned changes as a unified diff instead of writing them
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ServiceRemoveArgs {
    /// Service name, as in saaskit.toml
    pub name: String,
    /// Also delete generated files and snippets you edited
    #[arg(long)]
    pub force: bool,
    /// Print the planned changes as a unified diff instead of writing them
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// A resource: migration, domain type and owner-scoped repository, CRUD endpoints with OpenAPI, tests
    Resource(GenerateResourceArgs),
    /// A typed job on the queue: payload struct, handler, registration, enqueue helper
    Job(GenerateHandlerArgs),
    /// An email: its text and HTML templates and a typed function that sends it
    Email(GenerateHandlerArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Field types: string, text, int, bigint, float, bool, date, datetime, \
uuid, json; `?` after the type makes a job's field optional.\n\
Examples: saaskit generate job send_report user_id:string since:datetime?\n          \
saaskit generate email invoice_due amount:float due_on:date"
)]
pub struct GenerateHandlerArgs {
    /// Name, snake_case (`send_report`, `invoice_due`); a job's kind is `app.<name>`
    pub name: String,
    /// The job's payload fields, or the fields the email's templates show, as name:type
    #[arg(value_name = "FIELD")]
    pub fields: Vec<String>,
    /// The service whose worker runs the job (it needs the jobs module); for an email, a
    /// service with the email module (the message's code is in the library crate)
    #[arg(long, short, default_value = "api")]
    pub service: String,
    /// Print the planned changes as a unified diff instead of writing them
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Field types: string, text, int, bigint, float, bool, date, datetime, uuid, json, \
enum(a|b|c), and <resource>:ref (a reference to another generated resource).\n\
`?` after the type makes the field optional; `:unique` or `:index` adds an index.\n\
Example: saaskit generate resource task title:string:index done:bool due:date? project:ref"
)]
pub struct GenerateResourceArgs {
    /// Resource name, singular snake_case (`project`, `line_item`); its table and routes get the plural
    pub name: String,
    /// Fields as name:type[?][:unique|:index]
    #[arg(required = true, value_name = "FIELD")]
    pub fields: Vec<String>,
    /// The api service that serves it
    #[arg(long, short, default_value = "api")]
    pub service: String,
    /// Who owns its rows: `user`, or `org` (the active organization; needs the orgs module).
    /// Default: org when the service has the orgs module, else user
    #[arg(long, value_enum)]
    pub owner: Option<Owner>,
    /// No admin pages for it
    #[arg(long)]
    pub no_admin: bool,
    /// Print the planned changes as a unified diff instead of writing them
    #[arg(long)]
    pub dry_run: bool,
}

/// Who owns a resource's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Owner {
    User,
    Org,
}

#[derive(Debug, Subcommand)]
pub enum DestroyCommand {
    /// Remove a generated resource: its files, its snippets, its migration and its record
    Resource(DestroyResourceArgs),
    /// Remove a generated job: its file, its registration and its record
    Job(DestroyResourceArgs),
    /// Remove a generated email: its file, its templates and its record
    Email(DestroyResourceArgs),
}

#[derive(Debug, Args)]
pub struct DestroyResourceArgs {
    /// Name, as given to `saaskit generate`
    pub name: String,
    /// Also delete generated files and snippets you edited
    #[arg(long)]
    pub force: bool,
    /// Print the planned changes as a unified diff instead of writing them
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Module id
    pub module: String,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero when the generated output differs from what the current templates produce
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Print the planned changes as a unified diff instead of writing them
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Run only these services, comma-separated (default: every service in saaskit.toml)
    #[arg(long, value_delimiter = ',', value_name = "SERVICES")]
    pub only: Option<Vec<String>>,
    /// Build and start once: do not watch the sources for changes
    #[arg(long)]
    pub no_watch: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// New AUTH_SIGNING_KEY; the old key's public key goes first in AUTH_PREVIOUS_KEYS
    Rotate(KeysRotateArgs),
    /// The key ids (kid): the signing key's and each previous key's
    List(KeysListArgs),
    /// Drop a previous key from AUTH_PREVIOUS_KEYS: tokens it signed stop verifying
    Remove(KeysRemoveArgs),
}

#[derive(Debug, Args)]
pub struct EnvFileArg {
    /// The env file holding the keys (default: `.env` at the workspace root)
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    #[command(flatten)]
    pub env: EnvFileArg,
    /// Print the planned change as a unified diff instead of writing it
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct KeysListArgs {
    #[command(flatten)]
    pub env: EnvFileArg,
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeysRemoveArgs {
    /// Key id of the previous key to drop, as `saaskit keys list` shows it
    pub kid: String,
    #[command(flatten)]
    pub env: EnvFileArg,
    /// Print the planned change as a unified diff instead of writing it
    #[arg(long)]
    pub dry_run: bool,
}
