//! `/api/billing`: the plans on offer, and the signed-in user's subscription as the webhooks
//! service keeps it from Stripe's events (`saaskit_core::billing`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saaskit_core::ApiError;
use saaskit_core::auth::{Auth, CurrentUser};
use saaskit_core::billing::{self, Subscription};
use saaskit_core::http::openapi::ErrorBody;
use saaskit_core::plans::{Plan, Plans};

use crate::state::AppState;

/// The service's state and the plans, which only this module's routes need.
#[derive(Clone)]
struct Billing {
    app: AppState,
    plans: Arc<Plans>,
}

/// Lets [`CurrentUser`] find the authentication in this router's state.
impl FromRef<Billing> for Auth {
    fn from_ref(billing: &Billing) -> Self {
        billing.app.auth.clone()
    }
}

pub fn routes(state: AppState, plans: Plans) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(plans_on_offer))
        .routes(routes!(subscription))
        .with_state(Billing {
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
struct SubscriptionView {
    #[serde(flatten)]
    subscription: Subscription,
    /// The configured plan of the subscription's price, if it is one of them.
    plan: Option<String>,
}

/// The signed-in user's subscription, as the webhooks service keeps it from Stripe's events.
#[utoipa::path(get, path = "/api/billing/subscription", tag = "billing",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The subscription, `null` when there is none", body = CurrentSubscription),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
    ),
)]
async fn subscription(
    State(billing): State<Billing>,
    current: CurrentUser,
) -> Result<Json<CurrentSubscription>, ApiError> {
    let subscription = billing::subscription_of_user(&billing.app.db, &current.user.id).await?;
    let subscription = subscription.map(|subscription| SubscriptionView {
        plan: subscription
            .price_id
            .as_deref()
            .and_then(|price| billing.plans.by_price(price))
            .map(|plan| plan.id.clone()),
        subscription,
    });
    Ok(Json(CurrentSubscription { subscription }))
}
