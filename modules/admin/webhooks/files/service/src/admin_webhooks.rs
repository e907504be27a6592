//! Stripe webhook operations in the back office: the event log, an event with its payload,
//! attempts and replays, and replays of one event or of every dead-lettered one, as panel pages
//! under `/admin/webhooks` ([`panel`]) and JSON under `/api/admin/webhooks` ([`api`]).
//!
//! They offer what the webhooks service's own operations API offers, over the same store on the
//! shared database (see [`saaskit_core::admin_webhooks`]). Reading needs [`Permission::View`],
//! replaying [`Permission::Manage`]; every replay is written to the audit log.
//!
//! [`Permission::View`]: saaskit_core::admin::Permission::View
//! [`Permission::Manage`]: saaskit_core::admin::Permission::Manage

mod api;
mod panel;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The pages and the JSON endpoints.
pub fn routes(state: AppState) -> OpenApiRouter {
    // The pages are HTML, not JSON operations: they stay out of the OpenAPI document.
    api::routes()
        .merge(OpenApiRouter::from(panel::routes()))
        .with_state(state)
}
