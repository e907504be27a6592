//! The files and snippets of a resource, rendered from its typed field model with the templates
//! in `templates/resource/`. What differs by field type is decided here, once per field, so the
//! templates only lay it out; the layout is the one rustfmt gives (line widths are measured where
//! a construct fits on one line or not), so the generated code is `cargo fmt --check`-clean as
//! written.

use std::cmp::Ordering;

use anyhow::Result;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::edit::render::render;
use crate::model::catalog;
use crate::model::manifest::CoreCrate;

use super::admin;
use super::spec::{Field, FieldType, Index, Owner, STRING_MAX_CHARS, pascal, plural};

/// rustfmt's `max_width`.
pub(super) const MAX_WIDTH: usize = 100;
/// rustfmt's `struct_lit_width`: the widest field list a struct literal keeps on one line.
const STRUCT_LIT_WIDTH: usize = 18;
/// The longest `text` value accepted, in characters.
pub const TEXT_MAX_CHARS: usize = 65_536;
/// The module id the lock records the shared file under.
pub const KIT_ID: &str = "resources";

/// A resource as saaskit.toml records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub fields: Vec<Field>,
    pub owner: Owner,
    pub service: String,
    /// The version of its migration: after every migration the workspace had when it was
    /// generated, so that the tables it references exist before its own.
    pub migration: u64,
    /// Whether it has pages in the admin service (see [`super::admin`]).
    pub admin: bool,
}

/// What a resource (or the shared file) adds: whole files, and snippets at markers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub files: Vec<(String, String)>,
    /// (target, marker, code)
    pub snippets: Vec<(String, String, String)>,
}

impl Resource {
    /// The module id its files and snippets are recorded under in the lock.
    pub fn id(&self) -> String {
        format!("resource/{}", self.name)
    }

    pub fn table(&self) -> String {
        plural(&self.name)
    }

    /// The core crate's file of the resource.
    pub fn core_file(&self, core: &CoreCrate) -> String {
        format!("{}/src/{}.rs", core.dir, self.name)
    }

    pub fn service_file(&self, service_dir: &str) -> String {
        format!("{service_dir}/src/{}.rs", self.name)
    }

    /// Its part of the service's committed OpenAPI document (docs/openapi.md), named like a
    /// module's part after its module id.
    pub fn openapi_part(&self, service_dir: &str) -> String {
        format!("{service_dir}/openapi/resource-{}.json", self.name)
    }

    pub fn migration_files(&self, core: &CoreCrate) -> [String; 2] {
        let dir = core.migrations_dir();
        let file = format!("{}_create_{}.sql", self.migration, self.table());
        [
            format!("{dir}/sqlite/{file}"),
            format!("{dir}/postgres/{file}"),
        ]
    }
}

/// The shared file every resource uses (`resources.rs` in the core crate) and its declaration.
pub fn render_kit(core: &CoreCrate) -> Result<Rendered> {
    Ok(Rendered {
        files: vec![(
            format!("{}/src/resources.rs", core.dir),
            catalog::template("resource/resources.rs")?.to_string(),
        )],
        snippets: vec![(
            format!("{}/src/lib.rs", core.dir),
            "mods".into(),
            "pub mod resources;\n".into(),
        )],
    })
}

/// Everything `resource` adds to the workspace, its service in `service_dir`.
pub fn render_resource(
    resource: &Resource,
    core: &CoreCrate,
    service_dir: &str,
) -> Result<Rendered> {
    let context = context(resource, core);
    let core_text = render(
        "resource/core.rs.jinja",
        catalog::template("resource/core.rs.jinja")?,
        &context,
    )?;
    let service_text = render(
        "resource/service.rs.jinja",
        catalog::template("resource/service.rs.jinja")?,
        &context,
    )?;
    let migration = render(
        "resource/migration.sql.jinja",
        catalog::template("resource/migration.sql.jinja")?,
        &context,
    )?;
    let [sqlite, postgres] = resource.migration_files(core);
    let name = &resource.name;
    // Read off the two files as utoipa reads them, so the committed document matches at once.
    let openapi_part = super::openapi::part(&core_text, &service_text)?;
    let tests = super::testfile::render_tests(resource, core)?;
    Ok(Rendered {
        files: vec![
            (resource.core_file(core), core_text),
            (resource.service_file(service_dir), service_text),
            (resource.openapi_part(service_dir), openapi_part),
            tests,
            (sqlite, migration.clone()),
            (postgres, migration),
        ],
        snippets: vec![
            (
                format!("{}/src/lib.rs", core.dir),
                "mods".into(),
                format!("pub mod {name};\n"),
            ),
            (
                format!("{service_dir}/src/main.rs"),
                "mods".into(),
                format!("mod {name};\n"),
            ),
            (
                format!("{service_dir}/src/main.rs"),
                "routes".into(),
                routes_snippet("routes", name),
            ),
            (
                "README.md".into(),
                "resources".into(),
                readme_line(resource),
            ),
        ],
    })
}

/// The statements of a service's `main.rs` that merge the routes of `module` (a resource's, or
/// its admin pages'). Snippets are laid out by prettyplease (within 89 columns) and then checked
/// by rustfmt (100): two short statements, which both keep on one line each for the longest
/// module name a resource can have (`admin_` and a plural of 50 characters).
pub(super) fn routes_snippet(var: &str, module: &str) -> String {
    format!("let {var} = {module}::routes(&state);\nlet app = app.merge({var});\n")
}

/// The resource's line in the workspace's README.
fn readme_line(resource: &Resource) -> String {
    let table = resource.table();
    let (owner, routes) = match resource.owner {
        Owner::User => ("a user's", format!("/api/{table}")),
        Owner::Org => ("an organization's", format!("/api/orgs/{{org}}/{table}")),
    };
    let pages = if resource.admin {
        format!("; admin pages at `{}`", admin::admin_path(resource))
    } else {
        String::new()
    };
    format!(
        "- `{}`: table `{table}`, each row {owner}; `{routes}` on service `{}`{pages}.\n",
        resource.name, resource.service
    )
}

/// What the templates see.
fn context(resource: &Resource, core: &CoreCrate) -> Value {
    let name = resource.name.as_str();
    let ty = pascal(name);
    let table = resource.table();
    let label = name.replace('_', " ");
    let plural_label = table.replace('_', " ");
    let org = resource.owner == Owner::Org;
    let (owner_type, owner_id, owner_column, owner_table) = if org {
        ("TenantId", "owner.as_str()", "org_id", "organizations")
    } else {
        ("User", "&owner.id", "user_id", "users")
    };
    let owner_noun = if org {
        "an organization (the one in the path, of which the caller must be a member)"
    } else {
        "a user (the signed-in caller)"
    };
    let fields: Vec<Value> = resource
        .fields
        .iter()
        .map(|f| field(f, &ty, &table, owner_column))
        .collect();
    let enums: Vec<Value> = resource
        .fields
        .iter()
        .filter_map(|f| match &f.kind {
            FieldType::Enum(variants) => Some(json!({
                "field": f.name,
                "name": enum_name(&ty, &f.name),
                "variants": variants
                    .iter()
                    .map(|v| json!({"pascal": pascal(v), "snake": v}))
                    .collect::<Vec<_>>(),
            })),
            _ => None,
        })
        .collect();
    let refs: Vec<Value> = resource
        .fields
        .iter()
        .filter_map(|f| match &f.kind {
            FieldType::Ref(target) => Some(json!({
                "field": f.name,
                "module": target,
                "optional": f.optional,
                "error": call(8, "errors.insert", &[
                    format!("\"{}\".into()", f.name),
                    format!("\"no such {target} of yours\".into()"),
                ], ";"),
            })),
            _ => None,
        })
        .collect();

    let mut columns = vec!["id".to_string(), owner_column.to_string()];
    columns.extend(resource.fields.iter().map(|f| f.name.clone()));
    columns.extend(["created_at".to_string(), "updated_at".to_string()]);
    let unsortable: Vec<String> = resource
        .fields
        .iter()
        .filter(|f| f.kind == FieldType::Json)
        .map(|f| format!("\"{}\"", f.name))
        .collect();

    // Only what this resource's fields use is imported: an unused import is a warning.
    let mut kit = vec!["self", "Page", "ResourceError", "Table", "Values", "read"];
    let uses = |kind: fn(&FieldType) -> bool| resource.fields.iter().any(|f| kind(&f.kind));
    if resource.fields.iter().any(|f| f.optional) {
        kit.push("read_optional");
    }
    if uses(|k| *k == FieldType::Bool) {
        kit.push("flag");
    }
    if uses(|k| *k == FieldType::Int) {
        kit.push("int");
    }
    if uses(|k| *k == FieldType::Json) {
        kit.push("json");
    }
    if resource.admin {
        kit.push("Owned");
    }
    let kit: Vec<String> = kit.into_iter().map(String::from).collect();

    let owner_import = if org {
        ("crate::orgs", vec!["TenantId".to_string()])
    } else {
        ("crate::auth", vec!["User".to_string()])
    };
    // `values` checks nothing for fields without a check (int, bool, ...) and no reference: then
    // it has no `errors` to fill (a `let mut` never changed is a clippy warning), nor imports them.
    let checked = !refs.is_empty() || resource.fields.iter().any(|f| !check(f).is_empty());
    let mut errors = Vec::new();
    if checked {
        errors.push("FieldErrors".to_string());
    }
    if resource.admin {
        errors.insert(0, "ApiError".into());
    }
    let mut crate_uses = vec![
        ("crate::db".into(), vec!["Database".into()]),
        (owner_import.0.into(), owner_import.1),
        ("crate::resources".into(), kit),
    ];
    if !errors.is_empty() {
        crate_uses.push(("crate::error".into(), errors));
    }
    crate_uses.extend(admin::core_uses(resource));
    let crate_uses = use_group(crate_uses);

    let core_ident = core.ident.as_str();
    let owner_extractor = if org {
        (format!("{core_ident}::orgs"), vec!["Tenant".to_string()])
    } else {
        (
            format!("{core_ident}::auth"),
            vec!["CurrentUser".to_string()],
        )
    };
    let mut types = vec![
        // Its functions are called as `repository::list(...)`: a line's length then does not
        // depend on the resource's name.
        "self as repository".to_string(),
        format!("New{ty}"),
        ty.clone(),
        format!("{ty}Page"),
        format!("{ty}Query"),
        format!("{ty}Update"),
    ];
    types[1..].sort();
    let core_uses = use_group(vec![
        (core_ident.to_string(), vec!["ApiError".into()]),
        owner_extractor,
        (format!("{core_ident}::db"), vec!["Database".into()]),
        (
            format!("{core_ident}::http::openapi"),
            vec!["ErrorBody".into()],
        ),
        (
            format!("{core_ident}::http"),
            vec!["JsonBody".into(), "Path".into(), "Query".into()],
        ),
        (format!("{core_ident}::{name}"), types),
    ]);

    let owner_param = format!("owner: &{owner_type}");
    let db = "db: &Database".to_string();
    let base_path = if org {
        format!("/api/orgs/{{org}}/{table}")
    } else {
        format!("/api/{table}")
    };
    let org_param = "(\"org\" = String, Path, description = \"The organization's id\")";
    let id_param = format!("(\"id\" = String, Path, description = \"The {label}'s id\")");
    let (owner_extract, owner_arg, id_extract) = if org {
        (
            "tenant: Tenant",
            "&tenant.id",
            "Path((_, id)): Path<(String, String)>",
        )
    } else {
        (
            "current: CurrentUser",
            "&current.user",
            "Path(id): Path<String>",
        )
    };
    let state = "State(db): State<Database>".to_string();
    let handler = |name: &str, params: &[String], ret: &str| {
        signature(&format!("async fn {name}"), params, ret)
    };
    let api = |t: &str| format!("Result<{t}, ApiError>");

    let mut context = json!({
        "name": name,
        "type": ty,
        "table": table,
        "title": format!("{}{}", label[..1].to_uppercase(), &plural_label[1..]),
        "label": label,
        "plural": table,
        "plural_label": plural_label,
        "org": org,
        "owner_noun": owner_noun,
        "owner_short": if org { "an organization" } else { "a user" },
        "owner_doc": if org { "the `TenantId` that only a membership check makes" } else { "the signed-in `User`" },
        "owner_story": if org {
            "//! Every route is under `/api/orgs/{org}`: a caller who is not a member of that organization\n//! gets 404, as for a missing row; so does another organization's row."
        } else {
            "//! The routes are the signed-in user's: another user's row is a 404, as a missing one."
        },
        "owner_type": owner_type,
        "owner_id": owner_id,
        "owner_column": owner_column,
        "owner_table": owner_table,
        "owner_arg": owner_arg,
    });
    let layout = json!({
        "fields": fields,
        "enums": enums,
        "refs": refs,
        "checked": checked,
        "merged": struct_literal(
            4,
            &format!("let merged = New{ty}"),
            &resource
                .fields
                .iter()
                .map(|f| (f.name.clone(), format!("current.{}", f.name)))
                .collect::<Vec<_>>(),
            None,
            ";",
        ),
        "any_optional": resource.fields.iter().any(|f| f.optional),
        "select_columns": continued_string(&columns, "    columns: \"".len()),
        "unsortable": unsortable.join(", "),
        "crate_uses": crate_uses,
        "core": core_ident,
        "core_uses": core_uses,
        "base_path": base_path,
        "item_path": format!("{base_path}/{{id}}"),
        "path_params": if org { format!("{org_param}, ") } else { String::new() },
        "org_param": org_param,
        "item_params": if org { format!("{org_param}, {id_param}") } else { id_param },
        "not_found_list": if org {
            "\n        (status = 404, description = \"`not_found`: no such organization among the caller's\", body = ErrorBody),"
        } else { "" },
    });
    let signatures = json!({
        "sig_list": signature("pub async fn list", &[db.clone(), owner_param.clone(), format!("query: &{ty}Query")], &format!("Result<{ty}Page, ResourceError>")),
        "sig_get": signature("pub async fn get", &[db.clone(), owner_param.clone(), "id: &str".into()], &format!("Result<{ty}, ResourceError>")),
        "sig_create": signature("pub async fn create", &[db.clone(), owner_param.clone(), format!("new: &New{ty}")], &format!("Result<{ty}, ResourceError>")),
        "sig_update": signature("pub async fn update", &[db.clone(), owner_param.clone(), "id: &str".into(), format!("update: {ty}Update")], &format!("Result<{ty}, ResourceError>")),
        "sig_delete": signature("pub async fn delete", &[db.clone(), owner_param.clone(), "id: &str".into()], "Result<(), ResourceError>"),
        "sig_values": signature("async fn values", &[
            if refs.is_empty() { "_db: &Database".to_string() } else { db.clone() },
            if refs.is_empty() { format!("_owner: &{owner_type}") } else { owner_param.clone() },
            format!("new: &New{ty}"),
        ], "Result<Values, ResourceError>"),
        "sig_handler_list": handler("list", &[state.clone(), owner_extract.into(), format!("Query(query): Query<{ty}Query>")], &api(&format!("Json<{ty}Page>"))),
        "sig_handler_create": handler("create", &[state.clone(), owner_extract.into(), format!("JsonBody(new): JsonBody<New{ty}>")], &created_type(&ty)),
        "sig_show": handler("show", &[state.clone(), owner_extract.into(), id_extract.into()], &api(&format!("Json<{ty}>"))),
        "sig_handler_update": handler("update", &[state.clone(), owner_extract.into(), id_extract.into(), format!("JsonBody(update): JsonBody<{ty}Update>")], &api(&format!("Json<{ty}>"))),
        "sig_remove": handler("remove", &[state, owner_extract.into(), id_extract.into()], &api("StatusCode")),
    });
    // Three objects merged: one would exceed `json!`'s recursion limit.
    for part in [layout, signatures, admin::core_context(resource)] {
        if let (Value::Object(all), Value::Object(part)) = (&mut context, part) {
            all.extend(part);
        }
    }
    context
}

/// What the templates see of one field.
fn field(field: &Field, ty: &str, table: &str, owner_column: &str) -> Value {
    let name = field.name.as_str();
    let optional = field.optional;
    // (the API's type, how a column is read, the bind method, the conversion into the bound value)
    let (base, decode, bind, to_db_required, to_db_optional) = match &field.kind {
        FieldType::String
        | FieldType::Text
        | FieldType::Date
        | FieldType::Uuid
        | FieldType::Ref(_) => (
            "String".to_string(),
            "Ok".to_string(),
            "text",
            format!("Some(new.{name}.clone())"),
            format!("new.{name}.clone()"),
        ),
        FieldType::Int => (
            "i32".into(),
            "int".into(),
            "int",
            format!("Some(i64::from(new.{name}))"),
            format!("new.{name}.map(i64::from)"),
        ),
        FieldType::Bool => (
            "bool".into(),
            "flag".into(),
            "int",
            format!("Some(i64::from(new.{name}))"),
            format!("new.{name}.map(i64::from)"),
        ),
        FieldType::BigInt | FieldType::DateTime => (
            "i64".into(),
            "Ok".into(),
            "int",
            format!("Some(new.{name})"),
            format!("new.{name}"),
        ),
        FieldType::Float => (
            "f64".into(),
            "Ok".into(),
            "float",
            format!("Some(new.{name})"),
            format!("new.{name}"),
        ),
        FieldType::Json => (
            "serde_json::Value".into(),
            "json".into(),
            "text",
            format!("Some(new.{name}.to_string())"),
            format!("resources::to_text(new.{name}.as_ref())"),
        ),
        FieldType::Enum(_) => {
            let enum_name = enum_name(ty, name);
            (
                enum_name.clone(),
                format!("{enum_name}::from_db"),
                "text",
                format!("Some(new.{name}.to_string())"),
                format!("resources::to_text(new.{name})"),
            )
        }
    };
    let rust = if optional {
        format!("Option<{base}>")
    } else {
        base.clone()
    };
    // utoipa documents a `serde_json::Value` as any JSON value (`{}`), as the API takes it; the
    // update's `Option<Option<Value>>` needs the same said with its virtual type `Value`.
    let schema_base = if field.kind == FieldType::Json {
        "Value"
    } else {
        base.as_str()
    };
    let check = check(field);
    // What the document says of a valid input beyond its type (`#[schema(...)]`): what the
    // checks below enforce, so that a client (or a fuzzer) can make valid values. Not blank is
    // more than `min_length = 1` says; the check keeps answering 422 for spaces.
    let constraints = match &field.kind {
        FieldType::String => format!("min_length = 1, max_length = {STRING_MAX_CHARS}"),
        FieldType::Text => format!("min_length = 1, max_length = {TEXT_MAX_CHARS}"),
        FieldType::Date => "format = Date".to_string(),
        FieldType::Uuid => "format = \"uuid\"".to_string(),
        _ => String::new(),
    };
    // Filters: by value, except json, which has no equality both databases agree on.
    let (filter, filter_ref, filter_value) = match &field.kind {
        FieldType::Json => (false, "", String::new()),
        FieldType::String
        | FieldType::Text
        | FieldType::Date
        | FieldType::Uuid
        | FieldType::Ref(_) => (true, "&", "value.clone()".to_string()),
        FieldType::Int | FieldType::Bool => (true, "", "i64::from(value)".into()),
        FieldType::Enum(_) => (true, "", "value.to_string()".into()),
        _ => (true, "", "value".into()),
    };
    let sql_type = match &field.kind {
        FieldType::Int | FieldType::BigInt | FieldType::Bool | FieldType::DateTime => "BIGINT",
        FieldType::Float => "DOUBLE PRECISION",
        _ => "TEXT",
    };
    let mut column_sql = format!("{name} {sql_type}");
    if !optional {
        column_sql.push_str(" NOT NULL");
    }
    match &field.kind {
        FieldType::Bool => column_sql.push_str(&format!(" CHECK ({name} IN (0, 1))")),
        FieldType::Int => column_sql.push_str(&format!(
            " CHECK ({name} BETWEEN {} AND {})",
            i32::MIN,
            i32::MAX
        )),
        FieldType::Enum(variants) => {
            let quoted: Vec<String> = variants.iter().map(|v| format!("'{v}'")).collect();
            column_sql.push_str(&format!(" CHECK ({name} IN ({}))", quoted.join(", ")));
        }
        FieldType::Ref(target) => {
            column_sql.push_str(&format!(" REFERENCES {} (id)", plural(target)))
        }
        _ => {}
    }
    let index = index_name(table, name);
    let index_sql = match field.index {
        Index::None => String::new(),
        Index::Plain => format!("CREATE INDEX {index} ON {table} ({owner_column}, {name});"),
        // Unique within one owner: two users may each have a row with the same value.
        Index::Unique => {
            format!("CREATE UNIQUE INDEX {index} ON {table} ({owner_column}, {name});")
        }
    };
    let to_db = if optional {
        to_db_optional
    } else {
        to_db_required
    };
    let quoted = format!("\"{name}\"");
    let update_rust = if optional {
        format!("Option<Option<{base}>>")
    } else {
        format!("Option<{rust}>")
    };
    json!({
        "name": name,
        "optional": optional,
        "base": base,
        "rust": rust,
        "decl": field_line(4, &format!("pub {name}"), &rust),
        "update_decl": field_line(4, &format!("pub {name}"), &update_rust),
        "filter_decl": field_line(4, &format!("pub {name}"), &format!("Option<{base}>")),
        "read_line": call(12, &format!("{name}: {}", if optional { "read_optional" } else { "read" }), &[
            "row".into(), quoted.clone(), decode.clone(),
        ], "?,"),
        "filter_line": filter.then(|| call(8, &format!("filters.{bind}"), &[quoted.clone(), format!("Some({filter_value})")], ";")),
        "value_line": call(4, &format!("values.{bind}"), &[quoted.clone(), to_db.clone()], ";"),
        "update_schema": format!("Option<{schema_base}>"),
        "constraints": constraints,
        "getter": if optional { "read_optional" } else { "read" },
        "decode": decode,
        "bind": bind,
        "to_db": to_db,
        "check": check,
        "filter": filter,
        "filter_ref": filter_ref,
        "filter_value": filter_value,
        "column_sql": column_sql,
        "index_sql": index_sql,
    })
}

/// PostgreSQL's longest identifier, in bytes: it cuts a longer one (with a notice), so that two
/// indexes of long names on one table could be cut to the same name and the second refused.
const IDENTIFIER_MAX: usize = 63;

/// The name of the index of `column` on `table`: `<table>_<column>`, or, when that is longer
/// than PostgreSQL takes, its start and a hash of the whole, which keeps it unique.
fn index_name(table: &str, column: &str) -> String {
    let name = format!("{table}_{column}");
    if name.len() <= IDENTIFIER_MAX {
        return name;
    }
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    // Names are ASCII (snake_case), so any byte is a character boundary.
    let start = name[..IDENTIFIER_MAX - hash.len() - 1].trim_end_matches('_');
    format!("{start}_{hash}")
}

pub(super) fn enum_name(ty: &str, field: &str) -> String {
    format!("{ty}{}", pascal(field))
}

/// `65_536`: a literal clippy reads without a warning.
fn with_separators(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push('_');
        }
        out.push(digit);
    }
    out
}

/// The statement of `values` that checks `field` (its length, its format) into `errors`; empty
/// for a type any value of which is valid.
/// `indent` columns in: 8 inside the `if let` of an optional field, else 4.
fn check(field: &Field) -> String {
    let name = format!("\"{}\"", field.name);
    let indent = if field.optional { 8 } else { 4 };
    let (check, limit) = match &field.kind {
        FieldType::String => ("check_length", Some(STRING_MAX_CHARS.to_string())),
        FieldType::Text => ("check_length", Some(with_separators(TEXT_MAX_CHARS))),
        FieldType::Date => ("check_date", None),
        FieldType::Uuid => ("check_uuid", None),
        _ => return String::new(),
    };
    let mut args = vec!["&mut errors".to_string(), name, "value".into()];
    args.extend(limit);
    call(indent, &format!("resources::{check}"), &args, ";")
}

/// The struct literal `{head} { name: value, ..base }{tail}`, `indent` columns in, as rustfmt
/// lays it out: on one line when its fields (and `..base`) take at most rustfmt's
/// `struct_lit_width` (18) columns, none spans lines and the line fits, else a field a line.
/// `name: name` is written `name`, as clippy wants (`redundant_field_names`).
pub(super) fn struct_literal(
    indent: usize,
    head: &str,
    fields: &[(String, String)],
    base: Option<&str>,
    tail: &str,
) -> String {
    let mut items: Vec<String> = fields
        .iter()
        .map(|(name, value)| {
            if name == value {
                name.clone()
            } else {
                format!("{name}: {value}")
            }
        })
        .collect();
    // The base comes last, and takes no comma when it ends a line.
    let base = base.map(|base| format!("..{base}"));
    items.extend(base.clone());
    let body = items.join(", ");
    let one_line = format!("{head} {{ {body} }}{tail}");
    if body.len() <= STRUCT_LIT_WIDTH
        && !body.contains('\n')
        && indent + one_line.len() <= MAX_WIDTH
    {
        return one_line;
    }
    let padding = " ".repeat(indent);
    let mut out = format!("{head} {{\n");
    for item in &items {
        let comma = if Some(item) == base.as_ref() { "" } else { "," };
        out.push_str(&format!("{padding}    {item}{comma}\n"));
    }
    out.push_str(&format!("{padding}}}{tail}"));
    out
}

/// A function's signature as rustfmt lays it out: on one line when it fits, else one parameter
/// a line.
pub(super) fn signature(head: &str, params: &[String], ret: &str) -> String {
    signature_at(0, head, params, ret)
}

/// [`signature`] of a function `indent` columns in (a method in an `impl`): its lines after the
/// first carry the indentation.
pub(super) fn signature_at(indent: usize, head: &str, params: &[String], ret: &str) -> String {
    let one_line = format!("{head}({}) -> {ret} {{", params.join(", "));
    if indent + one_line.len() <= MAX_WIDTH {
        return one_line;
    }
    let padding = " ".repeat(indent);
    let mut out = format!("{head}(\n");
    for param in params {
        out.push_str(&format!("{padding}    {param},\n"));
    }
    out.push_str(&format!("{padding}) -> {ret} {{"));
    out
}

/// `Result<(StatusCode, Json<Type>), ApiError>`, the create handler's answer, as rustfmt lays it
/// out in a signature: a tuple type is a list like a call's arguments, kept on
/// one line up to `fn_call_width`; past it, the `Result`'s parameters and the tuple's items
/// each go on a line of their own.
fn created_type(ty: &str) -> String {
    let items = format!("StatusCode, Json<{ty}>");
    if items.len() <= FN_CALL_WIDTH {
        return format!("Result<({items}), ApiError>");
    }
    format!("Result<\n    (\n        StatusCode,\n        Json<{ty}>,\n    ),\n    ApiError,\n>")
}

/// rustfmt's `fn_call_width`: the widest argument list a call keeps on one line.
const FN_CALL_WIDTH: usize = 60;

/// The call `{head}({args}){tail}`, `indent` columns in, as rustfmt lays it out: on one line when
/// it fits and its arguments take at most `fn_call_width` columns, else one argument a line.
/// Long names of fields and resources go through here, so that their statements keep rustfmt's
/// layout whatever their length (each argument must fit on a line of its own).
pub(super) fn call(indent: usize, head: &str, args: &[String], tail: &str) -> String {
    let joined = args.join(", ");
    let one_line = format!("{head}({joined}){tail}");
    if joined.len() <= FN_CALL_WIDTH && indent + one_line.len() <= MAX_WIDTH {
        return one_line;
    }
    let padding = " ".repeat(indent);
    let mut out = format!(
        "{head}(
"
    );
    for arg in args {
        out.push_str(&format!(
            "{padding}    {arg},
"
        ));
    }
    out.push_str(&format!("{padding}){tail}"));
    out
}

/// A field `{name}: {ty},` of a struct, `indent` columns in: when it does not fit on a line,
/// rustfmt puts the type on the next one.
fn field_line(indent: usize, name: &str, ty: &str) -> String {
    let one_line = format!("{name}: {ty},");
    if indent + one_line.len() <= MAX_WIDTH {
        one_line
    } else {
        format!(
            "{name}:
{}    {ty},",
            " ".repeat(indent)
        )
    }
}

/// Items of a comma-separated list, continued over lines of a string literal (`\` at each line's
/// end) so that no line of the generated file is longer than rustfmt's width. `indent` is where
/// the literal's text starts on its first line.
fn continued_string(items: &[String], indent: usize) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for (index, item) in items.iter().enumerate() {
        let last = index + 1 == items.len();
        let piece = if last {
            item.clone()
        } else {
            format!("{item}, ")
        };
        let current = lines.last_mut().expect("one line at least");
        // 4 for the `\` or the `",` closing the line, with some room.
        if !current.is_empty() && indent + current.len() + piece.len() + 4 > MAX_WIDTH {
            lines.push(piece);
        } else {
            current.push_str(&piece);
        }
    }
    let padding = " ".repeat(indent);
    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            out.push_str("\\\n");
            out.push_str(&padding);
        }
        out.push_str(line);
    }
    // A continued line keeps its trailing space before the `\`: `a, \` then `b`.
    out
}

/// `use` declarations of one group, sorted and laid out as rustfmt does: `self` first, then the
/// items in order; a brace list on one line when it fits, else filled over lines.
pub(super) fn use_group(mut uses: Vec<(String, Vec<String>)>) -> String {
    for (_, items) in &mut uses {
        items.sort_by(|a, b| match (a.as_str(), b.as_str()) {
            // `self`, renamed or not, comes first.
            (a, _) if a.starts_with("self") => Ordering::Less,
            (_, b) if b.starts_with("self") => Ordering::Greater,
            _ => a.cmp(b),
        });
    }
    // A path ending in a brace list sorts after the paths that go deeper.
    let key = |(path, items): &(String, Vec<String>)| -> Vec<String> {
        let mut segments: Vec<String> = path.split("::").map(String::from).collect();
        match items.as_slice() {
            [one] if one != "self" => segments.push(one.clone()),
            _ => segments.push(format!("~{}", items.join(","))),
        }
        segments
    };
    uses.sort_by_key(key);
    let mut out = String::new();
    for (path, items) in &uses {
        let line = match items.as_slice() {
            [one] if one != "self" => format!("use {path}::{one};"),
            _ => {
                let one_line = format!("use {path}::{{{}}};", items.join(", "));
                // rustfmt keeps a brace list on one line only up to two columns short of its
                // width (measured: 98 stays, 99 is wrapped).
                if one_line.len() <= MAX_WIDTH - 2 {
                    one_line
                } else {
                    let mut text = format!("use {path}::{{\n");
                    let mut current = String::new();
                    for item in items {
                        if !current.is_empty() && 4 + current.len() + item.len() + 2 > MAX_WIDTH {
                            text.push_str(&format!("    {}\n", current.trim_end()));
                            current.clear();
                        }
                        current.push_str(&format!("{item}, "));
                    }
                    text.push_str(&format!(
                        "    {}\n}};",
                        current
                            .trim_end_matches(' ')
                            .trim_end_matches(',')
                            .to_string()
                            + ","
                    ));
                    text
                }
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_that_does_not_fit_has_a_parameter_a_line() {
        let short = signature("fn f", &["a: i32".into()], "i32");
        assert_eq!(short, "fn f(a: i32) -> i32 {");
        let long = signature(
            "pub async fn update",
            &[
                "db: &Database".into(),
                "owner: &TenantId".into(),
                "id: &str".into(),
                "update: LineItemUpdate".into(),
            ],
            "Result<LineItem, ResourceError>",
        );
        assert!(long.starts_with("pub async fn update(\n    db: &Database,\n"));
        assert!(long.ends_with("\n) -> Result<LineItem, ResourceError> {"));
    }

    #[test]
    fn uses_are_sorted_as_rustfmt_sorts_them() {
        let text = use_group(vec![
            (
                "acme::project".into(),
                vec!["self".into(), "Project".into(), "NewProject".into()],
            ),
            ("acme".into(), vec!["ApiError".into()]),
            ("acme::http".into(), vec!["Path".into(), "JsonBody".into()]),
            ("acme::http::openapi".into(), vec!["ErrorBody".into()]),
            ("acme::auth".into(), vec!["CurrentUser".into()]),
        ]);
        assert_eq!(
            text,
            "use acme::ApiError;\nuse acme::auth::CurrentUser;\nuse acme::http::openapi::ErrorBody;\n\
             use acme::http::{JsonBody, Path};\nuse acme::project::{self, NewProject, Project};"
        );
    }

    #[test]
    fn a_brace_list_of_99_columns_is_wrapped_as_rustfmt_does() {
        let items = [
            "self",
            "NewProject",
            "Project",
            "ProjectPage",
            "ProjectQuery",
            "ProjectUpdate",
        ];
        let items: Vec<String> = items.iter().map(|i| i.to_string()).collect();
        let wrapped = use_group(vec![("resources_core::project".into(), items.clone())]);
        assert_eq!(
            wrapped,
            "use resources_core::project::{\n    self, NewProject, Project, ProjectPage, ProjectQuery, ProjectUpdate,\n};"
        );
        let short = use_group(vec![("acme_core::project".into(), items)]);
        assert!(!short.contains('\n'), "{short}");
    }

    #[test]
    fn an_index_name_is_cut_to_what_postgresql_takes_and_stays_unique() {
        assert_eq!(index_name("tasks", "title"), "tasks_title");
        let table = "quarterly_regional_supplier_performance_categories";
        let first = index_name(table, "supplier_display_name_for_the_quarterly_reports");
        let second = index_name(table, "supplier_display_name_for_the_monthly_reports");
        assert!(first.len() <= IDENTIFIER_MAX && second.len() <= IDENTIFIER_MAX);
        assert!(first.starts_with("quarterly_regional_supplier_performance_categories_sup"));
        assert_ne!(first, second);
    }

    #[test]
    fn separators_every_three_digits() {
        assert_eq!(with_separators(65_536), "65_536");
        assert_eq!(with_separators(255), "255");
        assert_eq!(with_separators(1_000_000), "1_000_000");
    }
}
