//! What the resources made by `saaskit generate resource` share: the values their statements
//! bind, the statements themselves (built from a resource's column list, so each resource's own
//! file holds only what is its own), reading columns, paging and sorting a list, checking inputs,
//! and how their errors are answered. saaskit writes this file with the first resource and
//! removes it with the last (docs/generate.md in the saaskit repository).
//!
//! Every statement names its owner column (`user_id`, or `org_id` for a resource of an
//! organization) with the owner's id as a value: a row of another owner is not found, exactly
//! like a row that does not exist, so the caller cannot tell them apart (404 either way). The
//! back office's reads ([`staff_list`], [`staff_find`]) are the exception: a resource's file
//! calls them only for a staff member whose role allows viewing.

use serde::{Deserialize, Deserializer};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Decode, Row, Type};

use crate::db::Database;
use crate::error::{ApiError, FieldErrors};

/// The most rows a list returns at once, and how many without `limit`.
pub const MAX_LIMIT: i64 = 100;
pub const DEFAULT_LIMIT: i64 = 20;

/// What a resource operation can fail with, beyond the database.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// No such row of this owner (another owner's row is not found either).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Some inputs are invalid, each named.
    #[error("the input has invalid fields")]
    Invalid(FieldErrors),
    /// A unique field's value is taken, or other rows still refer to this one.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for ResourceError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(
                "another row of yours has the same value in a field that must be unique".into(),
            ),
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => Self::Conflict(
                "other rows refer to this one (delete them first), or a reference names a row \
                 that is gone"
                    .into(),
            ),
            _ => Self::Database(error),
        }
    }
}

impl From<ResourceError> for ApiError {
    fn from(error: ResourceError) -> Self {
        match error {
            ResourceError::NotFound(what) => Self::NotFound(what),
            ResourceError::Invalid(fields) => Self::Validation(fields),
            ResourceError::Conflict(message) => Self::Conflict(message),
            ResourceError::Database(error) => error.into(),
        }
    }
}

/// A value bound to a placeholder: the types the `Any` driver reads and writes (see `db`).
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
}

/// Columns with the values a statement writes or filters on, in order.
#[derive(Debug, Default)]
pub struct Values(Vec<(&'static str, Bind)>);

impl Values {
    pub fn text(&mut self, column: &'static str, value: Option<String>) {
        self.0.push((column, Bind::Text(value)));
    }

    pub fn int(&mut self, column: &'static str, value: Option<i64>) {
        self.0.push((column, Bind::Int(value)));
    }

    pub fn float(&mut self, column: &'static str, value: Option<f64>) {
        self.0.push((column, Bind::Float(value)));
    }

    fn binds(self) -> impl Iterator<Item = Bind> {
        self.0.into_iter().map(|(_, value)| value)
    }
}

/// The text of an optional json or enum field, as its column holds it.
pub fn to_text<T: ToString>(value: Option<T>) -> Option<String> {
    value.map(|value| value.to_string())
}

/// A resource's table as its statements name it.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    /// What a row is called in messages: `project`.
    pub singular: &'static str,
    /// `user_id` or `org_id`.
    pub owner: &'static str,
    /// Every column, comma-separated, as `SELECT` and `RETURNING` list them.
    pub columns: &'static str,
    /// The columns a list cannot be sorted by (json).
    pub unsortable: &'static [&'static str],
}

/// How a list is cut and ordered: `?limit=&offset=&sort=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
    /// `title DESC`: a sortable column and its direction, checked against the table's list.
    order: String,
}

impl Page {
    /// `sort` is a column, or `-column` for descending; by default the oldest first.
    pub fn new(
        table: &Table,
        limit: Option<i64>,
        offset: Option<i64>,
        sort: Option<&str>,
    ) -> Result<Self, ResourceError> {
        let mut errors = FieldErrors::new();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.insert("limit".into(), format!("must be from 1 to {MAX_LIMIT}"));
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            errors.insert("offset".into(), "must be 0 or more".into());
        }
        let sort = sort.unwrap_or("created_at");
        let (column, direction) = match sort.strip_prefix('-') {
            Some(column) => (column, "DESC"),
            None => (sort, "ASC"),
        };
        let sortable: Vec<&str> = table
            .columns
            .split(", ")
            .filter(|c| *c != table.owner && !table.unsortable.contains(c))
            .collect();
        if !sortable.contains(&column) {
            let columns = sortable.join(", ");
            errors.insert(
                "sort".into(),
                format!("sorts by one of {columns}, with `-` before it for descending order"),
            );
        }
        if !errors.is_empty() {
            return Err(ResourceError::Invalid(errors));
        }
        Ok(Self {
            limit,
            offset,
            order: format!("{column} {direction}"),
        })
    }
}

/// One page of `owner`'s rows that match every filter, and whether more follow.
pub async fn list(
    db: &Database,
    table: &Table,
    owner: &str,
    filters: Values,
    page: &Page,
) -> Result<(Vec<AnyRow>, bool), ResourceError> {
    let mut sql = format!(
        "SELECT {} FROM {} WHERE {} = $1",
        table.columns, table.name, table.owner
    );
    let mut binds = vec![Bind::Text(Some(owner.to_owned()))];
    for (column, value) in filters.0 {
        binds.push(value);
        sql += &format!(" AND {column} = ${}", binds.len());
    }
    // One row more than the page: whether another page follows, without counting them all.
    binds.push(Bind::Int(Some(page.limit + 1)));
    binds.push(Bind::Int(Some(page.offset)));
    let (limit, offset) = (binds.len() - 1, binds.len());
    sql += &format!(
        " ORDER BY {}, id LIMIT ${limit} OFFSET ${offset}",
        page.order
    );
    let mut rows = fetch(db, sql, binds).await?;
    let more = rows.len() > usize::try_from(page.limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(page.limit).unwrap_or(usize::MAX));
    Ok((rows, more))
}

/// `owner`'s row `id`.
pub async fn find(
    db: &Database,
    table: &Table,
    owner: &str,
    id: &str,
) -> Result<AnyRow, ResourceError> {
    let sql = format!(
        "SELECT {} FROM {} WHERE id = $1 AND {} = $2",
        table.columns, table.name, table.owner
    );
    let binds = vec![
        Bind::Text(Some(id.to_owned())),
        Bind::Text(Some(owner.to_owned())),
    ];
    first(table, fetch(db, sql, binds).await?)
}

/// Inserts a row of `owner` with `values`; the row as stored.
pub async fn insert(
    db: &Database,
    table: &Table,
    owner: &str,
    values: Values,
) -> Result<AnyRow, ResourceError> {
    let now = crate::auth::now();
    let mut columns = vec!["id", table.owner, "created_at", "updated_at"];
    columns.extend(values.0.iter().map(|(column, _)| *column));
    let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
        table.name,
        columns.join(", "),
        placeholders.join(", "),
        table.columns
    );
    let mut binds = vec![
        Bind::Text(Some(uuid::Uuid::now_v7().to_string())),
        Bind::Text(Some(owner.to_owned())),
        Bind::Int(Some(now)),
        Bind::Int(Some(now)),
    ];
    binds.extend(values.binds());
    first(table, fetch(db, sql, binds).await?)
}

/// Sets `values` on `owner`'s row `id`; the row as stored.
pub async fn update(
    db: &Database,
    table: &Table,
    owner: &str,
    id: &str,
    values: Values,
) -> Result<AnyRow, ResourceError> {
    let mut sets = vec!["updated_at = $3".to_owned()];
    let mut binds = vec![
        Bind::Text(Some(id.to_owned())),
        Bind::Text(Some(owner.to_owned())),
        Bind::Int(Some(crate::auth::now())),
    ];
    for (column, value) in values.0 {
        binds.push(value);
        sets.push(format!("{column} = ${}", binds.len()));
    }
    let sql = format!(
        "UPDATE {} SET {} WHERE id = $1 AND {} = $2 RETURNING {}",
        table.name,
        sets.join(", "),
        table.owner,
        table.columns
    );
    first(table, fetch(db, sql, binds).await?)
}

/// Deletes `owner`'s row `id`.
pub async fn delete(
    db: &Database,
    table: &Table,
    owner: &str,
    id: &str,
) -> Result<(), ResourceError> {
    let sql = format!(
        "DELETE FROM {} WHERE id = $1 AND {} = $2 RETURNING id",
        table.name, table.owner
    );
    let binds = vec![
        Bind::Text(Some(id.to_owned())),
        Bind::Text(Some(owner.to_owned())),
    ];
    first(table, fetch(db, sql, binds).await?).map(drop)
}

/// Whether `owner` has the row `id` in `table`: a reference must name a row of the same owner,
/// or it would show that another owner's row exists.
pub async fn exists(
    db: &Database,
    table: &Table,
    owner: &str,
    id: &str,
) -> Result<bool, ResourceError> {
    // No id has one, and PostgreSQL refuses the NUL character in a text rather than finding none.
    if id.contains('\0') {
        return Ok(false);
    }
    match find(db, table, owner, id).await {
        Ok(_) => Ok(true),
        Err(ResourceError::NotFound(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// A row of any owner, as the back office shows it: with its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Owned<T> {
    pub item: T,
    /// The id of the user or the organization that owns it.
    pub owner_id: String,
    /// What staff know the owner by: the user's email, or the organization's name.
    pub owner: String,
}

/// Every owner's rows, newest first, those with `pattern` (a lowercase `LIKE` pattern) in one of
/// the `searched` columns when it is given, each with its owner's name: `limit` rows from
/// `offset`.
pub async fn staff_list(
    db: &Database,
    table: &Table,
    searched: &[&str],
    pattern: Option<String>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AnyRow>, ResourceError> {
    let mut sql = format!(
        "SELECT {}, {} AS owner_name FROM {}",
        table.columns,
        owner_name(table),
        table.name
    );
    let mut binds = Vec::new();
    if let Some(pattern) = pattern.filter(|_| !searched.is_empty()) {
        binds.push(Bind::Text(Some(pattern)));
        let matches: Vec<String> = searched
            .iter()
            .map(|column| format!("lower({column}) LIKE $1 ESCAPE '\\'"))
            .collect();
        sql += &format!(" WHERE {}", matches.join(" OR "));
    }
    binds.push(Bind::Int(Some(limit)));
    binds.push(Bind::Int(Some(offset)));
    let (limit, offset) = (binds.len() - 1, binds.len());
    sql += &format!(" ORDER BY created_at DESC, id DESC LIMIT ${limit} OFFSET ${offset}");
    Ok(fetch(db, sql, binds).await?)
}

/// Any owner's row `id`, with its owner's name.
pub async fn staff_find(db: &Database, table: &Table, id: &str) -> Result<AnyRow, ResourceError> {
    let sql = format!(
        "SELECT {}, {} AS owner_name FROM {} WHERE id = $1",
        table.columns,
        owner_name(table),
        table.name
    );
    let rows = fetch(db, sql, vec![Bind::Text(Some(id.to_owned()))]).await?;
    first(table, rows)
}

/// A row of [`staff_list`] or [`staff_find`], read by the resource's `from_row`, with its owner.
pub fn owned<T>(
    row: &AnyRow,
    table: &Table,
    from_row: fn(&AnyRow) -> Result<T, sqlx::Error>,
) -> Result<Owned<T>, sqlx::Error> {
    Ok(Owned {
        item: from_row(row)?,
        owner_id: row.try_get(table.owner)?,
        // A user or organization is deleted with its rows; a NULL here would be a race.
        owner: row
            .try_get::<Option<String>, _>("owner_name")?
            .unwrap_or_default(),
    })
}

/// The subquery of a row's owner's name: its user's email, or its organization's name.
fn owner_name(table: &Table) -> String {
    let (owners, column) = if table.owner == "org_id" {
        ("organizations", "name")
    } else {
        ("users", "email")
    };
    format!(
        "(SELECT {owners}.{column} FROM {owners} WHERE {owners}.id = {}.{})",
        table.name, table.owner
    )
}

fn first(table: &Table, rows: Vec<AnyRow>) -> Result<AnyRow, ResourceError> {
    rows.into_iter()
        .next()
        .ok_or(ResourceError::NotFound(table.singular))
}

/// Runs `sql` with `binds` for `$1`, `$2`, ... in order. Every statement returns rows
/// (`RETURNING`), so one way to run them serves all.
async fn fetch(db: &Database, sql: String, binds: Vec<Bind>) -> Result<Vec<AnyRow>, sqlx::Error> {
    // The statement is built from the resource's own column names, never from input.
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text),
            Bind::Int(int) => query.bind(int),
            Bind::Float(float) => query.bind(float),
        };
    }
    query.fetch_all(db.pool()).await
}

/// Column `column` of `row`, read as the `Any` driver stores it and converted with `convert`.
pub fn read<T, U>(
    row: &AnyRow,
    column: &str,
    convert: fn(T) -> Result<U, sqlx::Error>,
) -> Result<U, sqlx::Error>
where
    T: for<'r> Decode<'r, Any> + Type<Any>,
{
    convert(row.try_get(column)?)
}

/// [`read`] for a column that may be NULL.
pub fn read_optional<T, U>(
    row: &AnyRow,
    column: &str,
    convert: fn(T) -> Result<U, sqlx::Error>,
) -> Result<Option<U>, sqlx::Error>
where
    T: for<'r> Decode<'r, Any> + Type<Any>,
{
    row.try_get::<Option<T>, _>(column)?
        .map(convert)
        .transpose()
}

/// A `bool` column: `BIGINT` 0 or 1 (see `db`).
pub fn flag(value: i64) -> Result<bool, sqlx::Error> {
    Ok(value != 0)
}

/// An `int` column, `BIGINT` checked to fit 32 bits.
pub fn int(value: i64) -> Result<i32, sqlx::Error> {
    i32::try_from(value).map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

/// A `json` column, stored as its text.
pub fn json(text: String) -> Result<serde_json::Value, sqlx::Error> {
    serde_json::from_str(&text).map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

/// An `enum` column's text that is none of the variants: the table's CHECK keeps it from
/// happening, so it is a decoding error.
pub fn unknown_variant(column: &str, text: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("`{text}` is not a variant of column {column}").into())
}

/// For an optional field of an update: absent (unchanged) is `None`, `null` (cleared) is
/// `Some(None)`. serde alone reads both as `None`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Not blank, at most `max` characters, and without the NUL character, which PostgreSQL does not
/// store in a text.
pub fn check_length(errors: &mut FieldErrors, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        errors.insert(field.into(), "must not be empty".into());
    } else if value.contains('\0') {
        errors.insert(field.into(), "must not contain the NUL character".into());
    } else if value.chars().count() > max {
        errors.insert(field.into(), format!("must be at most {max} characters"));
    }
}

/// A calendar date written `YYYY-MM-DD`.
pub fn check_date(errors: &mut FieldErrors, field: &str, value: &str) {
    if !is_date(value) {
        errors.insert(field.into(), "must be a date written YYYY-MM-DD".into());
    }
}

fn is_date(value: &str) -> bool {
    let bytes = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes[range.clone()].iter().all(u8::is_ascii_digit) && value[range].parse::<u32>().is_ok()
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    let year: u32 = value[0..4].parse().unwrap_or_default();
    let month: u32 = value[5..7].parse().unwrap_or_default();
    let day: u32 = value[8..10].parse().unwrap_or_default();
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// A UUID in its hyphenated form (`0192e0a0-0000-7000-8000-000000000000`).
pub fn check_uuid(errors: &mut FieldErrors, field: &str, value: &str) {
    if value.len() != 36 || uuid::Uuid::try_parse(value).is_err() {
        errors.insert(field.into(), "must be a UUID, hyphenated".into());
    }
}

/// What the resources' generated tests (`<resource>/tests.rs`) share: a database and owners.
#[cfg(test)]
pub(crate) mod testing {
    use crate::auth::User;
    use crate::config::Env;
    use crate::db::{Database, DatabaseConfig};

    /// A migrated database for test `name`: the PostgreSQL one `TEST_DATABASE_URL` names (the
    /// tests' rows do not collide there: every owner is new), else a new SQLite file.
    pub(crate) async fn database(name: &str) -> Database {
        let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
            let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            format!("sqlite://{}/test.db?mode=rwc", dir.display())
        });
        let mut env = Env::from_vars([("DATABASE_URL", url)]);
        let config = DatabaseConfig::from_env(&mut env);
        env.finish().unwrap();
        let db = Database::connect(&config).await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    /// A new account, with an address no other test uses.
    pub(crate) async fn user(db: &Database) -> User {
        let email = format!("{}@example.com", uuid::Uuid::now_v7());
        let mut conn = db.pool().acquire().await.unwrap();
        crate::auth::accounts::insert(&mut conn, &email, "(no password)", None, 0)
            .await
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked_to_the_day_of_the_month() {
        for good in ["2026-12-06", "2024-02-29", "0001-01-01"] {
            assert!(is_date(good), "{good}");
        }
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-04-31",
            "2026-1-01",
            "20261206",
            "2026-12-0a",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn a_page_refuses_unknown_sorts_and_limits_out_of_range() {
        let table = Table {
            name: "notes",
            singular: "note",
            owner: "user_id",
            columns: "id, user_id, title, data, created_at",
            unsortable: &["data"],
        };
        let page = Page::new(&table, None, None, Some("-title")).unwrap();
        assert_eq!(
            (page.limit, page.offset, page.order.as_str()),
            (20, 0, "title DESC")
        );
        let Err(ResourceError::Invalid(errors)) =
            Page::new(&table, Some(0), Some(-1), Some("data"))
        else {
            panic!("an invalid page was accepted");
        };
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(fields, ["limit", "offset", "sort"]);
    }
}
