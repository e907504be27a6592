//! A resource as the user describes it on the command line: its name and its fields
//! (`title:string`, `due:date?`, `status:enum(open|done):index`, `project:ref`), parsed into a
//! typed model that the templates render from. Pure functions: nothing here reads the workspace
//! (the clashes with what a workspace has are checked in `crate::workspace::resources`).

use std::fmt;

/// A field's type, as written after the field's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// One line of at most [`STRING_MAX_CHARS`] characters.
    String,
    /// Any length of text.
    Text,
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    BigInt,
    /// A 64-bit floating-point number (finite).
    Float,
    Bool,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An instant, RFC 3339 (`2026-12-06T10:00:00Z`), stored in UTC.
    DateTime,
    Uuid,
    /// Any JSON value.
    Json,
    /// One of the variants, each a snake_case word.
    Enum(Vec<String>),
    /// The id of a row of another generated resource of the same owner.
    Ref(String),
}

/// The longest `string` value accepted, in characters.
pub const STRING_MAX_CHARS: usize = 255;

/// What the error messages list as the types.
pub const TYPES: &str = "string, text, int, bigint, float, bool, date, datetime, uuid, json, \
                         enum(a|b|c), and <resource>:ref for a reference to another resource";

impl FieldType {
    /// The type's name as written on the command line (`enum` and `ref` without their details).
    pub fn keyword(&self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Text => "text",
            FieldType::Int => "int",
            FieldType::BigInt => "bigint",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Uuid => "uuid",
            FieldType::Json => "json",
            FieldType::Enum(_) => "enum",
            FieldType::Ref(_) => "ref",
        }
    }

    fn simple(word: &str) -> Option<FieldType> {
        Some(match word {
            "string" => FieldType::String,
            "text" => FieldType::Text,
            "int" => FieldType::Int,
            "bigint" => FieldType::BigInt,
            "float" => FieldType::Float,
            "bool" => FieldType::Bool,
            "date" => FieldType::Date,
            "datetime" => FieldType::DateTime,
            "uuid" => FieldType::Uuid,
            "json" => FieldType::Json,
            _ => return None,
        })
    }
}

/// Who owns a resource's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The signed-in user.
    User,
    /// An organization the caller is a member of (the `orgs` module).
    Org,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::User => "user",
            Owner::Org => "org",
        }
    }

    pub fn parse(text: &str) -> Option<Owner> {
        match text {
            "user" => Some(Owner::User),
            "org" => Some(Owner::Org),
            _ => None,
        }
    }
}

/// An index on a field's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    None,
    /// `:index`: a plain index, for filters and sorts on a large table.
    Plain,
    /// `:unique`: no two rows of one owner have the same value.
    Unique,
}

/// One field of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The column and JSON name: `title`, or `project_id` for `project:ref`.
    pub name: String,
    pub kind: FieldType,
    /// `?`: may be missing (NULL).
    pub optional: bool,
    pub index: Index,
    /// The argument as the user wrote it, kept in saaskit.toml so the resource renders again.
    pub spec: String,
}

/// A field spec that does not parse: the argument, the 1-based column of the problem in it,
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub spec: String,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The argument with a caret under the column, as a compiler points at a token.
        write!(
            f,
            "field spec `{}`, column {}: {}\n  {}\n  {}^",
            self.spec,
            self.column,
            self.message,
            self.spec,
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

impl std::error::Error for SpecError {}

/// Rust keywords (strict and reserved, 2024 edition): a field or resource named so would need
/// `r#` everywhere in the generated code.
const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe",
    "use", "where", "while", "abstract", "become", "box", "do", "final", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// SQL words that SQLite or PostgreSQL refuse as a bare column or table name.
const SQL_RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "end",
    "except",
    "fetch",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "index",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "window",
    "with",
];

/// Field names the generated code uses itself: the row's own columns, the owner's, and the
/// list endpoint's query parameters.
pub const RESERVED_FIELDS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "user_id",
    "org_id",
    "owner_id",
    "sort",
    "cursor",
    "page",
    "per_page",
];

/// Why `word` cannot name a field, a resource or an enum variant, if it cannot.
fn word_problem(word: &str) -> Option<String> {
    if word.is_empty() {
        return Some("a name is missing".into());
    }
    let mut chars = word.chars();
    let first = chars.next().unwrap_or_default();
    if !first.is_ascii_lowercase() {
        return Some(format!(
            "`{word}` must start with a lowercase letter (snake_case: a-z, 0-9 and _)"
        ));
    }
    if let Some(bad) = word
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Some(format!(
            "`{word}` has `{bad}`: use snake_case (a-z, 0-9 and _)"
        ));
    }
    if word.ends_with('_') || word.contains("__") {
        return Some(format!("`{word}`: no `_` at the end and no `__`"));
    }
    if word.len() > 48 {
        return Some(format!("`{word}` is longer than 48 characters"));
    }
    None
}

/// Why `name` cannot name a resource, if it cannot (the workspace's own names are checked
/// elsewhere).
pub fn resource_name_problem(name: &str) -> Option<String> {
    if let Some(problem) = word_problem(name) {
        return Some(problem);
    }
    if RUST_KEYWORDS.contains(&name) {
        return Some(format!("`{name}` is a Rust keyword"));
    }
    // Only the plural names a table; the singular appears in SQL only as `<name>_id`.
    if SQL_RESERVED.contains(&plural(name).as_str()) {
        return Some(format!(
            "its table `{}` would be a reserved word of SQL",
            plural(name)
        ));
    }
    if name.ends_with('s') && !name.ends_with("ss") {
        return Some(format!(
            "`{name}` looks plural: name the resource in the singular (`{}`); its table and \
             routes get the plural",
            name.trim_end_matches('s')
        ));
    }
    None
}

/// The longest name of a field (a ref's column, `<resource>_id`, included), so that the generated
/// statements that name it keep one layout whatever its length (rustfmt's widths: a call's
/// arguments or a chain of at most 60 columns, lines of 100).
pub const FIELD_NAME_MAX: usize = 40;

/// The longest enum variant: each `match` arm naming it (`Self::Variant => "variant",` and back)
/// then stays on one line.
pub const VARIANT_MAX: usize = 32;

/// The longest name of a job or an email: their types' names (`SendReportJob`) then keep every
/// generated line within rustfmt's width, so the layout does not depend on the name.
pub const HANDLER_NAME_MAX: usize = 40;

/// Why `name` cannot name a generated job or email, if it cannot (the workspace's own names
/// are checked elsewhere).
pub fn handler_name_problem(name: &str) -> Option<String> {
    if let Some(problem) = word_problem(name) {
        return Some(problem);
    }
    if RUST_KEYWORDS.contains(&name) {
        return Some(format!("`{name}` is a Rust keyword"));
    }
    if name.len() > HANDLER_NAME_MAX {
        return Some(format!(
            "`{name}` is longer than {HANDLER_NAME_MAX} characters"
        ));
    }
    None
}

/// The plural of a resource name, for its table and its routes: `project` → `projects`,
/// `category` → `categories`, `box` → `boxes`.
pub fn plural(name: &str) -> String {
    let consonant_y =
        name.ends_with('y') && !name[..name.len() - 1].ends_with(['a', 'e', 'i', 'o', 'u']);
    if consonant_y {
        format!("{}ies", &name[..name.len() - 1])
    } else if name.ends_with(['s', 'x', 'z']) || name.ends_with("ch") || name.ends_with("sh") {
        format!("{name}es")
    } else {
        format!("{name}s")
    }
}

/// `due_date` → `DueDate`.
pub fn pascal(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Parses one field spec of a resource: a [`parse_value_field`] whose name a column can have.
pub fn parse_field(spec: &str) -> Result<Field, SpecError> {
    let field = parse_value_field(spec)?;
    let column = field.name.as_str();
    let problem = if RESERVED_FIELDS.contains(&column) {
        format!(
            "`{column}` is reserved: the generated code uses it (reserved: {})",
            RESERVED_FIELDS.join(", ")
        )
    } else if SQL_RESERVED.contains(&column) {
        format!("`{column}` is a reserved word of SQL")
    } else {
        return Ok(field);
    };
    Err(SpecError {
        spec: spec.to_string(),
        column: 1,
        message: problem,
    })
}

/// Parses one field spec: `name:type[?][:unique|:index]`, or `resource:ref[?][:index]`.
pub fn parse_value_field(spec: &str) -> Result<Field, SpecError> {
    let error = |offset: usize, message: String| SpecError {
        spec: spec.to_string(),
        column: spec[..offset.min(spec.len())].chars().count() + 1,
        message,
    };
    let Some((name, rest)) = spec.split_once(':') else {
        return Err(error(
            spec.len(),
            format!("expected `name:type` (the types: {TYPES})"),
        ));
    };
    if let Some(problem) = word_problem(name) {
        return Err(error(0, problem));
    }
    let type_start = name.len() + 1;
    // The type runs to the next `:` outside an enum's parentheses.
    let type_len = if rest.starts_with("enum(") {
        match rest.find(')') {
            Some(close) => close + 1 + usize::from(rest[close + 1..].starts_with('?')),
            None => {
                return Err(error(
                    spec.len(),
                    "`enum(` is not closed: write `enum(a|b|c)`".into(),
                ));
            }
        }
    } else {
        rest.find(':').unwrap_or(rest.len())
    };
    let (type_text, markers) = rest.split_at(type_len);
    let (type_word, optional) = match type_text.strip_suffix('?') {
        Some(word) => (word, true),
        None => (type_text, false),
    };
    let kind = if let Some(variants) = type_word
        .strip_prefix("enum(")
        .and_then(|v| v.strip_suffix(')'))
    {
        let mut seen: Vec<String> = Vec::new();
        let mut offset = type_start + "enum(".len();
        for variant in variants.split('|') {
            if let Some(problem) = word_problem(variant) {
                return Err(error(offset, format!("enum variant: {problem}")));
            }
            if variant.len() > VARIANT_MAX {
                return Err(error(
                    offset,
                    format!("enum variant `{variant}` is longer than {VARIANT_MAX} characters"),
                ));
            }
            if seen.iter().any(|v| v == variant) {
                return Err(error(offset, format!("enum variant `{variant}` twice")));
            }
            seen.push(variant.to_string());
            offset += variant.len() + 1;
        }
        FieldType::Enum(seen)
    } else if type_word == "ref" {
        FieldType::Ref(name.to_string())
    } else if let Some(kind) = FieldType::simple(type_word) {
        kind
    } else {
        let hint = if type_word.is_empty() {
            "the type is missing".to_string()
        } else {
            format!("unknown type `{type_word}`")
        };
        return Err(error(type_start, format!("{hint}; the types are: {TYPES}")));
    };
    let mut index = Index::None;
    let mut offset = type_start + type_len;
    for marker in markers.split(':').skip(1) {
        let wanted = match marker {
            "unique" => Index::Unique,
            "index" => Index::Plain,
            _ => {
                return Err(error(
                    offset + 1,
                    format!("unknown marker `{marker}`: after the type come `:unique` or `:index`"),
                ));
            }
        };
        if index != Index::None {
            return Err(error(
                offset + 1,
                "one marker at most: `:unique` (which is an index too) or `:index`".into(),
            ));
        }
        index = wanted;
        offset += marker.len() + 1;
    }
    if kind == FieldType::Json && index != Index::None {
        return Err(error(
            type_start + type_len + 1,
            "a json field cannot be unique or indexed".into(),
        ));
    }
    let column = match &kind {
        FieldType::Ref(target) => format!("{target}_id"),
        _ => name.to_string(),
    };
    if column.len() > FIELD_NAME_MAX {
        let what = match &kind {
            FieldType::Ref(_) => format!("the column of `{name}:ref`, `{column}`,"),
            _ => format!("`{column}`"),
        };
        return Err(error(
            0,
            format!(
                "{what} is longer than {FIELD_NAME_MAX} characters, the most a field's name may have"
            ),
        ));
    }
    if RUST_KEYWORDS.contains(&column.as_str()) {
        return Err(error(0, format!("`{column}` is a Rust keyword")));
    }
    Ok(Field {
        name: column,
        kind,
        optional,
        index,
        spec: spec.to_string(),
    })
}

/// Parses every field spec of a resource; refuses none at all and two fields of one name.
pub fn parse_fields(specs: &[String]) -> Result<Vec<Field>, SpecError> {
    parse_fields_with(specs, parse_field)
}

/// Parses the fields of a job's payload or of an email: no table, so no column's restrictions.
pub fn parse_value_fields(specs: &[String]) -> Result<Vec<Field>, SpecError> {
    parse_fields_with(specs, parse_value_field)
}

fn parse_fields_with(
    specs: &[String],
    parse: fn(&str) -> Result<Field, SpecError>,
) -> Result<Vec<Field>, SpecError> {
    let mut fields: Vec<Field> = Vec::new();
    for spec in specs {
        let field = parse(spec)?;
        if fields.iter().any(|f| f.name == field.name) {
            return Err(SpecError {
                spec: spec.clone(),
                column: 1,
                message: format!("a second field named `{}`", field.name),
            });
        }
        fields.push(field);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(spec: &str) -> SpecError {
        parse_field(spec).unwrap_err()
    }

    #[test]
    fn every_type_parses_with_its_markers() {
        let field = parse_field("email:string:unique").unwrap();
        assert_eq!(
            (
                field.name.as_str(),
                &field.kind,
                field.optional,
                field.index
            ),
            ("email", &FieldType::String, false, Index::Unique)
        );
        let due = parse_field("due:date?:index").unwrap();
        assert_eq!(
            (due.kind, due.optional, due.index),
            (FieldType::Date, true, Index::Plain)
        );
        for (word, kind) in [
            ("text", FieldType::Text),
            ("int", FieldType::Int),
            ("bigint", FieldType::BigInt),
            ("float", FieldType::Float),
            ("bool", FieldType::Bool),
            ("datetime", FieldType::DateTime),
            ("uuid", FieldType::Uuid),
            ("json", FieldType::Json),
        ] {
            assert_eq!(parse_field(&format!("x:{word}")).unwrap().kind, kind);
        }
        let status = parse_field("status:enum(open|in_progress|done)?:index").unwrap();
        assert_eq!(
            status.kind,
            FieldType::Enum(vec!["open".into(), "in_progress".into(), "done".into()])
        );
        assert!(status.optional);
        let project = parse_field("project:ref?").unwrap();
        assert_eq!(project.name, "project_id");
        assert_eq!(project.kind, FieldType::Ref("project".into()));
    }

    #[test]
    fn a_bad_spec_names_the_column_and_lists_the_types() {
        let unknown = err("title:strng");
        assert_eq!(unknown.column, 7);
        assert!(unknown.message.contains("unknown type `strng`"));
        assert!(
            unknown
                .message
                .contains("datetime, uuid, json, enum(a|b|c)")
        );
        assert!(unknown.to_string().ends_with("  title:strng\n        ^"));
        assert_eq!(err("title").column, 6);
        assert_eq!(err("title:").column, 7);
        assert_eq!(err("Title:string").column, 1);
        let marker = err("title:string:uniq");
        assert_eq!(
            (marker.column, marker.message.contains("`uniq`")),
            (14, true)
        );
        assert_eq!(err("a:string:unique:index").column, 17);
        let variant = err("s:enum(open|Done)");
        assert_eq!(variant.column, 13);
        assert_eq!(err("s:enum(a|a)").column, 10);
        assert!(err("s:enum(a|b").message.contains("not closed"));
        assert_eq!(err("data:json:index").column, 11);
    }

    #[test]
    fn reserved_words_and_keywords_are_refused() {
        for spec in ["id:string", "created_at:datetime", "user:ref", "sort:int"] {
            assert!(err(spec).message.contains("reserved"), "{spec}");
        }
        assert!(err("type:string").message.contains("Rust keyword"));
        assert!(err("order:int").message.contains("SQL"));
        let twice = parse_fields(&["a:int".into(), "a:text".into()]).unwrap_err();
        assert!(twice.message.contains("second field named `a`"));
    }

    #[test]
    fn resource_names_are_singular_snake_case_words() {
        assert_eq!(resource_name_problem("project"), None);
        assert_eq!(resource_name_problem("line_item"), None);
        assert!(resource_name_problem("Project").is_some());
        assert!(
            resource_name_problem("projects")
                .unwrap()
                .contains("plural")
        );
        assert_eq!(resource_name_problem("address"), None);
        assert!(
            resource_name_problem("impl")
                .unwrap()
                .contains("Rust keyword")
        );
        assert_eq!(resource_name_problem("order"), None);
    }

    #[test]
    fn long_field_names_and_variants_are_refused_naming_the_limit() {
        let forty = "a".repeat(FIELD_NAME_MAX);
        assert!(parse_field(&format!("{forty}:string")).is_ok());
        let long = err(&format!("{forty}b:string"));
        assert!(long.message.contains("longer than 40 characters"), "{long}");
        // A reference's column is the resource's name and `_id`.
        assert!(parse_field(&format!("{}:ref", "a".repeat(37))).is_ok());
        let reference = err(&format!("{}:ref", "a".repeat(38)));
        assert!(
            reference
                .message
                .contains(&format!("`{}_id`", "a".repeat(38)))
        );
        let variant = err(&format!("s:enum(open|{})", "v".repeat(VARIANT_MAX + 1)));
        assert_eq!(variant.column, 13);
        assert!(variant.message.contains("longer than 32 characters"));
    }

    #[test]
    fn plural_and_pascal_case() {
        assert_eq!(plural("project"), "projects");
        assert_eq!(plural("category"), "categories");
        assert_eq!(plural("day"), "days");
        assert_eq!(plural("box"), "boxes");
        assert_eq!(plural("address"), "addresses");
        assert_eq!(plural("batch"), "batches");
        assert_eq!(pascal("line_item"), "LineItem");
        assert_eq!(pascal("in_progress"), "InProgress");
    }
}
