//! The job queue in the back office: counts by kind and state, the list of jobs, a job with its
//! payload and the errors of its attempts, and retrying or discarding a dead job, as panel pages
//! under `/admin/jobs` ([`panel`]) and JSON under `/api/admin/jobs` ([`api`]).
//!
//! Reading needs [`Permission::View`], acting [`Permission::Manage`]; every action is written to
//! the audit log (see [`saaskit_core::admin_jobs`]).
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
