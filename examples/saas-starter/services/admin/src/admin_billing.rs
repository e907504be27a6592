//! Subscriptions in the back office: JSON under `/api/admin` for staff (see
//! [`saas_starter_core::admin_billing`] for what is read and how MRR is defined), and the "Subscription"
//! section of a customer's page. The dashboard's figures come from the same module.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use saas_starter_core::ApiError;
use saas_starter_core::admin::{Page, Permission, Staff, customers};
use saas_starter_core::admin_billing::{self, Filter, SubscriptionView, describe_price};
use saas_starter_core::db::Database;

use crate::panel::when;
use crate::state::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/admin/subscriptions", get(subscriptions))
        .route(
            "/api/admin/users/{id}/subscriptions",
            get(user_subscriptions),
        )
        .with_state(state)
}

/// `?status=&page=&per_page=`: every subscription, most recently changed first.
async fn subscriptions(
    staff: Staff,
    State(db): State<Database>,
    Query(filter): Query<Filter>,
) -> Result<Json<Page<SubscriptionView>>, ApiError> {
    staff.require(Permission::View)?;
    let filter = filter.normalized()?;
    Ok(Json(admin_billing::list(&db, &filter).await?))
}

#[derive(Serialize)]
struct UserSubscriptions {
    subscriptions: Vec<SubscriptionView>,
}

/// The subscriptions of one account, running ones first; 404 when the account does not exist.
async fn user_subscriptions(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<String>,
) -> Result<Json<UserSubscriptions>, ApiError> {
    staff.require(Permission::View)?;
    customers::find(&db, &id).await?;
    let subscriptions = admin_billing::of_user(&db, &id).await?;
    Ok(Json(UserSubscriptions { subscriptions }))
}

/// A subscription as the customer's page shows it.
struct SubscriptionRow {
    id: String,
    status: String,
    /// Trialing, active or past due.
    running: bool,
    product: String,
    price_id: String,
    price: String,
    period_end: String,
    cancel_at_period_end: bool,
    canceled: Option<String>,
}

impl From<SubscriptionView> for SubscriptionRow {
    fn from(view: SubscriptionView) -> Self {
        let s = view.subscription;
        Self {
            running: ["trialing", "active", "past_due"].contains(&s.status.as_str()),
            price: describe_price(
                s.unit_amount,
                s.currency.as_deref(),
                s.quantity,
                s.interval.as_deref(),
                s.interval_count,
            ),
            product: s.product_id.unwrap_or_default(),
            price_id: s.price_id.unwrap_or_default(),
            period_end: s.current_period_end.map(when).unwrap_or_default(),
            cancel_at_period_end: s.cancel_at_period_end,
            canceled: s.canceled_at.map(when),
            status: s.status,
            id: s.id,
        }
    }
}

#[derive(Template)]
#[template(path = "customer_subscriptions.html")]
struct SubscriptionSection {
    subscriptions: Vec<SubscriptionRow>,
}

/// The HTML of the customer page's "Subscription" section for user `user_id`.
pub async fn customer_section(db: &Database, user_id: &str) -> Result<String, ApiError> {
    let subscriptions = admin_billing::of_user(db, user_id).await?;
    let section = SubscriptionSection {
        subscriptions: subscriptions
            .into_iter()
            .map(SubscriptionRow::from)
            .collect(),
    };
    section.render().map_err(ApiError::internal)
}
