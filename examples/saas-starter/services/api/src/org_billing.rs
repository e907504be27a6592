//! Billing per organization on the api (module `billing/orgs`): an organization's subscription
//! and seats for its members, and who pays for `GET /api/billing/subscription`. The rules are
//! in `saas_starter_core::org_billing`; these routes join the billing router (`billing.rs`), whose
//! state holds the plans.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saas_starter_core::ApiError;
use saas_starter_core::auth::CurrentUser;
use saas_starter_core::billing::Payer;
use saas_starter_core::db::Database;
use saas_starter_core::http::openapi::ErrorBody;
use saas_starter_core::org_billing;
use saas_starter_core::orgs::{Action, Tenant};

use crate::billing::{Billing, SubscriptionView};

/// The billing router with this module's route.
pub(crate) fn routes(router: OpenApiRouter<Billing>) -> OpenApiRouter<Billing> {
    router.routes(routes!(organization_subscription))
}

/// Who pays for `current`: their active organization (see `org_billing::active_payer`).
pub(crate) async fn active_payer(
    db: &Database,
    current: &CurrentUser,
    account: Payer,
) -> Result<Payer, ApiError> {
    Ok(org_billing::active_payer(db, current, account).await?)
}

/// An organization's subscription and seats.
#[derive(Serialize, ToSchema)]
struct OrganizationSubscription {
    /// `null` when the organization has never subscribed.
    subscription: Option<SubscriptionView>,
    /// The organization's members: what a per-seat price counts.
    seats: i64,
}

/// The organization's subscription, as the webhooks service keeps it from Stripe's events, and
/// its seats. Any member may read it.
#[utoipa::path(get, path = "/api/orgs/{org}/billing/subscription", tag = "orgs",
    operation_id = "organization_subscription",
    params(("org" = String, Path, description = "The organization's id")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The subscription (`null` when there is none) and the seats", body = OrganizationSubscription),
        (status = 400, description = "`bad_request`: a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's (another organization's anything is 404, never 403)", body = ErrorBody),
    ),
)]
async fn organization_subscription(
    State(billing): State<Billing>,
    tenant: Tenant,
) -> Result<Json<OrganizationSubscription>, ApiError> {
    tenant.require(Action::ReadOrganization)?;
    let found = org_billing::of_tenant(&billing.app.db, &tenant.id).await?;
    Ok(Json(OrganizationSubscription {
        subscription: found
            .subscription
            .map(|subscription| SubscriptionView::new(subscription, &billing.plans)),
        seats: found.seats,
    }))
}
