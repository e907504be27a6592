//! The "Subscription" section of an organization's page in the back office: the subscription
//! the organization pays (billing per organization, `saas_starter_core::org_billing`) and its seats,
//! the members a per-seat price counts. The page itself checks the staff member's permission.

use askama::Template;

use saas_starter_core::ApiError;
use saas_starter_core::admin_billing::describe_price;
use saas_starter_core::db::Database;
use saas_starter_core::org_billing;

use crate::panel::when;

#[derive(Template)]
#[template(path = "org_subscription.html")]
struct OrgSubscription {
    seats: i64,
    /// `None` when the organization has never subscribed.
    subscription: Option<SubscriptionRow>,
}

/// The subscription as the section shows it.
struct SubscriptionRow {
    id: String,
    status: String,
    product: String,
    price: String,
    quantity: i64,
    period_end: String,
    /// What happens at the end of the period: renews, cancels, or when it was canceled.
    then: String,
}

/// The HTML of the section for organization `org_id`.
pub async fn org_section(db: &Database, org_id: &str) -> Result<String, ApiError> {
    let billing = org_billing::of_organization_for_staff(db, org_id).await?;
    let subscription = billing.subscription.map(|s| SubscriptionRow {
        price: describe_price(
            s.unit_amount,
            s.currency.as_deref(),
            s.quantity,
            s.interval.as_deref(),
            s.interval_count,
        ),
        then: match (s.canceled_at, s.cancel_at_period_end) {
            (Some(at), _) => format!("canceled {}", when(at)),
            (None, true) => "cancels".to_owned(),
            (None, false) => "renews".to_owned(),
        },
        product: s.product_id.unwrap_or_default(),
        quantity: s.quantity,
        period_end: s.current_period_end.map(when).unwrap_or_default(),
        status: s.status,
        id: s.id,
    });
    OrgSubscription {
        seats: billing.seats,
        subscription,
    }
    .render()
    .map_err(ApiError::internal)
}
