//! Subscriptions in the back office: JSON under `/api/admin` for staff (see
//! [`saaskit_core::admin_billing`] for what is read and how MRR is defined), and the "Subscription"
//! section of a customer's page. The dashboard's figures come from the same module.

use askama::Template;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saaskit_core::ApiError;
use saaskit_core::admin::{Page, Permission, Staff, customers};
use saaskit_core::admin_billing::{self, Filter, SubscriptionView, describe_price};
use saaskit_core::db::Database;
use saaskit_core::http::openapi::ErrorBody;
use saaskit_core::http::{Path, Query};

use crate::panel::when;
use crate::state::AppState;

pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(subscriptions))
        .routes(routes!(user_subscriptions))
        .with_state(state)
}

/// `?status=&page=&per_page=`: every subscription, most recently changed first.
#[utoipa::path(get, path = "/api/admin/subscriptions", tag = "billing",
    security(("bearer" = []), ("staff_session" = [])),
    params(Filter),
    responses(
        (status = 200, description = "A page of subscriptions", body = Page<SubscriptionView>),
        (status = 400, description = "`bad_request`: a parameter is not of its type", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid parameter is named in `fields`", body = ErrorBody),
    ),
)]
async fn subscriptions(
    staff: Staff,
    State(db): State<Database>,
    Query(filter): Query<Filter>,
) -> Result<Json<Page<SubscriptionView>>, ApiError> {
    staff.require(Permission::View)?;
    let filter = filter.normalized()?;
    Ok(Json(admin_billing::list(&db, &filter).await?))
}

#[derive(Serialize, ToSchema)]
struct UserSubscriptions {
    subscriptions: Vec<SubscriptionView>,
}

/// The subscriptions of one account, running ones first; 404 when the account does not exist.
#[utoipa::path(get, path = "/api/admin/users/{id}/subscriptions", tag = "billing",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The customer's user id")),
    responses(
        (status = 200, description = "The subscriptions", body = UserSubscriptions),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such customer", body = ErrorBody),
    ),
)]
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
