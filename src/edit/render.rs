//! Template rendering with minijinja in strict-undefined mode: a template that uses a variable
//! the context does not have is an error naming the variable, never an empty string.

use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::model::catalog::Scope;
use crate::model::manifest::{Manifest, ServiceSpec};

/// What every template sees. Mirrors the table in `docs/modules.md`.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub saaskit_version: &'static str,
    pub workspace: WorkspaceVars,
    pub services: Vec<ServiceVars>,
    /// Only set while rendering an entry with `scope = "service"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceVars>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceVars {
    pub name: String,
    pub database: String,
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
}

impl ServiceVars {
    pub fn new(spec: &ServiceSpec) -> ServiceVars {
        ServiceVars {
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            port: spec.port,
            dir: format!("services/{}", spec.name),
            package: spec.name.clone(),
            env_prefix: spec.name.to_ascii_uppercase().replace('-', "_"),
            description: kind_description(&spec.kind).to_string(),
        }
    }
}

/// One line on what a service of this kind is for (README, crate description, logs).
pub fn kind_description(kind: &str) -> &'static str {
    match kind {
        "api" => "Product API: accounts, authentication and users",
        "admin" => "Admin service: back-office panel and operations API",
        "webhooks" => "Webhooks service: billing events ingestion and processing",
        _ => "Service",
    }
}

impl Context {
    pub fn for_manifest(manifest: &Manifest) -> Context {
        Context {
            saaskit_version: env!("CARGO_PKG_VERSION"),
            workspace: WorkspaceVars {
                name: manifest.name.clone(),
                database: manifest.database.clone(),
            },
            services: manifest.services.iter().map(ServiceVars::new).collect(),
            service: None,
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
        Context {
            service: Some(service.clone()),
            ..self.clone()
        }
    }
}

/// Renders `source` (named `name` in error messages) against `context`.
pub fn render<C: Serialize>(name: &str, source: &str, context: &C) -> Result<String> {
    // Text without a tag renders as itself: no need to compile it and serialize the context.
    if !["{{", "{%", "{#"].iter().any(|tag| source.contains(tag)) {
        return Ok(source.to_string());
    }
    environment()
        .render_str(source, Value::from(Serde(context)))
        .map_err(|e| anyhow!("cannot render template `{name}`: {}", describe(&e)))
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
}
