//! The files and snippets of a generated job (`saaskit generate job`) or email (`saaskit
//! generate email`), rendered from their names and fields with the templates in
//! `templates/resource/`. Like the resources', pure: the workspace layer stages them.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::edit::render::render;
use crate::model::catalog;
use crate::model::manifest::CoreCrate;

use super::render::{Rendered, signature_at};
use super::spec::{self, Field, FieldType, Index, pascal};

/// What the generator makes: a job handler or an email message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Job,
    Email,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Job => "job",
            Kind::Email => "email",
        }
    }

    /// The manifest's table of this kind (`[jobs.<name>]`, `[emails.<name>]`).
    pub fn table(self) -> &'static str {
        match self {
            Kind::Job => crate::model::manifest::JOBS,
            Kind::Email => crate::model::manifest::EMAILS,
        }
    }

    /// The module that must be on a service first.
    pub fn module(self) -> &'static str {
        match self {
            Kind::Job => "jobs",
            Kind::Email => "email",
        }
    }
}

/// A job or an email as saaskit.toml records it, its fields parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub kind: Kind,
    pub name: String,
    /// The service whose worker runs a job; empty for an email.
    pub service: String,
    pub fields: Vec<Field>,
}

impl Handler {
    /// The module id its files and snippets are recorded under in the lock.
    pub fn id(&self) -> String {
        Handler::id_of(self.kind, &self.name)
    }

    pub fn id_of(kind: Kind, name: &str) -> String {
        format!("{}/{name}", kind.as_str())
    }

    /// The job's kind, as the queue stores it: `app.<name>`, apart from the modules' kinds.
    pub fn job_kind(&self) -> String {
        format!("app.{}", self.name)
    }

    /// The core crate's file of the job or the email's type.
    pub fn core_file(&self, core: &CoreCrate) -> String {
        format!("{}/src/{}.rs", core.dir, self.name)
    }
}

/// The fields of a job's payload or of an email, from their specs: the scalar types of
/// `generate resource` (no `enum`, `ref` or index: a payload is not a table); `?` on a job's
/// field only (an email's templates print every field).
pub fn parse_fields(kind: Kind, specs: &[String]) -> Result<Vec<Field>> {
    let fields = spec::parse_value_fields(specs).map_err(|error| anyhow::anyhow!("{error}"))?;
    for field in &fields {
        let problem = match &field.kind {
            FieldType::Enum(_) | FieldType::Ref(_) => Some("`enum` and `ref` are for resources"),
            _ if field.index != Index::None => Some("`:unique` and `:index` are for resources"),
            _ if field.optional && kind == Kind::Email => {
                Some("an email's fields are not optional: its templates print each one")
            }
            _ if field.name == "brand" && kind == Kind::Email => {
                Some("every email has a `brand` field already (the product's name and link)")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            bail!(
                "field spec `{}`: {problem}; the types of a {}'s fields are: string, text, int, \
                 bigint, float, bool, date, datetime, uuid, json",
                field.spec,
                kind.as_str()
            );
        }
    }
    Ok(fields)
}

/// The Rust type of a payload's or message's field.
fn rust_type(field: &Field) -> String {
    let base = match field.kind {
        FieldType::Int => "i32",
        FieldType::BigInt | FieldType::DateTime => "i64",
        FieldType::Float => "f64",
        FieldType::Bool => "bool",
        FieldType::Json => "serde_json::Value",
        _ => "String",
    };
    if field.optional {
        format!("Option<{base}>")
    } else {
        base.to_string()
    }
}

/// Everything a job or an email adds to the workspace; a job's registration goes in
/// `service_dir`'s `main.rs`.
pub fn render_handler(handler: &Handler, core: &CoreCrate, service_dir: &str) -> Result<Rendered> {
    let ty = pascal(&handler.name);
    let fields: Vec<Value> = handler
        .fields
        .iter()
        .map(|f| json!({"name": f.name, "rust": rust_type(f), "label": f.name.replace('_', " ")}))
        .collect();
    let name = &handler.name;
    let lib = format!("{}/src/lib.rs", core.dir);
    let declaration = (lib, "mods".to_string(), format!("pub mod {name};\n"));
    match handler.kind {
        Kind::Job => {
            let context = json!({
                "name": name,
                "type": ty,
                "kind": handler.job_kind(),
                "service": handler.service,
                "fields": fields,
                "sig_run": signature_at(
                    4,
                    "async fn run",
                    &["&self".into(), "ctx: &JobContext".into(), format!("payload: {ty}")],
                    "Result<(), JobError>",
                ),
                "sig_enqueue": signature_at(
                    0,
                    "pub async fn enqueue",
                    &["conn: &mut AnyConnection".into(), format!("payload: &{ty}")],
                    "sqlx::Result<Enqueued>",
                ),
            });
            let text = render_template("resource/job.rs.jinja", &context)?;
            // The handler's type imported, so that the registration keeps one length (and
            // rustfmt's layout) whatever the workspace's name. It goes after the `jobs` module's
            // startup snippet, which makes `job_handlers`, and before its routes snippet, which
            // starts the worker with them.
            let main = format!("{service_dir}/src/main.rs");
            Ok(Rendered {
                files: vec![(handler.core_file(core), text)],
                snippets: vec![
                    declaration,
                    (
                        main.clone(),
                        "mods".into(),
                        format!("use {}::{name}::{ty}Job;\n", core.ident),
                    ),
                    (
                        main,
                        "startup".into(),
                        format!("let job_handlers = job_handlers.register({ty}Job);\n"),
                    ),
                ],
            })
        }
        Kind::Email => {
            let label = name.replace('_', " ");
            let label = format!("{}{}", label[..1].to_uppercase(), &label[1..]);
            // rustfmt puts a call's arguments on one line up to `fn_call_width` (60 columns),
            // else one a line.
            let args = [format!("\"{{}}: {label}\""), "m.brand.app_name".to_string()];
            let subject = if args.join(", ").len() <= 60 {
                format!("format!({})", args.join(", "))
            } else {
                format!("format!(\n        {},\n        {}\n    )", args[0], args[1])
            };
            let context = json!({
                "name": name,
                "type": ty,
                "subject": subject,
                "fields": fields,
                "sig_send": signature_at(
                    0,
                    "pub async fn send",
                    &[
                        "conn: &mut AnyConnection".into(),
                        "to: &str".into(),
                        format!("message: &{ty}"),
                    ],
                    "Result<(), EmailError>",
                ),
            });
            let text = render_template("resource/email.rs.jinja", &context)?;
            let templates = format!("{}/templates/emails/{name}", core.dir);
            Ok(Rendered {
                files: vec![
                    (handler.core_file(core), text),
                    (format!("{templates}.txt"), email_text(&label, &fields)),
                    (format!("{templates}.html"), email_html(&label, &fields)),
                ],
                snippets: vec![declaration],
            })
        }
    }
}

/// The saaskit template at `path` rendered with `context`.
fn render_template(path: &str, context: &Value) -> Result<String> {
    render(path, catalog::template(path)?, context)
}

/// The text body: a greeting, the message's name, each field with its label, the product.
fn email_text(label: &str, fields: &[Value]) -> String {
    let lines = each_field(fields, |label, name| format!("{label}: {{{{ {name} }}}}\n"));
    let list = if lines.is_empty() {
        ".\n".to_string()
    } else {
        format!(":\n\n{lines}")
    };
    format!("Hello,\n\n{label}{list}\n{{{{ brand.app_name }}}}\n{{{{ brand.base_url }}}}\n")
}

/// The HTML body, in the layout every message shares (`email/layout.html`, which shows the
/// product's name and link); askama escapes what it inserts.
fn email_html(label: &str, fields: &[Value]) -> String {
    let items = each_field(fields, |label, name| {
        format!("<li>{label}: {{{{ {name} }}}}</li>\n")
    });
    let list = if items.is_empty() {
        ".</p>\n".to_string()
    } else {
        format!(":</p>\n<ul>\n{items}</ul>\n")
    };
    format!(
        "{{% extends \"email/layout.html\" %}}\n{{% block title %}}{label}{{% endblock %}}\n\
         {{% block content %}}\n<p>Hello,</p>\n<p>{label}{list}{{% endblock %}}\n"
    )
}

/// `line(label, name)` for each field, joined.
fn each_field(fields: &[Value], line: impl Fn(&str, &str) -> String) -> String {
    fields
        .iter()
        .map(|field| {
            line(
                field["label"].as_str().unwrap_or_default(),
                field["name"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_field_is_a_scalar_without_index() {
        let ok = parse_fields(
            Kind::Job,
            &["user_id:string".into(), "due:datetime?".into()],
        );
        assert_eq!(ok.unwrap().len(), 2);
        for (kind, spec, problem) in [
            (Kind::Job, "project:ref", "`enum` and `ref`"),
            (Kind::Job, "code:string:unique", "`:index`"),
            (Kind::Email, "note:text?", "not optional"),
            (Kind::Email, "brand:string", "`brand` field already"),
        ] {
            let error = parse_fields(kind, &[spec.into()]).unwrap_err().to_string();
            assert!(error.contains(problem), "{spec}: {error}");
        }
    }

    #[test]
    fn the_email_bodies_print_each_field() {
        let fields = vec![json!({"name": "due_on", "label": "due on"})];
        let text = email_text("Invoice due", &fields);
        assert!(text.contains("due on: {{ due_on }}\n"), "{text}");
        let html = email_html("Invoice due", &fields);
        assert!(
            html.starts_with("{% extends \"email/layout.html\" %}\n"),
            "{html}"
        );
        assert!(html.contains("<li>due on: {{ due_on }}</li>"), "{html}");
    }
}
