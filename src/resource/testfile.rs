//! The test file a resource gets in the generated workspace (`crates/core/src/<name>/tests.rs`):
//! its repository against a real database, create, get, list, a filter by each field, a partial
//! update, delete, and another owner's rows not found. What differs by field type (a sample
//! value, how a filter is written) is decided here; `templates/resource/tests.rs.jinja` lays it
//! out as rustfmt would.

use anyhow::Result;
use serde_json::{Value, json};

use crate::edit::render::render;
use crate::model::catalog;
use crate::model::manifest::CoreCrate;

use super::render::{Resource, enum_name, signature, struct_literal};
use super::spec::{Field, FieldType, Owner, pascal};

/// The test file's path and text.
pub fn render_tests(resource: &Resource, core: &CoreCrate) -> Result<(String, String)> {
    let ty = pascal(&resource.name);
    let org = resource.owner == Owner::Org;
    let owner_type = if org { "TenantId" } else { "User" };
    // Without references a sample needs neither the database nor the owner.
    let uses_owner = resource
        .fields
        .iter()
        .any(|f| matches!(&f.kind, FieldType::Ref(target) if *target != resource.name));
    let (db, owner) = if uses_owner {
        ("db: &Database", format!("owner: &{owner_type}"))
    } else {
        ("_db: &Database", format!("_owner: &{owner_type}"))
    };
    let fields: Vec<Value> = resource
        .fields
        .iter()
        .map(|f| field(f, resource, &ty))
        .collect();
    let text = |f: &Value, key: &str| f[key].as_str().unwrap_or_default().to_string();
    // An update of a resource's only field names every field: `..Default::default()` would be
    // clippy's `needless_update`.
    let rest = (fields.len() > 1).then_some("Default::default()");
    let update = |var: &str, field: &Value, value: String| {
        let head = format!("let {var} = {ty}Update");
        struct_literal(4, &head, &[(text(field, "name"), value)], rest, ";")
    };
    let first = fields.first().map(|f| {
        let value = format!("Some(value{})", text(f, "clone"));
        update("change", f, value)
    });
    let optional = fields.iter().find(|f| f["optional"] == true);
    let clear = optional.map(|f| update("clear", f, "Some(None)".into()));
    let context = json!({
        "name": resource.name,
        "type": ty,
        "label": resource.name.replace('_', " "),
        "org": org,
        "owner_type": owner_type,
        "fields": fields,
        "first": fields.first(),
        "any_filter": fields.iter().any(|f| !f["filter"].is_null()),
        "optional": optional,
        "change": first,
        "clear": clear,
        "sample": struct_literal(
            4,
            &format!("New{ty}"),
            &fields
                .iter()
                .map(|f| (text(f, "name"), text(f, "sample")))
                .collect::<Vec<_>>(),
            None,
            "",
        ),
        "sig_sample": signature(
            "pub(crate) async fn sample",
            &[db.into(), owner, "n: i32".into()],
            &format!("New{ty}"),
        ),
        "sig_created": signature(
            "pub(crate) async fn created",
            &["db: &Database".into(), format!("owner: &{owner_type}"), "n: i32".into()],
            &ty,
        ),
    });
    let text = render(
        "resource/tests.rs.jinja",
        catalog::template("resource/tests.rs.jinja")?,
        &context,
    )?;
    Ok((format!("{}/src/{}/tests.rs", core.dir, resource.name), text))
}

/// What the template sees of one field: its `n`th sample value, and whether two samples differ.
fn field(field: &Field, resource: &Resource, ty: &str) -> Value {
    let name = field.name.as_str();
    let mut distinct = true;
    // Strings are cloned where they are used twice, numbers, flags and enums are copied.
    let mut copy = true;
    let sample = match &field.kind {
        // Not named after the field: a long name would make the line longer than rustfmt keeps.
        FieldType::String | FieldType::Text => {
            copy = false;
            "format!(\"sample {n}\")".to_string()
        }
        FieldType::Int => "n".to_string(),
        FieldType::BigInt => "i64::from(n) * 10_000_000_000".to_string(),
        FieldType::DateTime => "1_765_000_000 + i64::from(n)".to_string(),
        FieldType::Float => "f64::from(n) + 0.5".to_string(),
        FieldType::Bool => "n % 2 == 1".to_string(),
        FieldType::Date => {
            copy = false;
            "format!(\"2026-01-{n:02}\")".to_string()
        }
        FieldType::Uuid => {
            copy = false;
            "uuid::Uuid::now_v7().to_string()".to_string()
        }
        FieldType::Json => {
            copy = false;
            "serde_json::json!({ \"n\": n })".to_string()
        }
        FieldType::Enum(variants) => {
            let name = enum_name(ty, name);
            match variants.as_slice() {
                [only] => {
                    distinct = false;
                    format!("{name}::{}", pascal(only))
                }
                // Laid out as rustfmt does in the struct literal of `sample`.
                [first, second, ..] => format!(
                    "match n % 2 {{\n            0 => {name}::{},\n            _ => {name}::{},\n        }}",
                    pascal(first),
                    pascal(second),
                ),
                [] => String::new(),
            }
        }
        FieldType::Ref(target) if *target == resource.name => {
            // A row cannot refer to itself before it exists: the samples refer to none.
            distinct = false;
            "None".to_string()
        }
        // Created before the sample's literal (`referenced`), where the line fits whatever the
        // names.
        FieldType::Ref(_) => {
            copy = false;
            name.to_string()
        }
    };
    let self_ref = matches!(&field.kind, FieldType::Ref(t) if *t == resource.name);
    let sample = if field.optional && !self_ref {
        format!("Some({sample})")
    } else {
        sample
    };
    let clone = if copy { "" } else { ".clone()" };
    // The value is taken from `first` on a line of its own (`value`), which fits whatever the
    // field's name.
    let filter = match (field.optional, name) {
        // `value: value` is `value` (clippy's `redundant_field_names`).
        (true, "value") => "value".to_string(),
        (true, _) => format!("{name}: value"),
        (false, _) => format!("{name}: Some(value)"),
    };
    let referenced = match &field.kind {
        FieldType::Ref(target) if !self_ref => Some(format!(
            "    let row = crate::{target}::tests::created(db, owner, n);\n    let {name} = row.await.id;"
        )),
        _ => None,
    };
    json!({
        "name": name,
        "referenced": referenced,
        "optional": field.optional,
        "sample": sample,
        "clone": clone,
        // json has no filter; a self-reference's samples are all `None`.
        "filter": (field.kind != FieldType::Json && distinct).then_some(filter),
    })
}
