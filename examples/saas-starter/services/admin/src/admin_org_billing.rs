//! An organization's subscription in the back office: the subscription the organization pays
//! (billing per organization, `saas_starter_core::org_billing`) and its seats, the members a per-seat
//! price counts, as the "Subscription" section of its page (which checks the staff member's
//! permission itself) and as JSON, `GET /api/admin/orgs/{id}/subscription`.

use askama::Template;
use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saas_starter_core::ApiError;
use saas_starter_core::admin::Staff;
use saas_starter_core::admin_billing::describe_price;
use saas_starter_core::admin_orgs;
use saas_starter_core::db::Database;
use saas_starter_core::http::Path;
use saas_starter_core::http::openapi::ErrorBody;
use saas_starter_core::org_billing::{self, OrgBilling};

use crate::panel::when;
use crate::state::AppState;

pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(org_subscription))
        .with_state(state)
}

/// The organization's subscription (a running one, else the latest; `null` when it never
/// subscribed: its plan is `product_id`, its price `price_id` with `unit_amount`, `currency`
/// and `interval`) and its seats, the members now: what its page's Subscription section shows.
#[utoipa::path(get, path = "/api/admin/orgs/{id}/subscription", tag = "billing",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The organization's id")),
    responses(
        (status = 200, description = "The organization's subscription and seats", body = OrgBilling),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization", body = ErrorBody),
    ),
)]
async fn org_subscription(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<String>,
) -> Result<Json<OrgBilling>, ApiError> {
    // The permission, and 404 for an organization that does not exist (which
    // `of_organization_for_staff` would answer with no subscription and no seats).
    admin_orgs::summary(&db, &staff, &id).await?;
    Ok(Json(
        org_billing::of_organization_for_staff(&db, &id).await?,
    ))
}

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
