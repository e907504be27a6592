//! The dashboard's figures. Each module with something to count adds its own [`Metric`]s (the
//! admin service's `dashboard.rs` collects them); this one counts accounts.

use std::borrow::Cow;

use serde::Serialize;
use sqlx::Row;

use crate::db::Database;

/// One figure of the dashboard and of `GET /api/admin/metrics`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Metric {
    /// Stable, for programs: `users_total`, `mrr_usd`, ... (owned where it is made at run time,
    /// as one figure per currency is).
    #[schema(value_type = String, example = "users_total")]
    pub key: Cow<'static, str>,
    /// For people.
    #[schema(value_type = String)]
    pub label: Cow<'static, str>,
    pub value: i64,
    /// The value as the dashboard shows it (`1,234`, `€56.00`).
    pub display: String,
    /// A panel page with the details, if there is one.
    pub link: Option<&'static str>,
}

impl Metric {
    /// A count, shown with thousands separators.
    pub fn count(key: &'static str, label: &'static str, value: i64) -> Self {
        Self {
            key: Cow::Borrowed(key),
            label: Cow::Borrowed(label),
            value,
            display: group_thousands(value),
            link: None,
        }
    }

    pub fn with_link(mut self, link: &'static str) -> Self {
        self.link = Some(link);
        self
    }
}

/// How many customers there are, and how many signed up in the last 7 days.
pub async fn users(db: &Database, now: i64) -> sqlx::Result<Vec<Metric>> {
    let row = sqlx::query(
        "SELECT count(*) AS total, \
             coalesce(sum(CASE WHEN created_at >= $1 THEN 1 ELSE 0 END), 0) AS new_7d \
         FROM users WHERE role = 'customer'",
    )
    .bind(now - 7 * 24 * 3600)
    .fetch_one(db.pool())
    .await?;
    let (total, new_7d) = (row.try_get("total")?, row.try_get("new_7d")?);
    Ok(vec![
        Metric::count("users_total", "Customers", total).with_link("/admin/customers"),
        Metric::count("users_new_7d", "New customers (7 days)", new_7d),
    ])
}

/// `1234567` as `1,234,567`.
pub fn group_thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        grouped.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1_000), "1,000");
        assert_eq!(group_thousands(-1_234_567), "-1,234,567");
    }
}
