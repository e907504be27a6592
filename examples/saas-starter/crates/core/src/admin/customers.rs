//! Customers as staff see them: search, a customer's account and sessions, and the actions on
//! them (disable, enable, revoke sessions), each audited in the transaction of its effect.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, Actor};
use super::{AdminError, Page, PageQuery, like_pattern};
use crate::auth::accounts::user_columns;
use crate::auth::{User, session};
use crate::db::Database;

/// An account in the customer list and on its page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Customer {
    #[serde(flatten)]
    pub user: User,
    /// Unix seconds; `None` while the account is enabled.
    pub disabled_at: Option<i64>,
}

/// `?q=&page=&per_page=`: `q` matches a part of the email or of the name, ignoring case.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// A part of the email or of the name, ignoring case.
    pub q: Option<String>,
    /// The 1-based page number.
    pub page: Option<u32>,
    /// Items per page.
    pub per_page: Option<u32>,
}

impl Search {
    fn page_query(&self) -> PageQuery {
        PageQuery {
            page: self.page,
            per_page: self.per_page,
        }
    }

    /// The `LIKE` pattern of `q`; `None` lists everyone.
    fn pattern(&self) -> Option<String> {
        like_pattern(self.q.as_deref())
    }
}

/// The accounts `search` selects, newest first.
pub async fn search(db: &Database, search: &Search) -> sqlx::Result<Page<Customer>> {
    let page = search.page_query();
    let (limit, offset) = page.limit_offset();
    let query = concat!(
        "SELECT ",
        user_columns!(),
        ", users.disabled_at FROM users \
         WHERE ($1 IS NULL OR users.email LIKE $1 ESCAPE '\\' \
         OR lower(users.full_name) LIKE $1 ESCAPE '\\') \
         ORDER BY users.created_at DESC, users.id DESC LIMIT $2 OFFSET $3"
    );
    let rows = sqlx::query(query)
        .bind(search.pattern())
        .bind(limit)
        .bind(offset)
        .fetch_all(db.pool())
        .await?;
    let customers = rows.iter().map(customer).collect::<sqlx::Result<_>>()?;
    Ok(Page::from_rows(page, customers))
}

/// The account `id`; 404 when there is none.
pub async fn find(db: &Database, id: &str) -> Result<Customer, AdminError> {
    let query = concat!(
        "SELECT ",
        user_columns!(),
        ", users.disabled_at FROM users WHERE users.id = $1"
    );
    let row = sqlx::query(query)
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    match row {
        Some(row) => Ok(customer(&row)?),
        None => Err(AdminError::UnknownCustomer),
    }
}

fn customer(row: &AnyRow) -> sqlx::Result<Customer> {
    Ok(Customer {
        user: User::from_row(row)?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

/// A session of a customer's that is in force, as staff see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CustomerSession)]
pub struct SessionView {
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
}

/// The sessions of `user_id` that have not been revoked or reached their absolute timeout,
/// newest first. (Idle ones are listed until they are swept or revoked: the idle timeout is
/// a setting of the api's.)
pub async fn sessions(db: &Database, user_id: &str, now: i64) -> sqlx::Result<Vec<SessionView>> {
    let rows = sqlx::query(
        "SELECT id, created_at, last_seen_at, expires_at, user_agent FROM sessions \
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
         ORDER BY created_at DESC",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SessionView {
                id: row.try_get("id")?,
                created_at: row.try_get("created_at")?,
                last_seen_at: row.try_get("last_seen_at")?,
                expires_at: row.try_get("expires_at")?,
                user_agent: row.try_get("user_agent")?,
            })
        })
        .collect()
}

/// Disables (`true`) or enables the account `id`. Disabling also ends every session of it, and
/// with them every refresh token and every access token (they name their session), at once.
/// Staff accounts are not disabled here: 403, so that nobody locks out the last admin by
/// accident. Returns the account as it is now.
pub async fn set_disabled(
    db: &Database,
    actor: Actor<'_>,
    id: &str,
    disabled: bool,
    reason: Option<&str>,
    now: i64,
) -> Result<Customer, AdminError> {
    let customer = find(db, id).await?;
    if customer.user.role.is_staff() {
        return Err(AdminError::StaffAccount);
    }
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE users SET disabled_at = $1, updated_at = $2 WHERE id = $3")
        .bind(disabled.then_some(now))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let ended = if disabled {
        session::end(&mut tx, id, None, now).await?
    } else {
        0
    };
    let details = format!(r#"{{"sessions_ended":{ended}}}"#);
    let action = audit::Action {
        action: if disabled {
            "customer.disable"
        } else {
            "customer.enable"
        },
        target_type: "user",
        target_id: id,
        reason,
        details: Some(&details),
    };
    audit::record(&mut tx, actor, action, now).await?;
    tx.commit().await?;
    find(db, id).await
}

/// Ends the sessions of customer `id`: one (`session_id`) or all of them. Returns how many
/// ended; 404 when the customer does not exist.
pub async fn revoke_sessions(
    db: &Database,
    actor: Actor<'_>,
    id: &str,
    session_id: Option<&str>,
    now: i64,
) -> Result<u64, AdminError> {
    find(db, id).await?;
    let mut tx = db.begin_write().await?;
    let ended = session::end(&mut tx, id, session_id, now).await?;
    let details = format!(r#"{{"sessions_ended":{ended}}}"#);
    let action = audit::Action {
        action: "customer.revoke_sessions",
        target_type: "user",
        target_id: id,
        reason: None,
        details: Some(&details),
    };
    audit::record(&mut tx, actor, action, now).await?;
    tx.commit().await?;
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_patterns_escape_wildcards_and_ignore_case() {
        let search = |q: &str| {
            Search {
                q: Some(q.into()),
                ..Search::default()
            }
            .pattern()
        };

        assert_eq!(search("  "), None);
        assert_eq!(search("Ada").as_deref(), Some("%ada%"));
        assert_eq!(search("50%_off\\").as_deref(), Some("%50\\%\\_off\\\\%"));
    }
}
