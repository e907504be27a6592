//! Subscriptions in the back office (module `admin/billing`): the list of every subscription,
//! a customer's subscriptions, and the dashboard's figures, read from the `subscriptions` and
//! `customers` tables that module `billing/subscriptions` keeps from Stripe's events.
//!
//! Definitions (docs/admin-operations.md):
//!
//! - **active subscriptions**: subscriptions whose status is `active` or `trialing`;
//! - **MRR**, per currency: the sum, over subscriptions whose status is `active` or `past_due`
//!   (trials pay nothing yet; a past-due subscription is still billed until Stripe ends it), of
//!   `unit_amount × quantity` normalized to a month by the price's interval: a year is 1/12 of
//!   it, a week 52/12, a day 365/12, and `interval_count` divides (every 3 months is 1/3). The
//!   sum is kept to a millionth of the smallest unit and rounded once, halves up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::admin::metrics::{Metric, group_thousands};
use crate::admin::{AdminError, Page, PageQuery};
use crate::billing::Subscription;
use crate::db::Database;

/// Stripe's subscription statuses, the values of the list's `status` filter.
pub const STATUSES: [&str; 8] = [
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
];

/// A subscription as the back office shows it: the api's fields, the account it belongs to (when
/// its checkout has linked its Stripe customer to one) and what it adds to MRR.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CustomerSubscription)]
pub struct SubscriptionView {
    #[serde(flatten)]
    pub subscription: Subscription,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    /// `unit_amount × quantity` normalized to a month (see the module's documentation), in the
    /// currency's smallest unit; `None` without a recurring price.
    pub monthly_amount: Option<i64>,
    /// When the stored state last changed, Unix seconds.
    pub updated_at: i64,
}

/// `?status=&page=&per_page=` of the list; `status` is one of [`STATUSES`].
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// Only subscriptions in this Stripe status, e.g. `active`.
    pub status: Option<String>,
    // Not a flattened `PageQuery`: serde's flatten loses the numbers of query strings.
    /// The 1-based page number.
    pub page: Option<u32>,
    /// Items per page.
    pub per_page: Option<u32>,
}

impl Filter {
    /// An empty status as no filter; 422 for a status Stripe does not have.
    pub fn normalized(mut self) -> Result<Self, AdminError> {
        self.status = self
            .status
            .take()
            .map(|status| status.trim().to_owned())
            .filter(|status| !status.is_empty());
        if let Some(status) = &self.status
            && !STATUSES.contains(&status.as_str())
        {
            let problem = format!("must be one of {}", STATUSES.join(", "));
            return Err(AdminError::invalid_field("status", problem));
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

macro_rules! view_columns {
    () => {
        concat!(
            crate::billing::subscription_columns!(),
            ", c.user_id, u.email AS user_email, s.updated_at"
        )
    };
}

fn view(row: &AnyRow) -> sqlx::Result<SubscriptionView> {
    let subscription = Subscription::from_row(row)?;
    let monthly_amount = match (subscription.unit_amount, subscription.interval.as_deref()) {
        (Some(unit_amount), Some(interval)) => monthly_amount(
            unit_amount.saturating_mul(subscription.quantity),
            interval,
            subscription.interval_count.unwrap_or(1),
        ),
        _ => None,
    };
    Ok(SubscriptionView {
        subscription,
        user_id: row.try_get("user_id")?,
        user_email: row.try_get("user_email")?,
        monthly_amount,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The subscriptions `filter` selects, most recently changed first, one page of them.
pub async fn list(db: &Database, filter: &Filter) -> sqlx::Result<Page<SubscriptionView>> {
    let page = filter.page_query();
    let (limit, offset) = page.limit_offset();
    let rows = sqlx::query(concat!(
        "SELECT ",
        view_columns!(),
        " FROM subscriptions s \
         LEFT JOIN customers c ON c.stripe_customer_id = s.stripe_customer_id \
         LEFT JOIN users u ON u.id = c.user_id \
         WHERE ($1 = '' OR s.status = $1) \
         ORDER BY s.updated_at DESC, s.stripe_subscription_id LIMIT $2 OFFSET $3"
    ))
    .bind(filter.status.as_deref().unwrap_or(""))
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let items = rows.iter().map(view).collect::<sqlx::Result<Vec<_>>>()?;
    Ok(Page::from_rows(page, items))
}

/// Every subscription of user `user_id` (through the Stripe customers linked to them): running
/// ones first (`trialing`, `active`, `past_due`), then the newest.
pub async fn of_user(db: &Database, user_id: &str) -> sqlx::Result<Vec<SubscriptionView>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        view_columns!(),
        " FROM subscriptions s \
         JOIN customers c ON c.stripe_customer_id = s.stripe_customer_id \
         LEFT JOIN users u ON u.id = c.user_id \
         WHERE c.user_id = $1 \
         ORDER BY CASE WHEN s.status IN ('trialing', 'active', 'past_due') THEN 0 ELSE 1 END, \
             s.state_event_created DESC, s.stripe_subscription_id"
    ))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(view).collect()
}

/// The dashboard's figures: `subscriptions_active`, and MRR in each currency subscriptions are
/// paid in (`mrr_usd`, `mrr_eur`, ..., in the currency's smallest unit), or one `mrr` of 0 while
/// nothing is paid.
pub async fn metrics(db: &Database) -> sqlx::Result<Vec<Metric>> {
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM subscriptions WHERE status IN ('active', 'trialing')",
    )
    .fetch_one(db.pool())
    .await?;
    let mut metrics = vec![Metric::count(
        "subscriptions_active",
        "Active subscriptions",
        active,
    )];
    let mrr = mrr(db).await?;
    if mrr.is_empty() {
        metrics.push(Metric::count("mrr", "MRR", 0));
    }
    for CurrencyAmount { currency, amount } in mrr {
        metrics.push(Metric {
            key: format!("mrr_{currency}").into(),
            label: format!("MRR ({})", currency.to_ascii_uppercase()).into(),
            value: amount,
            display: format_amount(amount, &currency),
            link: None,
        });
    }
    Ok(metrics)
}

/// MRR in each currency (see the module's documentation), by currency code.
pub async fn mrr(db: &Database) -> sqlx::Result<Vec<CurrencyAmount>> {
    // Summed in SQL per currency and price interval, exactly; normalized here. The cast keeps
    // PostgreSQL's sum of BIGINTs (a NUMERIC) a BIGINT.
    let rows = sqlx::query(
        "SELECT currency, billing_interval, interval_count, \
             CAST(sum(unit_amount * quantity) AS BIGINT) AS amount \
         FROM subscriptions \
         WHERE status IN ('active', 'past_due') AND unit_amount IS NOT NULL \
             AND currency IS NOT NULL AND billing_interval IS NOT NULL \
         GROUP BY currency, billing_interval, interval_count",
    )
    .fetch_all(db.pool())
    .await?;
    let totals = rows
        .iter()
        .map(|row| {
            Ok(RecurringTotal {
                currency: row.try_get("currency")?,
                interval: row.try_get("billing_interval")?,
                interval_count: row
                    .try_get::<Option<i64>, _>("interval_count")?
                    .unwrap_or(1),
                amount: row.try_get("amount")?,
            })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(mrr_by_currency(&totals))
}

/// What subscriptions of one price interval pay per period, together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurringTotal {
    pub currency: String,
    /// `day`, `week`, `month` or `year`.
    pub interval: String,
    /// Billed every `interval_count` intervals.
    pub interval_count: i64,
    /// In the currency's smallest unit.
    pub amount: i64,
}

/// An amount in a currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyAmount {
    /// ISO 4217, lower case, as Stripe writes it.
    pub currency: String,
    /// In the currency's smallest unit.
    pub amount: i64,
}

/// Amounts per month are summed in millionths of the smallest unit, then rounded once.
const MICROS: i128 = 1_000_000;

/// How many times an interval fits in a year.
fn per_year(interval: &str) -> Option<i128> {
    match interval {
        "day" => Some(365),
        "week" => Some(52),
        "month" => Some(12),
        "year" => Some(1),
        _ => None,
    }
}

/// `amount` billed every `count` `interval`s, per month, in millionths of the unit: `None` for
/// an unknown interval or a count below 1.
fn monthly_micros(amount: i64, interval: &str, count: i64) -> Option<i128> {
    let per_year = per_year(interval)?;
    if count < 1 {
        return None;
    }
    Some(divide_rounding(
        i128::from(amount) * per_year * MICROS,
        12 * i128::from(count),
    ))
}

/// `amount` billed every `count` `interval`s, per month (year: /12, week: ×52/12, day:
/// ×365/12, and /count), rounded to the unit, halves up.
pub fn monthly_amount(amount: i64, interval: &str, count: i64) -> Option<i64> {
    monthly_micros(amount, interval, count).map(micros_to_units)
}

/// MRR per currency from the totals of each price interval: each normalized to a month, summed
/// per currency, rounded once. Currencies are lower-cased and sorted; a total with an unknown
/// interval, a count below 1 or a currency that is not three letters is left out.
pub fn mrr_by_currency(totals: &[RecurringTotal]) -> Vec<CurrencyAmount> {
    let mut sums: BTreeMap<String, i128> = BTreeMap::new();
    for total in totals {
        let currency = total.currency.to_ascii_lowercase();
        let valid = currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_lowercase());
        let monthly = monthly_micros(total.amount, &total.interval, total.interval_count);
        match monthly {
            Some(monthly) if valid => *sums.entry(currency).or_default() += monthly,
            _ => tracing::warn!(
                currency = %total.currency,
                interval = %total.interval,
                interval_count = total.interval_count,
                "a recurring price left out of MRR"
            ),
        }
    }
    sums.into_iter()
        .map(|(currency, micros)| CurrencyAmount {
            currency,
            amount: micros_to_units(micros),
        })
        .collect()
}

fn micros_to_units(micros: i128) -> i64 {
    let units = divide_rounding(micros, MICROS);
    i64::try_from(units).unwrap_or(if units < 0 { i64::MIN } else { i64::MAX })
}

/// `numerator / denominator` (positive) rounded to the nearest integer, halves up.
fn divide_rounding(numerator: i128, denominator: i128) -> i128 {
    (2 * numerator + denominator).div_euclid(2 * denominator)
}

/// How many digits follow the decimal point in `currency` (lower case), as Stripe counts them:
/// its zero-decimal currencies have none, its three-decimal ones three, the others two.
fn decimals(currency: &str) -> u32 {
    const ZERO_DECIMAL: [&str; 16] = [
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
        "xaf", "xof", "xpf",
    ];
    const THREE_DECIMAL: [&str; 5] = ["bhd", "jod", "kwd", "omr", "tnd"];
    if ZERO_DECIMAL.contains(&currency) {
        0
    } else if THREE_DECIMAL.contains(&currency) {
        3
    } else {
        2
    }
}

/// `amount` of `currency`'s smallest unit for people: `$1,234.50`, `€9.00`, `¥500`,
/// `CHF 12.00`.
pub fn format_amount(amount: i64, currency: &str) -> String {
    let currency = currency.to_ascii_lowercase();
    let decimals = decimals(&currency);
    let scale = 10_u64.pow(decimals);
    let magnitude = amount.unsigned_abs();
    let units = group_thousands(i64::try_from(magnitude / scale).unwrap_or(i64::MAX));
    let number = if decimals == 0 {
        units
    } else {
        let fraction = magnitude % scale;
        format!("{units}.{fraction:0width$}", width = decimals as usize)
    };
    let sign = if amount < 0 { "-" } else { "" };
    let symbol = match currency.as_str() {
        "usd" => "$",
        "eur" => "€",
        "gbp" => "£",
        "jpy" => "¥",
        _ => return format!("{sign}{} {number}", currency.to_ascii_uppercase()),
    };
    format!("{sign}{symbol}{number}")
}

/// A price for people: `$29.00 / month`, `3 × €5.00 / 2 weeks`, `£10.00` (one-off), `—`
/// without an amount.
pub fn describe_price(
    unit_amount: Option<i64>,
    currency: Option<&str>,
    quantity: i64,
    interval: Option<&str>,
    interval_count: Option<i64>,
) -> String {
    let (Some(amount), Some(currency)) = (unit_amount, currency) else {
        return "—".to_owned();
    };
    let mut text = format_amount(amount, currency);
    if quantity != 1 {
        text = format!("{quantity} × {text}");
    }
    match (interval, interval_count.unwrap_or(1)) {
        (None, _) => text,
        (Some(interval), 1) => format!("{text} / {interval}"),
        (Some(interval), count) => format!("{text} / {count} {interval}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(currency: &str, interval: &str, interval_count: i64, amount: i64) -> RecurringTotal {
        RecurringTotal {
            currency: currency.into(),
            interval: interval.into(),
            interval_count,
            amount,
        }
    }

    #[test]
    fn prices_are_normalized_to_a_month() {
        assert_eq!(monthly_amount(2_900, "month", 1), Some(2_900));
        assert_eq!(monthly_amount(12_000, "year", 1), Some(1_000));
        // 100 × 52 / 12 = 433.33; 100 × 365 / 12 = 3,041.67.
        assert_eq!(monthly_amount(100, "week", 1), Some(433));
        assert_eq!(monthly_amount(100, "day", 1), Some(3_042));
        assert_eq!(monthly_amount(3_000, "month", 3), Some(1_000));
        assert_eq!(monthly_amount(24_000, "year", 2), Some(1_000));
        assert_eq!(monthly_amount(600, "week", 2), Some(1_300));
        // Halves round up.
        assert_eq!(monthly_amount(6, "year", 1), Some(1));
        assert_eq!(monthly_amount(5, "year", 1), Some(0));
        assert_eq!(monthly_amount(100, "fortnight", 1), None);
        assert_eq!(monthly_amount(100, "month", 0), None);
    }

    #[test]
    fn mrr_is_summed_per_currency_and_rounded_once() {
        let totals = [
            total("usd", "month", 1, 2_900),
            total("usd", "year", 1, 24_000),
            total("EUR", "week", 1, 1_000),
            total("eur", "month", 1, 1),
            // A third of a cent each month, three times: one cent, not zero.
            total("gbp", "month", 3, 1),
            total("gbp", "month", 3, 1),
            total("gbp", "month", 3, 1),
            total("usd", "fortnight", 1, 1_000),
            total("dollars", "month", 1, 1_000),
        ];

        let mrr = mrr_by_currency(&totals);

        let amount = |currency: &str, amount: i64| CurrencyAmount {
            currency: currency.into(),
            amount,
        };
        assert_eq!(
            mrr,
            [amount("eur", 4_334), amount("gbp", 1), amount("usd", 4_900)]
        );
        assert!(mrr_by_currency(&[]).is_empty());
    }

    #[test]
    fn amounts_are_shown_in_their_currency() {
        assert_eq!(format_amount(4_900, "usd"), "$49.00");
        assert_eq!(format_amount(123_456_789, "USD"), "$1,234,567.89");
        assert_eq!(format_amount(4_333, "eur"), "€43.33");
        assert_eq!(format_amount(5, "gbp"), "£0.05");
        assert_eq!(format_amount(500, "jpy"), "¥500");
        assert_eq!(format_amount(1_500, "kwd"), "KWD 1.500");
        assert_eq!(format_amount(1_200, "chf"), "CHF 12.00");
        assert_eq!(format_amount(-250, "usd"), "-$2.50");
        assert_eq!(
            format_amount(i64::MIN, "usd"),
            "-$92,233,720,368,547,758.08"
        );
    }

    #[test]
    fn prices_are_described_with_quantity_and_interval() {
        let price = |amount, quantity, interval, count| {
            describe_price(amount, Some("usd"), quantity, interval, count)
        };
        assert_eq!(
            price(Some(2_900), 1, Some("month"), Some(1)),
            "$29.00 / month"
        );
        assert_eq!(
            price(Some(500), 3, Some("week"), Some(2)),
            "3 × $5.00 / 2 weeks"
        );
        assert_eq!(price(Some(1_000), 1, None, None), "$10.00");
        assert_eq!(price(None, 1, Some("month"), Some(1)), "—");
    }

    #[test]
    fn the_status_filter_knows_stripes_statuses() {
        let filter = |status: &str| {
            Filter {
                status: Some(status.into()),
                ..Filter::default()
            }
            .normalized()
        };
        assert_eq!(
            filter(" active ").unwrap().status.as_deref(),
            Some("active")
        );
        assert_eq!(filter("").unwrap().status, None);
        assert!(matches!(filter("live"), Err(AdminError::Invalid(_))));
    }
}
