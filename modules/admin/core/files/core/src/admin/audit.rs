//! The audit log as the back office reads it: pages of entries, filters, CSV export. Entries
//! are written with [`record`] (module `audit`): every staff action writes one in the same
//! transaction as its effect, so neither exists without the other.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{AdminError, Page, PageQuery};
use crate::db::Database;

// Writing entries is the `audit` module's, which the webhooks service uses too; the back office
// reads them.
pub use crate::audit::{Action, Actor, record};

/// Audits a staff sign-in or sign-out (`action`: `staff.sign_in`, `staff.sign_out`), the staff
/// member's own account as the target and the session in the details, at `now`.
pub async fn record_session(
    db: &Database,
    actor: Actor<'_>,
    action: &str,
    session_id: &str,
    now: i64,
) -> sqlx::Result<()> {
    let details = format!(r#"{{"session_id":"{session_id}"}}"#);
    let entry = Action {
        action,
        target_type: "user",
        target_id: actor.user_id,
        reason: None,
        details: Some(&details),
    };
    let mut tx = db.begin_write().await?;
    record(&mut tx, actor, entry, now).await?;
    tx.commit().await?;
    Ok(())
}

/// An entry as the panel and the API show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
pub struct Entry {
    pub id: String,
    pub created_at: i64,
    pub actor_id: String,
    pub actor_email: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub reason: Option<String>,
    pub client_ip: Option<String>,
    pub details: Option<String>,
}

/// `?actor=&action=&target=&since=&until=` and the page: every filter optional, and combined
/// with AND. `action` matches a prefix (`customer.` finds every customer action).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// The staff member's id or email.
    pub actor: Option<String>,
    /// A prefix of the action, e.g. `customer.`.
    pub action: Option<String>,
    /// The target's id.
    pub target: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    // The page's fields, not a flattened `PageQuery`: serde's flatten loses the numbers of
    // query strings.
    /// The 1-based page number.
    pub page: Option<u32>,
    /// Items per page.
    pub per_page: Option<u32>,
}

impl Filter {
    /// Empty strings (an untouched form field) as no filter; 422 for a prefix with wildcards.
    pub fn normalized(mut self) -> Result<Self, AdminError> {
        for field in [&mut self.actor, &mut self.action, &mut self.target] {
            *field = field
                .take()
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty());
        }
        if let Some(action) = &self.action
            && action.contains(['%', '_', '\\'])
        {
            let problem = "must be an action name or its prefix, without % or _";
            return Err(AdminError::invalid_field("action", problem));
        }
        Ok(self)
    }

    fn page_query(&self) -> PageQuery {
        PageQuery {
            page: self.page,
            per_page: self.per_page,
        }
    }
}

/// The entries `filter` selects, newest first, one page of them.
pub async fn list(db: &Database, filter: &Filter) -> sqlx::Result<Page<Entry>> {
    let page = filter.page_query();
    let rows = select(db, filter, Some(page.limit_offset())).await?;
    Ok(Page::from_rows(page, rows))
}

/// Every entry `filter` selects (pages ignored), oldest first, as CSV (RFC 4180) with a
/// header line, for spreadsheets and archives.
pub async fn csv(db: &Database, filter: &Filter) -> sqlx::Result<String> {
    let mut entries = select(db, filter, None).await?;
    entries.reverse();
    let mut out = String::from(
        "id,created_at,actor_id,actor_email,action,target_type,target_id,reason,client_ip,details\r\n",
    );
    for entry in &entries {
        let created_at = entry.created_at.to_string();
        let fields = [
            entry.id.as_str(),
            created_at.as_str(),
            &entry.actor_id,
            &entry.actor_email,
            &entry.action,
            &entry.target_type,
            &entry.target_id,
            entry.reason.as_deref().unwrap_or(""),
            entry.client_ip.as_deref().unwrap_or(""),
            entry.details.as_deref().unwrap_or(""),
        ];
        for (index, field) in fields.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_csv_field(&mut out, field);
        }
        out.push_str("\r\n");
    }
    Ok(out)
}

/// What a spreadsheet runs as a formula when a cell starts with it (OWASP, CSV injection).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// What can end a cell, in this file or as a spreadsheet may read it: the separators of CSV
/// (`,`, and `;` where it is the locale's list separator) and of TSV, line breaks, and quotes.
const CELL_ENDS: [char; 6] = [',', ';', '\t', '\r', '\n', '"'];

/// One CSV field (RFC 4180): quoted when it holds a separator, a quote or a line break, its
/// quotes doubled. Formulas are defused with a `'` before each formula start (`=`, `+`, `-`,
/// `@`, tab, carriage return) that opens the field or follows something that can end a cell:
/// a spreadsheet that splits on `;` or tabs, or ignores quotes, would start a new cell there
/// (OWASP's advice against CSV injection: reasons and emails are typed by people). By hand:
/// the `csv` crate is a dependency for twenty lines.
fn push_csv_field(out: &mut String, field: &str) {
    let mut defused = String::with_capacity(field.len() + 2);
    let mut cell_start = true;
    for character in field.chars() {
        if cell_start && FORMULA_STARTS.contains(&character) {
            defused.push('\'');
        }
        defused.push(character);
        cell_start = CELL_ENDS.contains(&character);
    }
    if defused.len() == field.len() && !field.contains(CELL_ENDS) {
        out.push_str(field);
        return;
    }
    out.push('"');
    out.push_str(&defused.replace('"', "\"\""));
    out.push('"');
}

/// The rows of `filter`, newest first. The SQL is fixed, with every filter present and either
/// applied or switched off by a NULL parameter, so that values never become SQL text.
async fn select(
    db: &Database,
    filter: &Filter,
    limit_offset: Option<(i64, i64)>,
) -> sqlx::Result<Vec<Entry>> {
    let (limit, offset) = limit_offset.unwrap_or((i64::MAX, 0));
    let action_prefix = filter.action.as_ref().map(|action| format!("{action}%"));
    let rows = sqlx::query(
        "SELECT id, created_at, actor_id, actor_email, action, target_type, target_id, reason, \
         client_ip, details FROM audit_log \
         WHERE ($1 IS NULL OR actor_id = $1 OR actor_email = $1) \
         AND ($2 IS NULL OR action LIKE $2) \
         AND ($3 IS NULL OR target_id = $3) \
         AND ($4 IS NULL OR created_at >= $4) \
         AND ($5 IS NULL OR created_at < $5) \
         ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7",
    )
    .bind(filter.actor.as_deref())
    .bind(action_prefix)
    .bind(filter.target.as_deref())
    .bind(filter.since)
    .bind(filter.until)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(entry).collect()
}

fn entry(row: &AnyRow) -> sqlx::Result<Entry> {
    Ok(Entry {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        actor_id: row.try_get("actor_id")?,
        actor_email: row.try_get("actor_email")?,
        action: row.try_get("action")?,
        target_type: row.try_get("target_type")?,
        target_id: row.try_get("target_id")?,
        reason: row.try_get("reason")?,
        client_ip: row.try_get("client_ip")?,
        details: row.try_get("details")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(text: &str) -> String {
        let mut out = String::new();
        push_csv_field(&mut out, text);
        out
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed_and_formulas_are_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("a;b"), "\"a;b\"");
        assert_eq!(field("say \"hi\"\nbye"), "\"say \"\"hi\"\"\nbye\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "\"'-1\"");
    }

    #[test]
    fn formulas_are_defused_wherever_a_cell_could_start() {
        assert_eq!(field("ok;=1+1"), "\"ok;'=1+1\"");
        assert_eq!(field("a,@SUM(A1)"), "\"a,'@SUM(A1)\"");
        assert_eq!(field("line\n+1"), "\"line\n'+1\"");
        assert_eq!(field("x\t-2"), "\"x\t'-2\"");
        assert_eq!(field("\"=cmd\""), "\"\"\"'=cmd\"\"\"");
        // Inside a cell, they are text: a 2-3 range, an address.
        assert_eq!(field("2-3 a@b.c"), "2-3 a@b.c");
    }

    #[test]
    fn empty_filters_are_no_filters_and_wildcards_are_refused() {
        let filter = Filter {
            actor: Some("  ".into()),
            action: Some(" customer. ".into()),
            ..Filter::default()
        }
        .normalized()
        .unwrap();
        assert_eq!(filter.actor, None);
        assert_eq!(filter.action.as_deref(), Some("customer."));

        let wildcard = Filter {
            action: Some("%".into()),
            ..Filter::default()
        };
        assert!(matches!(wildcard.normalized(), Err(AdminError::Invalid(_))));
    }
}
