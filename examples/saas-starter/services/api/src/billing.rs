//! `/api/billing`: the plans on offer, and the signed-in user's subscription as the webhooks
//! service keeps it from Stripe's events (`saas_starter_core::billing`). Module `billing/orgs` makes
//! the subscription an organization's, and adds its routes here, at the `inject` markers.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saas_starter_core::ApiError;
use saas_starter_core::auth::{Auth, CurrentUser};
use saas_starter_core::billing::{self, Payer, Subscription};
use saas_starter_core::db::Database;
use saas_starter_core::http::openapi::ErrorBody;
use saas_starter_core::plans::{Plan, Plans};

use crate::state::AppState;

/// The service's state and the plans, which only the billing routes need.
#[derive(Clone)]
pub(crate) struct Billing {
    pub(crate) app: AppState,
    pub(crate) plans: Arc<Plans>,
}

/// Lets [`CurrentUser`] find the authentication in this router's state.
impl FromRef<Billing> for Auth {
    fn from_ref(billing: &Billing) -> Self {
        billing.app.auth.clone()
    }
}

/// Lets a `Tenant` (module `billing/orgs`) check memberships with this router's state.
impl FromRef<Billing> for Database {
    fn from_ref(billing: &Billing) -> Self {
        billing.app.db.clone()
    }
}

pub fn routes(state: AppState, plans: Plans) -> OpenApiRouter {
    let router = OpenApiRouter::new()
        .routes(routes!(plans_on_offer))
        .routes(routes!(subscription));
    // <<<inject:routes>>>
    // <<<begin:billing/orgs@routes>>>
    let router = crate::org_billing::routes(router);
    // <<<end:billing/orgs@routes>>>
    router.with_state(Billing {
        app: state,
        plans: Arc::new(plans),
    })
}

#[derive(Serialize, ToSchema)]
struct PlanList {
    plans: Vec<Plan>,
}

/// Public: a pricing page shows the plans before anyone signs in.
#[utoipa::path(get, path = "/api/billing/plans", tag = "billing",
    responses((status = 200, description = "The plans on offer", body = PlanList)),
)]
async fn plans_on_offer(State(billing): State<Billing>) -> Json<PlanList> {
    Json(PlanList {
        plans: billing.plans.all().to_vec(),
    })
}

#[derive(Serialize, ToSchema)]
struct CurrentSubscription {
    /// `null` when the user has never subscribed.
    subscription: Option<SubscriptionView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SubscriptionView {
    #[serde(flatten)]
    subscription: Subscription,
    /// The configured plan of the subscription's price, if it is one of them.
    plan: Option<String>,
}

impl SubscriptionView {
    /// `subscription` with the configured plan of its price.
    pub(crate) fn new(subscription: Subscription, plans: &Plans) -> Self {
        Self {
            plan: subscription
                .price_id
                .as_deref()
                .and_then(|price| plans.by_price(price))
                .map(|plan| plan.id.clone()),
            subscription,
        }
    }
}

/// The signed-in user's subscription, as the webhooks service keeps it from Stripe's events (with
/// organizations: their active organization's, see docs/orgs.md).
#[utoipa::path(get, path = "/api/billing/subscription", tag = "billing",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The subscription, `null` when there is none", body = CurrentSubscription),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 404, description = "`not_found`: with organizations, the token is switched to one the caller no longer belongs to", body = ErrorBody),
    ),
)]
async fn subscription(
    State(billing): State<Billing>,
    current: CurrentUser,
) -> Result<Json<CurrentSubscription>, ApiError> {
    let db = &billing.app.db;
    // Who pays: the account, unless a module names another payer below.
    let payer = Payer::User(current.user.id.clone());
    // <<<inject:payer>>>
    // <<<begin:billing/orgs@payer>>>
    let payer = crate::org_billing::active_payer(db, &current, payer).await?;
    // <<<end:billing/orgs@payer>>>
    let mut conn = db.pool().acquire().await?;
    let subscription = billing::subscription_of(&mut conn, &payer).await?;
    let subscription = subscription.map(|found| SubscriptionView::new(found, &billing.plans));
    Ok(Json(CurrentSubscription { subscription }))
}
