//! The back-office pages of a resource (`saaskit generate resource` without `--no-admin`, in a
//! workspace whose admin service has `admin/core`): a searchable list of every owner's rows and a
//! row's page, read-only. What every resource's pages share (two templates and their Rust side)
//! is the admin kit, written with the first resource that has pages and removed with the last;
//! each resource adds its own small file of handlers, its staff reads in its core file, and a
//! link in the panel's navigation.

use anyhow::Result;
use serde_json::{Value, json};

use crate::edit::render::render;
use crate::model::catalog;
use crate::model::manifest::CoreCrate;

use super::render::{MAX_WIDTH, Rendered, Resource, routes_snippet, signature};
use super::spec::{FieldType, Owner, pascal};

/// The module id the lock records the admin kit under.
pub const ADMIN_KIT_ID: &str = "resources/admin";

/// Resource names that would clash, as a module or a type, with what the admin file of the
/// resource defines or imports (`fn list`, `Viewer`, ...).
const CLASHING_NAMES: &[&str] = &[
    "app_state",
    "database",
    "detail_page",
    "fields",
    "get",
    "list",
    "list_page",
    "list_query",
    "nav_link",
    "open_api_router",
    "optional",
    "pages",
    "panel_error",
    "path",
    "query",
    "response",
    "router",
    "routes",
    "show",
    "state",
    "viewer",
    "when",
];

/// Why a resource named `name` cannot have admin pages, if it cannot.
pub fn name_problem(name: &str) -> Option<String> {
    CLASHING_NAMES.contains(&name).then(|| {
        format!(
            "its admin pages' file (`admin_{}.rs`) already uses the name `{name}` or its type; \
             pick another name, or generate it with `--no-admin`",
            super::spec::plural(name)
        )
    })
}

/// Where a resource's pages are: `/admin/resources/<plural>`, under a prefix of their own so that
/// no resource name can take a path of the panel's (`/admin/customers`, `/admin/orgs`, ...).
pub fn admin_path(resource: &Resource) -> String {
    format!("/admin/resources/{}", resource.table())
}

/// The admin service's file of the resource's pages.
pub fn admin_file(resource: &Resource, admin_dir: &str) -> String {
    format!("{admin_dir}/src/admin_{}.rs", resource.table())
}

/// The admin kit: the pages' Rust side and their two templates, in the admin service at
/// `admin_dir`.
pub fn render_admin_kit(core: &CoreCrate, admin_dir: &str) -> Result<Rendered> {
    let pages = render(
        "resource/admin/pages.rs.jinja",
        catalog::template("resource/admin/pages.rs.jinja")?,
        &json!({"core": core.ident}),
    )?;
    let mut files = vec![(format!("{admin_dir}/src/resource_pages.rs"), pages)];
    for template in ["resource_list.html", "resource.html"] {
        files.push((
            format!("{admin_dir}/templates/{template}"),
            catalog::template(&format!("resource/admin/{template}"))?.to_string(),
        ));
    }
    Ok(Rendered {
        files,
        snippets: vec![(
            format!("{admin_dir}/src/main.rs"),
            "mods".into(),
            "mod resource_pages;\n".into(),
        )],
    })
}

/// The resource's pages in the admin service at `admin_dir`: its file, its module and routes in
/// `main.rs`, its link in the navigation.
pub fn render_admin(resource: &Resource, core: &CoreCrate, admin_dir: &str) -> Result<Rendered> {
    let module = format!("admin_{}", resource.table());
    let text = render(
        "resource/admin/page.rs.jinja",
        catalog::template("resource/admin/page.rs.jinja")?,
        &page_context(resource, core),
    )?;
    Ok(Rendered {
        files: vec![(admin_file(resource, admin_dir), text)],
        snippets: vec![
            (
                format!("{admin_dir}/src/main.rs"),
                "mods".into(),
                format!("mod {module};\n"),
            ),
            (
                format!("{admin_dir}/src/main.rs"),
                "routes".into(),
                routes_snippet("pages", &module),
            ),
            (
                format!("{admin_dir}/src/panel.rs"),
                "nav".into(),
                nav_snippet(&module),
            ),
        ],
    })
}

/// The statements of the panel's `nav` that add the link of the pages in `module`. The link comes
/// from the pages' file: its label and path would make a line too long for one, which rustfmt
/// and prettyplease (which lays out snippets) break differently. Two short statements instead,
/// each on one line for both (prettyplease keeps at most 85 columns, past the indentation).
fn nav_snippet(module: &str) -> String {
    format!(
        "let link = crate::{module}::link();\nlet links: Vec<NavLink> = links.into_iter().chain([link]).collect();\n"
    )
}

/// `Line items`: the list's title and the navigation's label.
fn title(resource: &Resource) -> String {
    let plural = resource.table().replace('_', " ");
    format!("{}{}", plural[..1].to_uppercase(), &plural[1..])
}

/// What the core file's staff reads add to its template context (`admin` false: nothing).
pub fn core_context(resource: &Resource) -> Value {
    if !resource.admin {
        return json!({"admin": false});
    }
    let ty = pascal(&resource.name);
    let searched: Vec<String> = resource
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldType::String | FieldType::Text))
        .map(|f| format!("\"{}\"", f.name))
        .collect();
    let db = "db: &Database".to_string();
    let staff = "staff: &Staff".to_string();
    json!({
        "admin": true,
        "searched": string_list("const SEARCHED: &[&str] = &[", &searched, "];"),
        "sig_staff_search": signature(
            "pub async fn staff_search",
            &[db.clone(), staff.clone(), "q: Option<&str>".into(), "page: PageQuery".into()],
            &format!("Result<admin::Page<Owned<{ty}>>, ApiError>"),
        ),
        "sig_staff_get": signature(
            "pub async fn staff_get",
            &[db, staff, "id: &str".into()],
            &format!("Result<Owned<{ty}>, ApiError>"),
        ),
        "owned_call": super::render::call(
            4,
            "resources::owned",
            &["row".into(), "&TABLE".into(), format!("{ty}::from_row")],
            "",
        ),
        "sig_owned": signature(
            "fn owned",
            &["row: &AnyRow".into()],
            &format!("Result<Owned<{ty}>, sqlx::Error>"),
        ),
    })
}

/// The `use` lines the core file needs for its staff reads: (path, items).
pub fn core_uses(resource: &Resource) -> Vec<(String, Vec<String>)> {
    if !resource.admin {
        return Vec::new();
    }
    vec![(
        "crate::admin".into(),
        vec![
            "self".into(),
            "PageQuery".into(),
            "Permission".into(),
            "Staff".into(),
        ],
    )]
}

/// `head` items `tail` on one line when it fits, else one item a line, as rustfmt lays out a
/// `const` array.
fn string_list(head: &str, items: &[String], tail: &str) -> String {
    let one_line = format!("{head}{}{tail}", items.join(", "));
    if one_line.len() <= MAX_WIDTH && items.join(", ").len() <= 60 {
        return one_line;
    }
    let mut out = format!("{head}\n");
    for item in items {
        out.push_str(&format!("    {item},\n"));
    }
    out.push_str(tail);
    out
}

/// What `page.rs.jinja` sees.
fn page_context(resource: &Resource, core: &CoreCrate) -> Value {
    let name = resource.name.as_str();
    let ty = pascal(name);
    let org = resource.owner == Owner::Org;
    // The row is `row` whatever the resource's name, so that a line's length depends only on
    // the field's.
    let id = tuple_line("id", "row.id.clone()");
    let mut fields: Vec<String> = vec![id];
    fields.extend(resource.fields.iter().map(|f| {
        let value = format!("row.{}", f.name);
        let shown = match (&f.kind, f.optional) {
            (
                FieldType::String
                | FieldType::Text
                | FieldType::Date
                | FieldType::Uuid
                | FieldType::Ref(_),
                false,
            ) => format!("{value}.clone()"),
            (FieldType::DateTime, false) => format!("when({value})"),
            (_, false) => format!("{value}.to_string()"),
            (
                FieldType::String
                | FieldType::Text
                | FieldType::Date
                | FieldType::Uuid
                | FieldType::Ref(_)
                | FieldType::Json,
                true,
            ) => format!("optional({value}.as_ref())"),
            (FieldType::DateTime, true) => format!("optional({value}.map(when))"),
            (_, true) => format!("optional({value})"),
        };
        tuple_line(&f.name, &shown)
    }));
    for time in ["created_at", "updated_at"] {
        fields.push(tuple_line(time, &format!("when(row.{time})")));
    }
    let mut resource_pages = vec![
        "ListQuery".to_string(),
        "Pages".into(),
        "detail_page".into(),
        "list_page".into(),
    ];
    if resource.fields.iter().any(|f| f.optional) {
        resource_pages.push("optional".into());
    }
    let searchable = resource
        .fields
        .iter()
        .any(|f| matches!(f.kind, FieldType::String | FieldType::Text));
    let uses = super::render::use_group(vec![
        (format!("{}::db", core.ident), vec!["Database".into()]),
        (
            format!("{}::{name}", core.ident),
            vec!["self as repository".into(), ty.clone()],
        ),
    ]);
    let crate_uses = super::render::use_group(vec![
        (
            "crate::panel".into(),
            vec![
                "NavLink".into(),
                "PanelError".into(),
                "Viewer".into(),
                "when".into(),
            ],
        ),
        ("crate::resource_pages".into(), resource_pages),
        ("crate::state".into(), vec!["AppState".into()]),
    ]);
    json!({
        "name": name,
        "type": ty,
        "title": title(resource),
        "label": name.replace('_', " "),
        "plural_label": resource.table().replace('_', " "),
        "path": admin_path(resource),
        "owner_label": if org { "Organization" } else { "User" },
        "owner_path": if org { "/admin/orgs" } else { "/admin/customers" },
        "owner_noun": if org { "organization" } else { "user" },
        // Rust's literal (minijinja would write `True`).
        "searchable": if searchable { "true" } else { "false" },
        "core_uses": uses,
        "crate_uses": crate_uses,
        "sig_fields": signature(
            "fn fields",
            &[format!("row: &{ty}")],
            "Vec<(&'static str, String)>",
        ),
        "fields": fields,
    })
}

/// `("column", value),` in a `vec!` of one item a line, or the tuple over lines when it does
/// not fit or its items take more than rustfmt's `fn_call_width` (60), as rustfmt lays it out.
fn tuple_line(column: &str, value: &str) -> String {
    let line = format!("        (\"{column}\", {value}),");
    if line.len() <= MAX_WIDTH && column.len() + 4 + value.len() <= 60 {
        line
    } else {
        format!("        (\n            \"{column}\",\n            {value},\n        ),")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_tuple_is_laid_out_over_lines() {
        assert_eq!(
            tuple_line("title", "note.title.clone()"),
            "        (\"title\", note.title.clone()),"
        );
        let long = "x".repeat(90);
        assert!(tuple_line("title", &long).starts_with("        (\n            \"title\",\n"));
    }

    #[test]
    fn the_snippets_of_the_longest_names_keep_their_lines_through_prettyplease() {
        // The longest module names: a resource of 48 characters, its pages' of 56.
        let name = format!("{}y", "x".repeat(47));
        let module = format!("admin_{}", super::super::spec::plural(&name));
        assert_eq!(module.len(), 56);
        for snippet in [
            routes_snippet("routes", &name),
            routes_snippet("pages", &module),
            nav_snippet(&module),
        ] {
            let laid_out = crate::edit::inject::format_rust_snippet(&snippet).unwrap();
            assert_eq!(laid_out, snippet);
            assert!(snippet.lines().all(|line| 4 + line.len() <= MAX_WIDTH));
        }
    }

    #[test]
    fn a_short_list_stays_on_one_line() {
        let items = vec!["\"title\"".to_string()];
        assert_eq!(
            string_list("const SEARCHED: &[&str] = &[", &items, "];"),
            "const SEARCHED: &[&str] = &[\"title\"];"
        );
        let many: Vec<String> = (0..8).map(|i| format!("\"field_{i}\"")).collect();
        let text = string_list("const SEARCHED: &[&str] = &[", &many, "];");
        assert!(text.starts_with("const SEARCHED: &[&str] = &[\n    \"field_0\",\n"));
    }
}
