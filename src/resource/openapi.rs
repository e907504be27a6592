//! A resource's part of its service's committed OpenAPI document
//! (`services/<svc>/openapi/resource-<name>.json`, docs/openapi.md): the operations and schemas
//! the service serves for it, so that `openapi --check` passes right after `generate`.
//!
//! The part is read off the two rendered Rust files, the way utoipa reads them when the service
//! is compiled: the `#[utoipa::path(...)]` annotations of the handlers, the `ToSchema` and
//! `IntoParams` types of the core file with their doc comments and `#[schema]`/`#[serde]`
//! attributes. The templates stay the one source of what is documented; only the constructs
//! they use are understood, and anything else is an error rather than a wrong document.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};

/// The part of `core` (the resource's file in the core crate) and `service` (its handlers), as
/// the JSON text written to the part file.
pub fn part(core: &str, service: &str) -> Result<String> {
    let items = items(core)?;
    let mut schemas = Map::new();
    for item in &items {
        if item.derives("ToSchema") {
            schemas.insert(item.name.clone(), item.schema()?);
        }
    }
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for operation in annotations(service)? {
        let (method, path, value) = operation.to_json(&items)?;
        paths.entry(path).or_default().insert(method, value);
    }
    let part = json!({
        "paths": paths,
        "components": {"schemas": schemas},
    });
    Ok(format!("{}\n", serde_json::to_string_pretty(&part)?))
}

/// A struct or enum of the core file, with what utoipa reads of it.
#[derive(Debug)]
struct Item {
    name: String,
    docs: Vec<String>,
    attrs: Vec<String>,
    is_enum: bool,
    /// Fields (or variants, with an empty type).
    members: Vec<Member>,
}

#[derive(Debug)]
struct Member {
    name: String,
    ty: String,
    docs: Vec<String>,
    attrs: Vec<String>,
}

impl Item {
    fn derives(&self, name: &str) -> bool {
        self.attrs.iter().any(|attr| {
            attr.starts_with("#[derive(")
                && attr
                    .trim_start_matches("#[derive(")
                    .trim_end_matches(")]")
                    .split(", ")
                    .any(|derived| derived == name)
        })
    }

    fn has_attr(&self, attr: &str) -> bool {
        self.attrs.iter().any(|a| a == attr)
    }

    fn schema(&self) -> Result<Value> {
        let mut schema = Map::new();
        if let Some(docs) = docs_text(&self.docs) {
            schema.insert("description".into(), docs.into());
        }
        if self.is_enum {
            if !self.has_attr("#[serde(rename_all = \"snake_case\")]") {
                bail!(
                    "enum `{}`: only `rename_all = \"snake_case\"` is understood",
                    self.name
                );
            }
            let values: Vec<Value> = self.members.iter().map(|v| snake(&v.name).into()).collect();
            schema.insert("enum".into(), values.into());
            schema.insert("type".into(), "string".into());
            return Ok(schema.into());
        }
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in &self.members {
            let ty = field.documented_type();
            let (inner, optional) = unwrap_option(ty);
            let mut property = type_schema(inner)?;
            field.constrain(&mut property)?;
            if let Some(docs) = docs_text(&field.docs) {
                property.insert("description".into(), docs.into());
            }
            let property = if optional {
                nullable(property)
            } else {
                property.into()
            };
            properties.insert(field.name.clone(), property);
            let defaulted = field.attrs.iter().any(|a| a.starts_with("#[serde(default"));
            if !optional && !defaulted && !unwrap_option(&field.ty).1 {
                required.push(Value::from(field.name.clone()));
            }
        }
        if self.has_attr("#[serde(deny_unknown_fields)]") {
            schema.insert("additionalProperties".into(), false.into());
        }
        schema.insert("properties".into(), properties.into());
        if !required.is_empty() {
            schema.insert("required".into(), required.into());
        }
        schema.insert("type".into(), "object".into());
        Ok(schema.into())
    }

    /// The query parameters of an `IntoParams` struct, in field order.
    fn query_parameters(&self) -> Result<Vec<Value>> {
        if !self.has_attr("#[into_params(parameter_in = Query)]") {
            bail!("`{}`: only query parameters are understood", self.name);
        }
        self.members
            .iter()
            .map(|field| {
                let (inner, optional) = unwrap_option(field.documented_type());
                let mut schema = type_schema(inner)?;
                field.constrain(&mut schema)?;
                let mut parameter = Map::new();
                if let Some(docs) = docs_text(&field.docs) {
                    parameter.insert("description".into(), docs.into());
                }
                parameter.insert("in".into(), "query".into());
                parameter.insert("name".into(), field.name.clone().into());
                parameter.insert("required".into(), (!optional).into());
                parameter.insert("schema".into(), schema.into());
                Ok(parameter.into())
            })
            .collect()
    }
}

impl Member {
    /// The entries of its `#[schema(...)]`, as (key, value).
    fn schema_attr(&self) -> Vec<(&str, &str)> {
        self.attrs
            .iter()
            .filter_map(|a| a.strip_prefix("#[schema(")?.strip_suffix(")]"))
            .flat_map(top_level)
            .filter_map(|entry| entry.split_once(" = "))
            .collect()
    }

    /// The type the schema shows: `#[schema(value_type = T)]` when the field has it.
    fn documented_type(&self) -> &str {
        self.schema_attr()
            .into_iter()
            .find_map(|(key, value)| (key == "value_type").then_some(value))
            .unwrap_or(&self.ty)
    }

    /// Adds the lengths and format of its `#[schema(...)]` to `schema`.
    fn constrain(&self, schema: &mut Map<String, Value>) -> Result<()> {
        for (key, value) in self.schema_attr() {
            let number = || -> Result<Value> {
                let digits = value.replace('_', "");
                Ok(digits
                    .parse::<u64>()
                    .map_err(|_| anyhow!("`{key} = {value}`"))?
                    .into())
            };
            match key {
                "value_type" => {}
                "min_length" => _ = schema.insert("minLength".into(), number()?),
                "max_length" => _ = schema.insert("maxLength".into(), number()?),
                // A known format is a variant of utoipa's `KnownFormat`, named in lowercase; a
                // string is written as it is.
                "format" => {
                    let format = match value.strip_prefix('"') {
                        Some(custom) => custom.trim_end_matches('"').to_string(),
                        None => value.to_lowercase(),
                    };
                    schema.insert("format".into(), format.into());
                }
                _ => bail!(
                    "field `{}`: `#[schema({key} = ...)]` is not understood",
                    self.name
                ),
            }
        }
        Ok(())
    }
}

/// The structs and enums of a Rust file laid out by rustfmt, with their doc comments and
/// attributes (one a line, as the templates write them).
fn items(text: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut docs = Vec::new();
    let mut attrs = Vec::new();
    let mut current: Option<Item> = None;
    // A field whose type does not fit on its line has it on the next (`pub name:` then the type).
    let mut field_start: Option<String> = None;
    for line in text.lines() {
        let joined = field_start
            .take()
            .map(|start| format!("{start} {}", line.trim()));
        let trimmed = joined.as_deref().unwrap_or(line.trim());
        if current.is_some() && trimmed.starts_with("pub ") && trimmed.ends_with(':') {
            field_start = Some(trimmed.to_string());
            continue;
        }
        if let Some(doc) = trimmed.strip_prefix("///") {
            docs.push(doc.to_string());
            continue;
        }
        if trimmed.starts_with("#[") {
            attrs.push(trimmed.to_string());
            continue;
        }
        if current.is_some() && trimmed == "}" {
            items.extend(current.take());
        } else if let Some(item) = current.as_mut() {
            if let Some(field) = trimmed.strip_prefix("pub ") {
                let (name, ty) = field
                    .trim_end_matches(',')
                    .split_once(": ")
                    .ok_or_else(|| anyhow!("`{}`: cannot read field `{trimmed}`", item.name))?;
                item.members.push(Member {
                    name: name.to_string(),
                    ty: ty.to_string(),
                    docs: std::mem::take(&mut docs),
                    attrs: std::mem::take(&mut attrs),
                });
            } else if item.is_enum && !trimmed.is_empty() {
                item.members.push(Member {
                    name: trimmed.trim_end_matches(',').to_string(),
                    ty: String::new(),
                    docs: std::mem::take(&mut docs),
                    attrs: std::mem::take(&mut attrs),
                });
            }
        } else {
            let head = trimmed
                .strip_prefix("pub struct ")
                .map(|rest| (rest, false))
                .or_else(|| trimmed.strip_prefix("pub enum ").map(|rest| (rest, true)));
            if let Some((rest, is_enum)) = head.filter(|(rest, _)| rest.ends_with(" {")) {
                current = Some(Item {
                    name: rest.trim_end_matches(" {").to_string(),
                    docs: std::mem::take(&mut docs),
                    attrs: std::mem::take(&mut attrs),
                    is_enum,
                    members: Vec::new(),
                });
            }
        }
        docs.clear();
        attrs.clear();
    }
    if let Some(item) = current {
        bail!("`{}` has no end", item.name);
    }
    Ok(items)
}

/// A handler's `#[utoipa::path(...)]` and the doc comment above it.
#[derive(Debug)]
struct Annotation {
    docs: Vec<String>,
    /// Its lines, from `#[utoipa::path(` to `)]` excluded.
    lines: Vec<String>,
}

fn annotations(text: &str) -> Result<Vec<Annotation>> {
    let mut found = Vec::new();
    let mut docs = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(doc) = line.strip_prefix("///") {
            docs.push(doc.to_string());
            continue;
        }
        if line.starts_with("#[utoipa::path(") {
            let mut body = vec![line.to_string()];
            for next in lines.by_ref() {
                if next == ")]" {
                    break;
                }
                body.push(next.to_string());
            }
            found.push(Annotation {
                docs: std::mem::take(&mut docs),
                lines: body,
            });
        }
        docs.clear();
    }
    Ok(found)
}

impl Annotation {
    /// (method, path, operation) as utoipa writes it.
    fn to_json(&self, items: &[Item]) -> Result<(String, String, Value)> {
        let head = &self.lines[0];
        let method = head
            .trim_start_matches("#[utoipa::path(")
            .split(',')
            .next()
            .unwrap_or_default()
            .to_string();
        let path = quoted_after(head, "path = ")?;
        let mut operation = Map::new();
        operation.insert(
            "operationId".into(),
            quoted_after(head, "operation_id = ")?.into(),
        );
        operation.insert("tags".into(), json!([quoted_after(head, "tag = ")?]));
        let mut responses = Map::new();
        let mut in_responses = false;
        for line in &self.lines[1..] {
            let line = line.trim();
            if in_responses {
                if line == ")," {
                    in_responses = false;
                } else {
                    let (status, response) = response(line)?;
                    responses.insert(status, response);
                }
            } else if line == "responses(" {
                in_responses = true;
            } else if let Some(list) = line
                .strip_prefix("params(")
                .and_then(|rest| rest.strip_suffix("),"))
            {
                let mut parameters = Vec::new();
                for entry in top_level(list) {
                    if entry.starts_with('(') {
                        parameters.push(path_parameter(entry)?);
                    } else {
                        let item = items
                            .iter()
                            .find(|item| item.name == entry)
                            .ok_or_else(|| anyhow!("params: no type `{entry}` in the core file"))?;
                        parameters.extend(item.query_parameters()?);
                    }
                }
                operation.insert("parameters".into(), parameters.into());
            } else if let Some(body) = line
                .strip_prefix("request_body = ")
                .and_then(|rest| rest.strip_suffix(','))
            {
                operation.insert(
                    "requestBody".into(),
                    json!({"content": {"application/json": {"schema": reference(body)}}, "required": true}),
                );
            } else if let Some(list) = line
                .strip_prefix("security(")
                .and_then(|rest| rest.strip_suffix("),"))
            {
                let schemes = top_level(list)
                    .iter()
                    .map(|entry| {
                        let name = quoted_after(entry, "(")?;
                        Ok(json!({ name: [] }))
                    })
                    .collect::<Result<Vec<_>>>()?;
                operation.insert("security".into(), schemes.into());
            } else {
                bail!("{path}: cannot read `{line}` of its `#[utoipa::path]`");
            }
        }
        operation.insert("responses".into(), responses.into());
        // utoipa: the doc comment's first paragraph is the summary, the others the description.
        let mut paragraphs = self.docs.split(|line| line.trim().is_empty());
        if let Some(summary) = paragraphs.next().and_then(docs_text) {
            operation.insert("summary".into(), summary.into());
        }
        let rest: Vec<String> = paragraphs.filter_map(docs_text).collect();
        if !rest.is_empty() {
            operation.insert("description".into(), rest.join("\n\n").into());
        }
        Ok((method, path, operation.into()))
    }
}

/// `(status = 200, description = "...", body = Type),`
fn response(line: &str) -> Result<(String, Value)> {
    let status = line
        .strip_prefix("(status = ")
        .and_then(|rest| rest.split(',').next())
        .ok_or_else(|| anyhow!("cannot read the response `{line}`"))?;
    let mut response = Map::new();
    response.insert(
        "description".into(),
        quoted_after(line, "description = ")?.into(),
    );
    if let Some((_, body)) = line.rsplit_once(", body = ") {
        let body = body.trim_end_matches("),");
        response.insert(
            "content".into(),
            json!({"application/json": {"schema": reference(body)}}),
        );
    }
    Ok((status.to_string(), response.into()))
}

/// `("org" = String, Path, description = "...")`
fn path_parameter(entry: &str) -> Result<Value> {
    let name = quoted_after(entry, "(")?;
    if !entry.contains(" = String, Path") {
        bail!("cannot read the parameter `{entry}`: only `String, Path` ones are understood");
    }
    let mut parameter = Map::new();
    if entry.contains("description = ") {
        parameter.insert(
            "description".into(),
            quoted_after(entry, "description = ")?.into(),
        );
    }
    parameter.insert("in".into(), "path".into());
    parameter.insert("name".into(), name.into());
    parameter.insert("required".into(), true.into());
    parameter.insert("schema".into(), json!({"type": "string"}));
    Ok(parameter.into())
}

/// The string literal right after `key` in `text`.
fn quoted_after(text: &str, key: &str) -> Result<String> {
    let start = text
        .find(&format!("{key}\""))
        .with_context(|| format!("no `{key}\"...\"` in `{text}`"))?
        + key.len()
        + 1;
    let mut out = String::new();
    let mut chars = text[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Ok(out),
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    bail!("an unterminated string in `{text}`")
}

/// The entries of a comma-separated list, commas inside parentheses and strings excepted.
fn top_level(list: &str) -> Vec<&str> {
    let mut entries = Vec::new();
    let (mut depth, mut quoted, mut start) = (0, false, 0);
    for (at, c) in list.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                entries.push(list[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    entries.push(list[start..].trim());
    entries.retain(|entry| !entry.is_empty());
    entries
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `Option<T>` is `(T, true)`.
fn unwrap_option(ty: &str) -> (&str, bool) {
    match ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        Some(inner) => (inner, true),
        None => (ty, false),
    }
}

/// The schema utoipa gives a Rust type (or a `value_type`).
fn type_schema(ty: &str) -> Result<Map<String, Value>> {
    let schema = match ty {
        "String" => json!({"type": "string"}),
        "i32" => json!({"type": "integer", "format": "int32"}),
        "i64" => json!({"type": "integer", "format": "int64"}),
        "f64" => json!({"type": "number", "format": "double"}),
        "bool" => json!({"type": "boolean"}),
        "Object" => json!({"type": "object"}),
        // Any JSON value: no type at all, not even `null` added when optional.
        "Value" | "serde_json::Value" => json!({}),
        _ => match ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
            Some(inner) => json!({"type": "array", "items": type_schema(inner)?}),
            None if ty.chars().all(|c| c.is_ascii_alphanumeric())
                && ty.starts_with(|c: char| c.is_ascii_uppercase()) =>
            {
                reference(ty)
            }
            None => bail!("no schema for the type `{ty}`"),
        },
    };
    match schema {
        Value::Object(map) => Ok(map),
        _ => unreachable!("every schema above is an object"),
    }
}

/// `schema` or `null`: a type gets `"null"` among its types, a reference a `oneOf`.
fn nullable(mut schema: Map<String, Value>) -> Value {
    if schema.contains_key("$ref") {
        return json!({"oneOf": [{"type": "null"}, schema]});
    }
    if let Some(ty) = schema.remove("type") {
        schema.insert("type".into(), json!([ty, "null"]));
    }
    schema.into()
}

/// Doc comment lines as utoipa joins them: the common indentation removed, `\n` between lines.
fn docs_text(lines: &[String]) -> Option<String> {
    let lines: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
    let indent = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()?;
    let text: Vec<&str> = lines
        .iter()
        .map(|l| if l.is_empty() { *l } else { &l[indent..] })
        .collect();
    Some(text.join("\n"))
}

/// serde's `rename_all = "snake_case"` of a variant name.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (index, c) in name.char_indices() {
        if c.is_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORE: &str = r#"
/// The values of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoteStatus {
    Open,
    InProgress,
}

/// A note, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Note {
    pub id: String,
    pub due: Option<String>,
    pub status: Option<NoteStatus>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub extra: Option<serde_json::Value>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A partial update: the fields present change, the others stay; `null` clears an
/// optional field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteUpdate {
    #[serde(default, deserialize_with = "resources::nullable")]
    #[schema(value_type = Option<String>, format = Date)]
    pub due: Option<Option<String>>,
    #[schema(min_length = 1, max_length = 65_536)]
    pub body: Option<String>,
    pub weight: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NoteQuery {
    /// How many at most.
    pub limit: Option<i64>,
    pub status: Option<NoteStatus>,
}
"#;

    const SERVICE: &str = r#"
/// A page of the notes.
#[utoipa::path(get, path = "/api/notes", tag = "notes", operation_id = "list_notes",
    params(("org" = String, Path, description = "The organization's id"), NoteQuery),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "A page, of notes", body = Note),
        (status = 204, description = "None (`x`, y)"),
    ),
)]
async fn list() {}
"#;

    #[test]
    fn the_part_is_what_utoipa_derives_from_the_sources() {
        let part: Value = serde_json::from_str(&part(CORE, SERVICE).unwrap()).unwrap();
        let schemas = &part["components"]["schemas"];
        assert_eq!(
            schemas["NoteStatus"],
            json!({"description": "The values of `status`.", "enum": ["open", "in_progress"], "type": "string"})
        );
        assert_eq!(
            schemas["Note"],
            json!({
                "description": "A note, as the API returns it.",
                "properties": {
                    "id": {"type": "string"},
                    "due": {"type": ["string", "null"]},
                    "status": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/NoteStatus"}]},
                    "data": {"type": "object"},
                    "extra": {},
                    "created_at": {"description": "Unix seconds.", "format": "int64", "type": "integer"},
                },
                "required": ["id", "data", "created_at"],
                "type": "object",
            })
        );
        assert_eq!(
            schemas["NoteUpdate"],
            json!({
                "additionalProperties": false,
                "description": "A partial update: the fields present change, the others stay; `null` clears an\noptional field.",
                "properties": {
                    "due": {"format": "date", "type": ["string", "null"]},
                    "body": {"maxLength": 65536, "minLength": 1, "type": ["string", "null"]},
                    "weight": {"format": "double", "type": ["number", "null"]},
                },
                "type": "object",
            })
        );
        assert!(schemas.get("NoteQuery").is_none());
        let list = &part["paths"]["/api/notes"]["get"];
        assert_eq!(list["operationId"], "list_notes");
        assert_eq!(list["summary"], "A page of the notes.");
        assert_eq!(list["tags"], json!(["notes"]));
        assert_eq!(list["security"], json!([{"bearer": []}, {"session": []}]));
        assert_eq!(
            list["parameters"],
            json!([
                {"description": "The organization's id", "in": "path", "name": "org", "required": true, "schema": {"type": "string"}},
                {"description": "How many at most.", "in": "query", "name": "limit", "required": false, "schema": {"format": "int64", "type": "integer"}},
                {"in": "query", "name": "status", "required": false, "schema": {"$ref": "#/components/schemas/NoteStatus"}},
            ])
        );
        assert_eq!(
            list["responses"],
            json!({
                "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Note"}}}, "description": "A page, of notes"},
                "204": {"description": "None (`x`, y)"},
            })
        );
    }

    #[test]
    fn what_is_not_understood_is_an_error_not_a_wrong_document() {
        let odd = CORE.replace("pub weight: Option<f64>", "pub weight: Option<u8>");
        let error = part(&odd, SERVICE).unwrap_err().to_string();
        assert!(error.contains("no schema for the type `u8`"), "{error}");
        let odd = SERVICE.replace("security(", "servers(");
        let error = part(CORE, &odd).unwrap_err().to_string();
        assert!(error.contains("cannot read `servers("), "{error}");
    }

    #[test]
    fn variants_are_renamed_as_serde_renames_them() {
        assert_eq!(snake("InProgress"), "in_progress");
        assert_eq!(snake("V2Beta"), "v2_beta");
        assert_eq!(snake("Open"), "open");
    }
}
