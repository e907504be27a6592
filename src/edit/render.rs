//! Template rendering with minijinja in strict-undefined mode: a template that uses a variable
//! the context does not have is an error naming the variable, never an empty string.

use std::borrow::Cow;
use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::model::catalog::{Language, Scope};
use crate::model::manifest::{Manifest, ServiceSpec};

/// What every template sees. Mirrors the table in `docs/modules.md`.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateVars {
    pub saaskit_version: &'static str,
    pub workspace: WorkspaceVars,
    pub services: Vec<ServiceVars>,
    /// The services in Rust, which the Cargo workspace builds: what deployment files that build
    /// and ship release binaries (Dockerfile, compose, systemd units) list.
    pub rust_services: Vec<ServiceVars>,
    /// Only set while rendering an entry with `scope = "service"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceVars>,
}

/// The variables of one render context, with their conversion to minijinja's value kept.
#[derive(Debug, Clone)]
pub struct Context {
    vars: TemplateVars,
    /// `vars` as minijinja's value, made at the first render that needs it: `new` renders a few
    /// hundred templates with a few dozen contexts, and converting the context for each render
    /// was a large part of the time spent rendering.
    value: OnceLock<Value>,
}

impl std::ops::Deref for Context {
    type Target = TemplateVars;

    fn deref(&self) -> &TemplateVars {
        &self.vars
    }
}

impl Serialize for Context {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // minijinja hands a `Value` met while converting to a `Value` through as it is, so
        // `render` gets the converted context without converting it again.
        self.value
            .get_or_init(|| Value::from(Serde(&self.vars)))
            .serialize(serializer)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceVars {
    pub name: String,
    pub database: String,
    pub core: CoreVars,
}

/// The workspace's library crate: `workspace.core.package` (`acme-core`), `.dir`
/// (`crates/core`), `.ident` (`acme_core`).
#[derive(Debug, Clone, Serialize)]
pub struct CoreVars {
    pub package: String,
    pub dir: String,
    pub ident: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceVars {
    pub name: String,
    pub kind: String,
    pub port: u16,
    pub dir: String,
    pub package: String,
    pub env_prefix: String,
    pub description: String,
    /// `rust` or `typescript`: templates keep Rust-only lines (Cargo members, `cargo run`) to
    /// the Rust services.
    pub language: Language,
}

impl ServiceVars {
    /// Where service `name` lives in the workspace.
    pub fn dir_of(name: &str) -> String {
        format!("services/{name}")
    }

    pub fn new(spec: &ServiceSpec) -> ServiceVars {
        ServiceVars {
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            port: spec.port,
            dir: ServiceVars::dir_of(&spec.name),
            package: spec.name.clone(),
            env_prefix: spec.name.to_ascii_uppercase().replace('-', "_"),
            description: kind_description(&spec.kind).to_string(),
            language: Language::of_kind(&spec.kind),
        }
    }
}

/// One line on what a service of this kind is for (README, crate description, logs).
pub fn kind_description(kind: &str) -> &'static str {
    match kind {
        "api" => "Product API: accounts, authentication and users",
        "admin" => "Admin service: back-office panel and operations API",
        "webhooks" => "Webhooks service: billing events ingestion and processing",
        "nest" => "NestJS service (TypeScript) trusting the api's accounts and sessions",
        _ => "Service",
    }
}

impl Context {
    pub fn for_manifest(manifest: &Manifest) -> Context {
        Context::new(TemplateVars {
            saaskit_version: env!("CARGO_PKG_VERSION"),
            workspace: WorkspaceVars {
                name: manifest.name.clone(),
                database: manifest.database.clone(),
                core: CoreVars {
                    package: manifest.core.package.clone(),
                    dir: manifest.core.dir.clone(),
                    ident: manifest.core.ident.clone(),
                },
            },
            services: manifest.services.iter().map(ServiceVars::new).collect(),
            rust_services: (manifest.services.iter())
                .filter(|s| Language::of_kind(&s.kind) == Language::Rust)
                .map(ServiceVars::new)
                .collect(),
            service: None,
        })
    }

    fn new(vars: TemplateVars) -> Context {
        Context {
            vars,
            value: OnceLock::new(),
        }
    }

    /// Which entries of a module this context renders: per-service ones when it has a service.
    pub fn scope(&self) -> Scope {
        if self.service.is_some() {
            Scope::Service
        } else {
            Scope::Workspace
        }
    }

    /// The kind of the service this context renders for; `None` in the workspace context.
    pub fn service_kind(&self) -> Option<&str> {
        self.service.as_ref().map(|s| s.kind.as_str())
    }

    pub fn with_service(&self, service: &ServiceVars) -> Context {
        // A fresh context, not a clone keeping the workspace context's value: this one has a
        // `service`.
        Context::new(TemplateVars {
            service: Some(service.clone()),
            ..self.vars.clone()
        })
    }
}

/// Renders `source` (named `name` in error messages) against `context`.
pub fn render<C: Serialize>(name: &str, source: &str, context: &C) -> Result<String> {
    // Text without a tag renders as itself: no need to compile it and serialize the context.
    if !has_tag(source) {
        return Ok(source.to_string());
    }
    environment()
        .render_str(source, Value::from(Serde(context)))
        .map_err(|e| anyhow!("cannot render template `{name}`: {}", describe(&e)))
}

/// Whether `source` holds a template tag: `{{`, `{%` or `{#`. One pass over the `{` of the text
/// (memchr) rather than a substring search per tag: `new` asks this of every file it writes.
fn has_tag(source: &str) -> bool {
    let bytes = source.as_bytes();
    memchr::memchr_iter(b'{', bytes).any(|at| matches!(bytes.get(at + 1), Some(b'{' | b'%' | b'#')))
}

/// The identifier module sources name the workspace's library crate by (`use
/// saaskit_core::auth::Auth;`): valid Rust, so a source still parses as it is, and replaced by
/// [`module_text`] with the crate's own name, which differs per workspace.
pub const CORE_CRATE_PLACEHOLDER: &str = "saaskit_core";

/// A module's text (a file, a snippet) as it lands in the workspace of `context`: rendered when
/// it is a template, then with every [`CORE_CRATE_PLACEHOLDER`] identifier naming the
/// workspace's library crate. Every path that writes module text goes through here, so a file,
/// its pristine copy and the fresh render `diff` compares them with always agree.
///
/// A text is copied only when it is rendered or names the library crate: most of a new
/// workspace (a megabyte of `new`'s 1.3) is files shipped as they are, which stay the binary's
/// own bytes, and on a virtual machine touching fresh memory costs more than copying into it.
pub fn module_text<'s>(
    name: &str,
    source: Cow<'s, str>,
    template: bool,
    context: &Context,
) -> Result<Cow<'s, str>> {
    let ident = &context.workspace.core.ident;
    let text = if template {
        Cow::Owned(render(name, &source, context)?)
    } else {
        source
    };
    Ok(match name_core_crate(&text, ident) {
        Cow::Borrowed(_) => text,
        Cow::Owned(named) => Cow::Owned(named),
    })
}

/// `text` with each whole identifier [`CORE_CRATE_PLACEHOLDER`] replaced by `ident`; a longer
/// identifier containing it (`saaskit_core_x`, `my_saaskit_core`) is left alone. Borrowed when
/// there is nothing to replace.
fn name_core_crate<'t>(text: &'t str, ident: &str) -> Cow<'t, str> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = 0;
    // memchr's SIMD search rather than `str::match_indices` with a `&str` pattern (the two-way
    // algorithm): every generated file is searched, and this halved the cost of the search.
    let finder = placeholder_finder();
    for at in finder.find_iter(text.as_bytes()) {
        let end = at + CORE_CRATE_PLACEHOLDER.len();
        let whole = !text[..at].chars().next_back().is_some_and(is_ident)
            && !text[end..].chars().next().is_some_and(is_ident);
        if whole {
            if out.capacity() == 0 {
                out.reserve(text.len() + ident.len());
            }
            out.push_str(&text[rest..at]);
            out.push_str(ident);
            rest = end;
        }
    }
    if rest == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[rest..]);
    Cow::Owned(out)
}

fn placeholder_finder() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: OnceLock<memchr::memmem::Finder<'static>> = OnceLock::new();
    FINDER.get_or_init(|| memchr::memmem::Finder::new(CORE_CRATE_PLACEHOLDER))
}

/// One environment for the whole process: building it registers every builtin filter.
fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Generated files must keep their trailing newline byte for byte.
        let syntax = SyntaxConfig::builder().keep_trailing_newline(true).build();
        env.set_syntax(syntax.expect("the default delimiters are a valid syntax"));
        env
    })
}

fn describe(error: &minijinja::Error) -> String {
    let mut text = error.to_string();
    if let Some(line) = error.line() {
        text.push_str(&format!(" (template line {line})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_tags_is_itself_and_tags_render_strictly() {
        let context = serde_json::json!({ "name": "acme" });
        let plain = "fn main() { println!(\"{}\", x); }\n\n";
        assert_eq!(render("plain", plain, &context).unwrap(), plain);
        assert_eq!(
            render("tagged", "name = {{ name }}\n", &context).unwrap(),
            "name = acme\n"
        );
        let error = render("strict", "{{ missing }}", &context).unwrap_err();
        assert!(error.to_string().contains("strict"), "{error}");
    }

    #[test]
    fn the_placeholder_is_replaced_as_a_whole_identifier_only() {
        assert_eq!(
            name_core_crate(
                "use saaskit_core::auth::Auth;\nsaaskit_core::db::connect(saaskit_core_x, my_saaskit_core);\n",
                "acme_core"
            ),
            "use acme_core::auth::Auth;\nacme_core::db::connect(saaskit_core_x, my_saaskit_core);\n"
        );
        assert_eq!(name_core_crate("saaskit_core", "acme_core"), "acme_core");
        assert_eq!(
            name_core_crate("no crate here", "acme_core"),
            "no crate here"
        );
    }

    #[test]
    fn a_context_renders_its_own_service_after_another_context_rendered() {
        let manifest = Manifest::parse(
            "[workspace]\nname = \"acme\"\ncore = \"acme-core\"\ndatabase = \"sqlite\"\n\n\
             [services.api]\nkind = \"api\"\nport = 8080\nmodules = []\n",
        )
        .unwrap();
        let workspace = Context::for_manifest(&manifest);
        assert_eq!(
            render(
                "w",
                "{{ workspace.name }} {{ service is defined }}",
                &workspace
            )
            .unwrap(),
            "acme False"
        );
        let service = workspace.with_service(&workspace.services[0].clone());
        assert_eq!(
            render("s", "{{ service.dir }} {{ services | length }}", &service).unwrap(),
            "services/api 1"
        );
        assert_eq!(
            render("w", "{{ service is defined }}", &workspace).unwrap(),
            "False"
        );
    }
}
