//! Billing state kept from Stripe's events: `customers` (a Stripe customer, the user it
//! belongs to and, with module `billing/orgs`, the organization) and `subscriptions` (status,
//! price, period, cancellation).
//!
//! Stripe does not deliver events in order, and retries and replays deliver them again. Every
//! write is therefore conditional on the `created` time of the event that wrote what it would
//! change, and an event older than that changes nothing. A subscription row has two such clocks,
//! because two kinds of event carry different parts of its state:
//!
//! - `customer.subscription.*` events carry the whole subscription: only they decide its price,
//!   quantity and cancellation (`state_event_created`);
//! - invoice events carry a payment: they move the status (paid or past due) and the period end,
//!   which subscription events carry too (`status_event_created`). An invoice never advances the
//!   first clock, so a subscription event created before a paid invoice but delivered after it
//!   still brings its plan change.
//!
//! Between two subscription events of the same second, the one further along the subscription's
//! life wins (`incomplete`, then the running statuses, then `canceled`), and an ended
//! subscription's status is final: a late `created` or a late invoice never revives it.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::webhooks::{Event, Handler, HandlerError, Handlers};

/// The handlers of the event types this module keeps state from.
pub fn webhook_handlers() -> Handlers {
    Handlers::new()
        .on(&["checkout.session.completed"], CheckoutCompleted)
        .on(
            &[
                "customer.subscription.created",
                "customer.subscription.updated",
                "customer.subscription.deleted",
            ],
            SubscriptionChanged,
        )
        .on(&["invoice.paid", "invoice.payment_failed"], InvoiceSettled)
}

/// A subscription as the api shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: String,
    pub customer_id: String,
    /// Stripe's status: `trialing`, `active`, `past_due`, `canceled`, `unpaid`, ...
    pub status: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    /// In the currency's smallest unit (cents).
    pub unit_amount: Option<i64>,
    pub currency: Option<String>,
    /// `day`, `week`, `month` or `year`.
    pub interval: Option<String>,
    pub interval_count: Option<i64>,
    pub quantity: i64,
    /// Unix seconds.
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
}

/// The columns [`Subscription::from_row`] reads, of `subscriptions` as `s`. A macro so that
/// queries can `concat!` it into the literal SQL sqlx takes. They are read by name, without the
/// table: a query that joins a table with columns of the same names and selects them too gives
/// those an alias.
macro_rules! subscription_columns {
    () => {
        "s.stripe_subscription_id, s.stripe_customer_id, s.status, s.price_id, s.product_id, \
         s.unit_amount, s.currency, s.billing_interval, s.interval_count, s.quantity, \
         s.current_period_end, s.cancel_at_period_end, s.canceled_at"
    };
}
pub(crate) use subscription_columns;

impl Subscription {
    /// Reads a subscription from the [`subscription_columns`] of `row`, by name, wherever the
    /// query put them.
    pub fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("stripe_subscription_id")?,
            customer_id: row.try_get("stripe_customer_id")?,
            status: row.try_get("status")?,
            price_id: row.try_get("price_id")?,
            product_id: row.try_get("product_id")?,
            unit_amount: row.try_get("unit_amount")?,
            currency: row.try_get("currency")?,
            interval: row.try_get("billing_interval")?,
            interval_count: row.try_get("interval_count")?,
            quantity: row.try_get("quantity")?,
            current_period_end: row.try_get("current_period_end")?,
            cancel_at_period_end: row.try_get::<i64, _>("cancel_at_period_end")? != 0,
            canceled_at: row.try_get("canceled_at")?,
        })
    }
}

/// Who pays: an account, or (module `billing/orgs`) an organization. Without organizations
/// every customer belongs to an account; with them, to an organization too (`customers.org_id`),
/// and a single user's personal organization stands for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payer {
    User(String),
    Organization(String),
}

/// The subscription of `payer` that matters most: a running one if there is one, else the
/// latest.
pub async fn subscription_of(
    conn: &mut AnyConnection,
    payer: &Payer,
) -> Result<Option<Subscription>, sqlx::Error> {
    // One query per kind of payer, as literal SQL: the ranking is the same.
    macro_rules! best_subscription_where {
        ($column:literal) => {
            concat!(
                "SELECT ",
                subscription_columns!(),
                " FROM subscriptions s \
                 JOIN customers c ON c.stripe_customer_id = s.stripe_customer_id WHERE ",
                $column,
                " = $1 ORDER BY CASE WHEN s.status IN ('trialing', 'active', 'past_due') \
                     THEN 0 ELSE 1 END, s.state_event_created DESC LIMIT 1"
            )
        };
    }
    let (sql, id) = match payer {
        Payer::User(id) => (best_subscription_where!("c.user_id"), id),
        Payer::Organization(id) => (best_subscription_where!("c.org_id"), id),
    };
    let row = sqlx::query(sql).bind(id).fetch_optional(conn).await?;
    row.map(|row| Subscription::from_row(&row)).transpose()
}

/// How far along its life a subscription status is: the tie-breaker between events of the same
/// second.
fn status_rank(status: &str) -> i64 {
    match status {
        "incomplete" => 0,
        "canceled" | "incomplete_expired" => 2,
        _ => 1,
    }
}

/// `checkout.session.completed`: links the session's Stripe customer to the user who paid, named
/// by `client_reference_id` (the user id the checkout was created with) or by email. Module
/// `billing/orgs` replaces it with a handler that links the organization too, from these parts.
pub struct CheckoutCompleted;

/// A Checkout Session, as `checkout.session.completed` carries it.
#[derive(Deserialize)]
pub struct CheckoutSession {
    /// `None` for a one-off payment without a customer object.
    pub customer: Option<String>,
    pub client_reference_id: Option<String>,
    customer_email: Option<String>,
    customer_details: Option<CustomerDetails>,
}

#[derive(Deserialize)]
struct CustomerDetails {
    email: Option<String>,
}

impl CheckoutSession {
    /// The address that paid, normalized as account addresses are (trimmed, lower-cased).
    pub fn email(&self) -> Option<String> {
        self.customer_details
            .as_ref()
            .and_then(|details| details.email.clone())
            .or_else(|| self.customer_email.clone())
            .map(|email| email.trim().to_lowercase())
    }
}

/// The account with id `id` or, failing that, address `email`.
pub async fn find_user(
    conn: &mut AnyConnection,
    id: Option<&str>,
    email: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM users WHERE id = $1 OR email = $2 \
         ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1",
    )
    .bind(id.unwrap_or(""))
    .bind(email.unwrap_or(""))
    .fetch_optional(conn)
    .await
}

/// Links Stripe customer `customer` to account `user_id` and, with module `billing/orgs`, to
/// organization `org_id` (`None` keeps the one it has).
pub async fn link_customer(
    conn: &mut AnyConnection,
    event: &Event,
    customer: &str,
    user_id: &str,
    email: Option<&str>,
    org_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customers (stripe_customer_id, user_id, org_id, email, livemode, \
             created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (stripe_customer_id) DO UPDATE SET user_id = excluded.user_id, \
             org_id = COALESCE(excluded.org_id, customers.org_id), email = excluded.email, \
             updated_at = excluded.updated_at",
    )
    .bind(customer)
    .bind(user_id)
    .bind(org_id)
    .bind(email)
    .bind(i64::from(event.livemode))
    .bind(crate::auth::now())
    .execute(conn)
    .await?;
    tracing::info!(event = %event.id, %customer, user = %user_id, org = ?org_id, "customer linked");
    Ok(())
}

impl Handler for CheckoutCompleted {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        conn: &'a mut AnyConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let session: CheckoutSession = event.object()?;
            // A one-off payment without a customer object: there is nothing to link.
            let Some(customer) = &session.customer else {
                return Ok(());
            };
            let email = session.email();
            let reference = session.client_reference_id.as_deref();
            let user_id = find_user(conn, reference, email.as_deref()).await?;
            // Retried: the account may be committed a moment after the payment completes.
            let user_id = user_id.ok_or_else(|| {
                format!(
                    "no user has id {:?} or email {:?} (yet)",
                    reference.unwrap_or_default(),
                    email.as_deref().unwrap_or_default()
                )
            })?;
            link_customer(conn, event, customer, &user_id, email.as_deref(), None).await?;
            Ok(())
        })
    }
}

/// `customer.subscription.created|updated|deleted`: the object is the whole subscription.
struct SubscriptionChanged;

#[derive(Deserialize)]
struct SubscriptionObject {
    id: String,
    customer: String,
    status: String,
    #[serde(default)]
    cancel_at_period_end: bool,
    canceled_at: Option<i64>,
    /// On the subscription before API version 2025-03-31, on its items since.
    current_period_end: Option<i64>,
    items: Items,
}

#[derive(Deserialize)]
struct Items {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    price: Price,
    quantity: Option<i64>,
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
struct Price {
    id: String,
    /// An id, or the expanded product object.
    product: Option<serde_json::Value>,
    unit_amount: Option<i64>,
    currency: Option<String>,
    recurring: Option<Recurring>,
}

#[derive(Deserialize)]
struct Recurring {
    interval: String,
    interval_count: Option<i64>,
}

/// A subscription event's row of `subscriptions`, as [`SubscriptionChanged`] passes it to the
/// database (in a JSON array: one statement for the events of a batch).
#[derive(Serialize)]
struct SubscriptionRow<'a> {
    id: &'a str,
    customer: &'a str,
    status: &'a str,
    price_id: Option<&'a str>,
    product_id: Option<&'a str>,
    unit_amount: Option<i64>,
    currency: Option<&'a str>,
    billing_interval: Option<&'a str>,
    interval_count: Option<i64>,
    quantity: i64,
    current_period_end: Option<i64>,
    cancel_at_period_end: i64,
    canceled_at: Option<i64>,
    livemode: i64,
    event_id: &'a str,
    event_created: i64,
    state_rank: i64,
}

impl<'a> SubscriptionRow<'a> {
    fn new(event: &'a Event, subscription: &'a SubscriptionObject) -> Self {
        // Plans here have one price each: the first item is the plan.
        let item = subscription.items.data.first();
        let price = item.map(|item| &item.price);
        let product_id = price
            .and_then(|price| price.product.as_ref())
            .and_then(|product| product.as_str().or_else(|| product["id"].as_str()));
        let recurring = price.and_then(|price| price.recurring.as_ref());
        Self {
            id: &subscription.id,
            customer: &subscription.customer,
            status: &subscription.status,
            price_id: price.map(|price| price.id.as_str()),
            product_id,
            unit_amount: price.and_then(|price| price.unit_amount),
            currency: price.and_then(|price| price.currency.as_deref()),
            billing_interval: recurring.map(|recurring| recurring.interval.as_str()),
            interval_count: recurring.and_then(|recurring| recurring.interval_count),
            quantity: item.and_then(|item| item.quantity).unwrap_or(1),
            current_period_end: subscription
                .current_period_end
                .or_else(|| item.and_then(|item| item.current_period_end)),
            cancel_at_period_end: i64::from(subscription.cancel_at_period_end),
            canceled_at: subscription.canceled_at,
            livemode: i64::from(event.livemode),
            event_id: &event.id,
            event_created: event.created,
            state_rank: status_rank(&subscription.status),
        }
    }
}

/// The upsert of [`SubscriptionRow`]s, after the `SELECT` that reads them from `$1` (a JSON
/// array) with `$2` as `updated_at`. Every field is conditional on the event being newer than
/// the one that wrote it (see the module documentation).
macro_rules! upsert_subscriptions {
    ($rows:literal) => {
        concat!(
            "INSERT INTO subscriptions (stripe_subscription_id, stripe_customer_id, status, \
                 price_id, product_id, unit_amount, currency, billing_interval, \
                 interval_count, quantity, current_period_end, cancel_at_period_end, \
                 canceled_at, livemode, state_event_id, state_event_created, state_rank, \
                 updated_at, status_event_id, status_event_created) ",
            $rows,
            " ON CONFLICT (stripe_subscription_id) DO UPDATE SET \
                 stripe_customer_id = excluded.stripe_customer_id, \
                 price_id = excluded.price_id, product_id = excluded.product_id, \
                 unit_amount = excluded.unit_amount, currency = excluded.currency, \
                 billing_interval = excluded.billing_interval, \
                 interval_count = excluded.interval_count, quantity = excluded.quantity, \
                 cancel_at_period_end = excluded.cancel_at_period_end, \
                 canceled_at = excluded.canceled_at, livemode = excluded.livemode, \
                 state_event_id = excluded.state_event_id, \
                 state_event_created = excluded.state_event_created, \
                 updated_at = excluded.updated_at, \
                 status = CASE WHEN ",
            newer_than_status!(),
            " THEN excluded.status ELSE subscriptions.status END, \
                 state_rank = CASE WHEN ",
            newer_than_status!(),
            " THEN excluded.state_rank ELSE subscriptions.state_rank END, \
                 current_period_end = CASE WHEN ",
            newer_than_status!(),
            " THEN excluded.current_period_end ELSE subscriptions.current_period_end END, \
                 status_event_id = CASE WHEN ",
            newer_than_status!(),
            " THEN excluded.status_event_id ELSE subscriptions.status_event_id END, \
                 status_event_created = CASE WHEN ",
            newer_than_status!(),
            " THEN excluded.status_event_created \
                 ELSE subscriptions.status_event_created END \
             WHERE excluded.state_event_created > subscriptions.state_event_created \
                 OR (excluded.state_event_created = subscriptions.state_event_created \
                     AND excluded.state_rank >= subscriptions.state_rank)"
        )
    };
}

/// The status and period end follow the newest event that carries them, an invoice included;
/// an ended subscription's status comes from the subscription event that ended it, whatever
/// invoice came later.
macro_rules! newer_than_status {
    () => {
        "(excluded.status_event_created > subscriptions.status_event_created \
         OR (excluded.status_event_created = subscriptions.status_event_created \
             AND excluded.state_rank >= subscriptions.state_rank) \
         OR excluded.state_rank = 2)"
    };
}

/// PostgreSQL reads the rows with `json_to_recordset`, SQLite with `json_each`: one statement
/// whatever the number of rows, so one prepared statement, planned once per connection.
const UPSERT_POSTGRES: &str = upsert_subscriptions!(
    "SELECT id, customer, status, price_id, product_id, unit_amount, currency, \
         billing_interval, interval_count, quantity, current_period_end, cancel_at_period_end, \
         canceled_at, livemode, event_id, event_created, state_rank, $2, event_id, \
         event_created \
     FROM json_to_recordset($1::json) AS r (id text, customer text, status text, \
         price_id text, product_id text, unit_amount bigint, currency text, \
         billing_interval text, interval_count bigint, quantity bigint, \
         current_period_end bigint, cancel_at_period_end bigint, canceled_at bigint, \
         livemode bigint, event_id text, event_created bigint, state_rank bigint)"
);

/// `WHERE true`: SQLite's parser needs it between a `SELECT` and `ON CONFLICT`.
const UPSERT_SQLITE: &str = upsert_subscriptions!(
    "SELECT json_extract(value, '$.id'), json_extract(value, '$.customer'), \
         json_extract(value, '$.status'), json_extract(value, '$.price_id'), \
         json_extract(value, '$.product_id'), json_extract(value, '$.unit_amount'), \
         json_extract(value, '$.currency'), json_extract(value, '$.billing_interval'), \
         json_extract(value, '$.interval_count'), json_extract(value, '$.quantity'), \
         json_extract(value, '$.current_period_end'), \
         json_extract(value, '$.cancel_at_period_end'), json_extract(value, '$.canceled_at'), \
         json_extract(value, '$.livemode'), json_extract(value, '$.event_id'), \
         json_extract(value, '$.event_created'), json_extract(value, '$.state_rank'), $2, \
         json_extract(value, '$.event_id'), json_extract(value, '$.event_created') \
     FROM json_each($1) WHERE true"
);

/// Splits `rows` into groups in which each subscription appears once, keeping each
/// subscription's rows in order (PostgreSQL refuses an upsert that changes one row twice), each
/// group sorted by subscription, so that concurrent batches lock rows in one order.
fn distinct_groups(rows: Vec<SubscriptionRow<'_>>) -> Vec<Vec<SubscriptionRow<'_>>> {
    let mut groups: Vec<Vec<SubscriptionRow<'_>>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for row in rows {
        if !seen.insert(row.id) || groups.is_empty() {
            seen.clear();
            seen.insert(row.id);
            groups.push(Vec::new());
        }
        if let Some(group) = groups.last_mut() {
            group.push(row);
        }
    }
    for group in &mut groups {
        group.sort_by(|a, b| a.id.cmp(b.id));
    }
    groups
}

impl Handler for SubscriptionChanged {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        conn: &'a mut AnyConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move { upsert_subscriptions(&[event], conn).await })
    }

    fn handle_all<'a>(
        &'a self,
        events: &'a [&'a Event],
        conn: &'a mut AnyConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(upsert_subscriptions(events, conn))
    }
}

/// Writes the subscriptions of `events`, in as few statements as their subscriptions allow
/// (one, unless a subscription has several events among them).
async fn upsert_subscriptions(
    events: &[&Event],
    conn: &mut AnyConnection,
) -> Result<(), HandlerError> {
    let subscriptions = events
        .iter()
        .map(|event| event.object::<SubscriptionObject>())
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<SubscriptionRow<'_>> = events
        .iter()
        .zip(&subscriptions)
        .map(|(event, subscription)| SubscriptionRow::new(event, subscription))
        .collect();
    let sql = if conn.backend_name() == "PostgreSQL" {
        UPSERT_POSTGRES
    } else {
        UPSERT_SQLITE
    };
    let now = crate::auth::now();
    for group in distinct_groups(rows) {
        let applied = sqlx::query(sql)
            .bind(serde_json::to_string(&group)?)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        let older = group
            .len()
            .saturating_sub(usize::try_from(applied).unwrap_or(usize::MAX));
        if older > 0 {
            tracing::info!(
                events = older,
                "subscription events older than the stored state: nothing changed"
            );
        }
    }
    Ok(())
}

/// `invoice.paid` and `invoice.payment_failed`: a paid invoice brings a subscription waiting for
/// payment back to `active` and moves its period end; a failed one makes an active subscription
/// `past_due`. Other statuses are Stripe's to change, with a subscription event.
struct InvoiceSettled;

#[derive(Deserialize)]
struct Invoice {
    /// Before API version 2025-03-31.
    subscription: Option<String>,
    /// Since: `parent.subscription_details.subscription`.
    parent: Option<serde_json::Value>,
    lines: Option<Lines>,
}

#[derive(Deserialize)]
struct Lines {
    data: Vec<Line>,
}

#[derive(Deserialize)]
struct Line {
    period: Option<Period>,
}

#[derive(Deserialize)]
struct Period {
    end: i64,
}

impl Handler for InvoiceSettled {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        conn: &'a mut AnyConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let invoice: Invoice = event.object()?;
            let subscription = invoice.subscription.or_else(|| {
                invoice
                    .parent
                    .as_ref()
                    .and_then(|parent| parent.pointer("/subscription_details/subscription"))
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            });
            // A one-off invoice: no subscription state to change.
            let Some(subscription) = subscription else {
                return Ok(());
            };
            let paid = event.event_type == "invoice.paid";
            let period_end = invoice
                .lines
                .iter()
                .flat_map(|lines| &lines.data)
                .filter_map(|line| line.period.as_ref().map(|period| period.end))
                .max();
            // Only what a payment decides, and only when the invoice is newer than the event
            // the status came from; `state_event_created`, the clock of what only a whole
            // subscription decides, is left alone. An ended subscription stays ended.
            let sql = if paid {
                "UPDATE subscriptions SET \
                     status = CASE WHEN status IN ('incomplete', 'past_due', 'unpaid') \
                         THEN 'active' ELSE status END, \
                     state_rank = CASE WHEN status = 'incomplete' THEN 1 ELSE state_rank END, \
                     current_period_end = COALESCE($2, current_period_end), \
                     status_event_id = $3, status_event_created = $4, updated_at = $5 \
                 WHERE stripe_subscription_id = $1 AND status_event_created <= $4"
            } else {
                "UPDATE subscriptions SET \
                     status = CASE WHEN status = 'active' THEN 'past_due' ELSE status END, \
                     current_period_end = COALESCE($2, current_period_end), \
                     status_event_id = $3, status_event_created = $4, updated_at = $5 \
                 WHERE stripe_subscription_id = $1 AND status_event_created <= $4"
            };
            let updated = sqlx::query(sql)
                .bind(&subscription)
                .bind(if paid { period_end } else { None })
                .bind(&event.id)
                .bind(event.created)
                .bind(crate::auth::now())
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if updated == 1 {
                return Ok(());
            }
            let known = sqlx::query(
                "SELECT status_event_created FROM subscriptions WHERE stripe_subscription_id = $1",
            )
            .bind(&subscription)
            .fetch_optional(&mut *conn)
            .await?;
            match known {
                // Newer state is stored already.
                Some(_) => Ok(()),
                // Retried: the subscription's own event usually arrives within seconds.
                None => Err(format!(
                    "subscription {subscription} is not known yet (its customer.subscription.created event has not been processed)"
                )
                .into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(id: &'a str, event_id: &'a str) -> SubscriptionRow<'a> {
        SubscriptionRow {
            id,
            customer: "cus_1",
            status: "active",
            price_id: None,
            product_id: None,
            unit_amount: None,
            currency: None,
            billing_interval: None,
            interval_count: None,
            quantity: 1,
            current_period_end: None,
            cancel_at_period_end: 0,
            canceled_at: None,
            livemode: 0,
            event_id,
            event_created: 1,
            state_rank: 1,
        }
    }

    /// One statement may write a subscription once: its later events go in later statements,
    /// in their order.
    #[test]
    fn each_group_has_a_subscription_once_and_keeps_its_events_in_order() {
        let rows = vec![
            row("sub_b", "evt_1"),
            row("sub_a", "evt_2"),
            row("sub_b", "evt_3"),
            row("sub_c", "evt_4"),
            row("sub_b", "evt_5"),
        ];
        let groups: Vec<Vec<(&str, &str)>> = distinct_groups(rows)
            .iter()
            .map(|group| group.iter().map(|row| (row.id, row.event_id)).collect())
            .collect();
        assert_eq!(
            groups,
            [
                vec![("sub_a", "evt_2"), ("sub_b", "evt_1")],
                vec![("sub_b", "evt_3"), ("sub_c", "evt_4")],
                vec![("sub_b", "evt_5")],
            ]
        );
        assert!(distinct_groups(Vec::new()).is_empty());
    }

    #[test]
    fn later_statuses_rank_higher() {
        assert!(status_rank("incomplete") < status_rank("active"));
        assert!(status_rank("active") < status_rank("canceled"));
        assert_eq!(status_rank("past_due"), status_rank("trialing"));
    }
}
