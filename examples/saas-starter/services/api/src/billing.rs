//! `/api/billing`: the plans on offer, and the signed-in user's subscription as the webhooks
//! service keeps it from Stripe's events (`saas_starter_core::billing`).

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use saas_starter_core::ApiError;
use saas_starter_core::auth::{Auth, CurrentUser};
use saas_starter_core::billing::{self, Subscription};
use saas_starter_core::plans::{Plan, Plans};

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

pub fn routes(state: AppState, plans: Plans) -> Router {
    Router::new()
        .route("/api/billing/plans", get(plans_on_offer))
        .route("/api/billing/subscription", get(subscription))
        .with_state(Billing {
            app: state,
            plans: Arc::new(plans),
        })
}

#[derive(Serialize)]
struct PlanList {
    plans: Vec<Plan>,
}

/// Public: a pricing page shows the plans before anyone signs in.
async fn plans_on_offer(State(billing): State<Billing>) -> Json<PlanList> {
    Json(PlanList {
        plans: billing.plans.all().to_vec(),
    })
}

#[derive(Serialize)]
struct CurrentSubscription {
    /// `null` when the user has never subscribed.
    subscription: Option<SubscriptionView>,
}

#[derive(Serialize)]
struct SubscriptionView {
    #[serde(flatten)]
    subscription: Subscription,
    /// The configured plan of the subscription's price, if it is one of them.
    plan: Option<String>,
}

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
