//! `/api/orgs/*` and `/api/invitations/accept`: organizations, their members and invitations,
//! and switching a session's tokens to one (docs/orgs.md). The rules live in
//! `saas_starter_core::orgs`; each handler reads its input, calls them, and shapes the response.
//!
//! Every route with an `{org}` segment takes a `Tenant`, which answers 404 to anyone who is not
//! a member of that organization before the handler runs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saas_starter_core::ApiError;
use saas_starter_core::auth::{Auth, CurrentUser, SessionToken};
use saas_starter_core::db::Database;
use saas_starter_core::http::openapi::ErrorBody;
use saas_starter_core::http::{JsonBody, Path};
use saas_starter_core::orgs::invitations::{self, Invitation, NewInvitation};
use saas_starter_core::orgs::{self, Action, Member, NewOrganization, OrgRole};
use saas_starter_core::orgs::{Organization, OrganizationUpdate, OrgsConfig, Tenant};

use crate::state::AppState;

/// The routers' state: the service's, and the organizations' settings.
#[derive(Clone)]
struct OrgsState {
    app: AppState,
    config: OrgsConfig,
}

impl axum::extract::FromRef<OrgsState> for Database {
    fn from_ref(state: &OrgsState) -> Self {
        state.app.db.clone()
    }
}

impl axum::extract::FromRef<OrgsState> for Auth {
    fn from_ref(state: &OrgsState) -> Self {
        state.app.auth.clone()
    }
}

impl axum::extract::FromRef<OrgsState> for OrgsConfig {
    fn from_ref(state: &OrgsState) -> Self {
        state.config
    }
}

/// The routes, each with its OpenAPI operation (`routes!` takes a handler's `#[utoipa::path]`).
pub fn routes(state: AppState, config: OrgsConfig) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, update, remove))
        .routes(routes!(members))
        .routes(routes!(change_role, remove_member))
        .routes(routes!(leave))
        .routes(routes!(transfer))
        .routes(routes!(invite, list_invitations))
        .routes(routes!(revoke))
        .routes(routes!(switch))
        .routes(routes!(accept))
        .with_state(OrgsState { app: state, config })
}

/// A member's new role (only owners make owners).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"role": "admin"}))]
struct MemberRoleChange {
    role: OrgRole,
}

/// The member who becomes an owner; the caller becomes an admin.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"user_id": "0192e0a0-0000-7000-8000-000000000000"}))]
struct OwnershipTransfer {
    user_id: String,
}

/// The token of an invitation's link.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "the token of the invitation's link"}))]
struct InvitationAcceptance {
    token: String,
}

/// The answer to a switch: an access token for the organization.
#[derive(Serialize, ToSchema)]
struct OrganizationToken {
    #[serde(flatten)]
    token: SessionToken,
    org_id: String,
    role: OrgRole,
}

#[utoipa::path(post, path = "/api/orgs", tag = "orgs", operation_id = "create_organization",
    request_body = NewOrganization,
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 201, description = "Created, the caller its owner", body = Organization),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 409, description = "`conflict`: another organization has this slug", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
async fn create(
    State(db): State<Database>,
    current: CurrentUser,
    JsonBody(new): JsonBody<NewOrganization>,
) -> Result<(StatusCode, Json<Organization>), ApiError> {
    let organization = orgs::create(&db, &current.user, &new).await?;
    Ok((StatusCode::CREATED, Json(organization)))
}

/// The caller's organizations, with their role in each.
#[utoipa::path(get, path = "/api/orgs", tag = "orgs", operation_id = "list_organizations",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The caller's organizations, with their role in each", body = Vec<Organization>),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
    ),
)]
async fn list(
    State(db): State<Database>,
    current: CurrentUser,
) -> Result<Json<Vec<Organization>>, ApiError> {
    Ok(Json(orgs::list_mine(&db, &current.user.id).await?))
}

#[utoipa::path(get, path = "/api/orgs/{org}", tag = "orgs", operation_id = "show_organization",
    params(("org" = String, Path, description = "The organization's id")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The organization, with the caller's role", body = Organization),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's (another organization's anything is 404, never 403)", body = ErrorBody),
    ),
)]
async fn show(tenant: Tenant) -> Result<Json<Organization>, ApiError> {
    Ok(Json(orgs::get(&tenant)?))
}

#[utoipa::path(patch, path = "/api/orgs/{org}", tag = "orgs", operation_id = "update_organization",
    params(("org" = String, Path, description = "The organization's id")),
    request_body = OrganizationUpdate,
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Changed", body = Organization),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`role_forbids`: the caller's role does not allow it (the message names the action); `forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's (another organization's anything is 404, never 403)", body = ErrorBody),
        (status = 409, description = "`conflict`: another organization has this slug", body = ErrorBody),
        (status = 422, description = "`validation_failed`: each invalid field is named in `fields`", body = ErrorBody),
    ),
)]
async fn update(
    State(db): State<Database>,
    tenant: Tenant,
    JsonBody(update): JsonBody<OrganizationUpdate>,
) -> Result<Json<Organization>, ApiError> {
    Ok(Json(orgs::update(&db, &tenant, &update).await?))
}

/// Deletes the organization with its memberships and invitations; billing is not touched
/// (docs/orgs.md).
#[utoipa::path(delete, path = "/api/orgs/{org}", tag = "orgs", operation_id = "delete_organization",
    params(("org" = String, Path, description = "The organization's id")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "Deleted, with its memberships and invitations; billing is not touched"),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`role_forbids`: the caller's role does not allow it (the message names the action); `forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's (another organization's anything is 404, never 403)", body = ErrorBody),
    ),
)]
async fn remove(State(db): State<Database>, tenant: Tenant) -> Result<StatusCode, ApiError> {
    orgs::delete(&db, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/orgs/{org}/members", tag = "orgs", operation_id = "list_members",
    params(("org" = String, Path, description = "The organization's id")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The members, owners first", body = Vec<Member>),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's (another organization's anything is 404, never 403)", body = ErrorBody),
    ),
)]
async fn members(
    State(db): State<Database>,
    tenant: Tenant,
) -> Result<Json<Vec<Member>>, ApiError> {
    Ok(Json(orgs::members(&db, &tenant).await?))
}

#[utoipa::path(patch, path = "/api/orgs/{org}/members/{user}", tag = "orgs", operation_id = "change_member_role",
    params(("org" = String, Path, description = "The organization's id"), ("user" = String, Path, description = "The member's user id")),
    request_body = MemberRoleChange,
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The member with the new role", body = Member),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`role_forbids`: the caller's role does not allow it (the message names the action); `forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's, or no such member in it", body = ErrorBody),
        (status = 409, description = "`conflict`: the organization would have no owner left", body = ErrorBody),
    ),
)]
async fn change_role(
    State(db): State<Database>,
    tenant: Tenant,
    Path((_, user_id)): Path<(String, String)>,
    JsonBody(change): JsonBody<MemberRoleChange>,
) -> Result<Json<Member>, ApiError> {
    Ok(Json(
        orgs::change_role(&db, &tenant, &user_id, change.role).await?,
    ))
}

#[utoipa::path(delete, path = "/api/orgs/{org}/members/{user}", tag = "orgs", operation_id = "remove_member",
    params(("org" = String, Path, description = "The organization's id"), ("user" = String, Path, description = "The member's user id")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "Removed (the caller's own id: left)"),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`role_forbids`: the caller's role does not allow it (the message names the action); `forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's, or no such member in it", body = ErrorBody),
        (status = 409, description = "`conflict`: the organization would have no owner left", body = ErrorBody),
    ),
)]
async fn remove_member(
    State(db): State<Database>,
    tenant: Tenant,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    orgs::remove_member(&db, &tenant, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/orgs/{org}/leave", tag = "orgs", operation_id = "leave_organization",
    params(("org" = String, Path, description = "The organization's id")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "Left"),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's (another organization's anything is 404, never 403)", body = ErrorBody),
        (status = 409, description = "`conflict`: the caller is the last owner", body = ErrorBody),
    ),
)]
async fn leave(State(db): State<Database>, tenant: Tenant) -> Result<StatusCode, ApiError> {
    orgs::leave(&db, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes another member an owner and the caller an admin, at once.
#[utoipa::path(post, path = "/api/orgs/{org}/transfer-ownership", tag = "orgs", operation_id = "transfer_ownership",
    params(("org" = String, Path, description = "The organization's id")),
    request_body = OwnershipTransfer,
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The new owner, then the caller, now an admin", body = Vec<Member>),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`role_forbids`: the caller's role does not allow it (the message names the action); `forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's, or no such member in it", body = ErrorBody),
    ),
)]
async fn transfer(
    State(db): State<Database>,
    tenant: Tenant,
    JsonBody(transfer): JsonBody<OwnershipTransfer>,
) -> Result<Json<Vec<Member>>, ApiError> {
    Ok(Json(
        orgs::transfer_ownership(&db, &tenant, &transfer.user_id).await?,
    ))
}

#[utoipa::path(post, path = "/api/orgs/{org}/invitations", tag = "orgs", operation_id = "create_invitation",
    params(("org" = String, Path, description = "The organization's id")),
    request_body = NewInvitation,
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 201, description = "Invited: the email is on its way (never the token)", body = Invitation),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`role_forbids`: the caller's role does not allow it (the message names the action); `forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's (another organization's anything is 404, never 403)", body = ErrorBody),
        (status = 409, description = "`conflict`: the address is a member already", body = ErrorBody),
        (status = 422, description = "`validation_failed`: the email is not valid", body = ErrorBody),
    ),
)]
async fn invite(
    State(db): State<Database>,
    State(config): State<OrgsConfig>,
    tenant: Tenant,
    JsonBody(new): JsonBody<NewInvitation>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let invitation = invitations::invite(&db, &tenant, &new, config.invitation_ttl).await?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

#[utoipa::path(get, path = "/api/orgs/{org}/invitations", tag = "orgs", operation_id = "list_invitations",
    params(("org" = String, Path, description = "The organization's id")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The invitations, newest first", body = Vec<Invitation>),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`role_forbids`: the caller's role does not allow it (the message names the action); `forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's (another organization's anything is 404, never 403)", body = ErrorBody),
    ),
)]
async fn list_invitations(
    State(db): State<Database>,
    tenant: Tenant,
) -> Result<Json<Vec<Invitation>>, ApiError> {
    Ok(Json(invitations::list(&db, &tenant).await?))
}

#[utoipa::path(delete, path = "/api/orgs/{org}/invitations/{id}", tag = "orgs", operation_id = "revoke_invitation",
    params(("org" = String, Path, description = "The organization's id"), ("id" = String, Path, description = "The invitation's id")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 204, description = "Revoked: its link no longer works"),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`role_forbids`: the caller's role does not allow it (the message names the action); `forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's, or no pending invitation with this id in it", body = ErrorBody),
    ),
)]
async fn revoke(
    State(db): State<Database>,
    tenant: Tenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    invitations::revoke(&db, &tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation for the signed-in user; answers with the organization joined.
#[utoipa::path(post, path = "/api/invitations/accept", tag = "orgs", operation_id = "accept_invitation",
    request_body = InvitationAcceptance,
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Joined: the organization, with the caller's role", body = Organization),
        (status = 400, description = "`invalid_invitation`: accepted, revoked, replaced or expired; `bad_request`: the body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`invitation_for_another_address`, `email_unverified`, or `forbidden` (a session cookie on a cross-site request)", body = ErrorBody),
    ),
)]
async fn accept(
    State(db): State<Database>,
    current: CurrentUser,
    JsonBody(accept): JsonBody<InvitationAcceptance>,
) -> Result<Json<Organization>, ApiError> {
    let (_, organization) = invitations::accept(&db, &current.user, &accept.token).await?;
    Ok(Json(organization))
}

/// An access token for this organization, in the caller's session.
#[utoipa::path(post, path = "/api/orgs/{org}/switch", tag = "orgs", operation_id = "switch_organization",
    params(("org" = String, Path, description = "The organization's id")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "An access token for the organization, in the caller's session", body = OrganizationToken),
        (status = 400, description = "`bad_request`: the body is not JSON of this shape, or a parameter has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid token or session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: a session cookie on a cross-site request", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization among the caller's (another organization's anything is 404, never 403)", body = ErrorBody),
    ),
)]
async fn switch(
    State(auth): State<Auth>,
    tenant: Tenant,
) -> Result<Json<OrganizationToken>, ApiError> {
    tenant.require(Action::Switch)?;
    let token = auth.switch_organization(&tenant.user, tenant.id.as_str(), tenant.role.as_str());
    Ok(Json(OrganizationToken {
        token,
        org_id: tenant.id.as_str().to_owned(),
        role: tenant.role,
    }))
}
