//! Organizations in the back office: the list (search by name or slug, member counts), an
//! organization's page (members with their roles, pending invitations, the modules' sections,
//! its audit trail) and the staff actions on it (remove a member, revoke an invitation), as
//! panel pages under `/admin/orgs` ([`panel`]) and JSON under `/api/admin/orgs` ([`api`]).
//!
//! Reading needs [`Permission::View`], acting [`Permission::Manage`], as on customers; every
//! action is written to the audit log with the organization as its target (see
//! [`saas_starter_core::admin_orgs`]).
//!
//! [`Permission::View`]: saas_starter_core::admin::Permission::View
//! [`Permission::Manage`]: saas_starter_core::admin::Permission::Manage

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
