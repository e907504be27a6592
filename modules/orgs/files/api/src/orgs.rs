//! `/api/orgs/*` and `/api/invitations/accept`: organizations, their members and invitations,
//! and switching a session's tokens to one (docs/orgs.md). The rules live in
//! `saaskit_core::orgs`; each handler reads its input, calls them, and shapes the response.
//!
//! Every route with an `{org}` segment takes a `Tenant`, which answers 404 to anyone who is not
//! a member of that organization before the handler runs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use saaskit_core::ApiError;
use saaskit_core::auth::{Auth, CurrentUser, SessionToken};
use saaskit_core::db::Database;
use saaskit_core::http::JsonBody;
use saaskit_core::orgs::invitations::{self, Invitation, NewInvitation};
use saaskit_core::orgs::{self, Action, Member, NewOrganization, OrgRole};
use saaskit_core::orgs::{Organization, OrganizationUpdate, OrgsConfig, Tenant};

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

pub fn routes(state: AppState, config: OrgsConfig) -> Router {
    Router::new()
        .route("/api/orgs", post(create).get(list))
        .route("/api/orgs/{org}", get(show).patch(update).delete(remove))
        .route("/api/orgs/{org}/members", get(members))
        .route(
            "/api/orgs/{org}/members/{user}",
            patch(change_role).delete(remove_member),
        )
        .route("/api/orgs/{org}/leave", post(leave))
        .route("/api/orgs/{org}/transfer-ownership", post(transfer))
        .route(
            "/api/orgs/{org}/invitations",
            post(invite).get(list_invitations),
        )
        .route("/api/orgs/{org}/invitations/{id}", delete(revoke))
        .route("/api/orgs/{org}/switch", post(switch))
        .route("/api/invitations/accept", post(accept))
        .with_state(OrgsState { app: state, config })
}

#[derive(Deserialize)]
struct RoleChange {
    role: OrgRole,
}

#[derive(Deserialize)]
struct Transfer {
    user_id: String,
}

#[derive(Deserialize)]
struct Accept {
    token: String,
}

/// The answer to a switch: an access token for the organization.
#[derive(Serialize)]
struct Switched {
    #[serde(flatten)]
    token: SessionToken,
    org_id: String,
    role: OrgRole,
}

async fn create(
    State(db): State<Database>,
    current: CurrentUser,
    JsonBody(new): JsonBody<NewOrganization>,
) -> Result<(StatusCode, Json<Organization>), ApiError> {
    let organization = orgs::create(&db, &current.user, &new).await?;
    Ok((StatusCode::CREATED, Json(organization)))
}

/// The caller's organizations, with their role in each.
async fn list(
    State(db): State<Database>,
    current: CurrentUser,
) -> Result<Json<Vec<Organization>>, ApiError> {
    Ok(Json(orgs::list_mine(&db, &current.user.id).await?))
}

async fn show(State(db): State<Database>, tenant: Tenant) -> Result<Json<Organization>, ApiError> {
    Ok(Json(orgs::get(&db, &tenant).await?))
}

async fn update(
    State(db): State<Database>,
    tenant: Tenant,
    JsonBody(update): JsonBody<OrganizationUpdate>,
) -> Result<Json<Organization>, ApiError> {
    Ok(Json(orgs::update(&db, &tenant, &update).await?))
}

/// Deletes the organization with its memberships and invitations; billing is not touched
/// (docs/orgs.md).
async fn remove(State(db): State<Database>, tenant: Tenant) -> Result<StatusCode, ApiError> {
    orgs::delete(&db, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn members(
    State(db): State<Database>,
    tenant: Tenant,
) -> Result<Json<Vec<Member>>, ApiError> {
    Ok(Json(orgs::members(&db, &tenant).await?))
}

async fn change_role(
    State(db): State<Database>,
    tenant: Tenant,
    Path((_, user_id)): Path<(String, String)>,
    JsonBody(change): JsonBody<RoleChange>,
) -> Result<Json<Member>, ApiError> {
    Ok(Json(
        orgs::change_role(&db, &tenant, &user_id, change.role).await?,
    ))
}

async fn remove_member(
    State(db): State<Database>,
    tenant: Tenant,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    orgs::remove_member(&db, &tenant, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn leave(State(db): State<Database>, tenant: Tenant) -> Result<StatusCode, ApiError> {
    orgs::leave(&db, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes another member an owner and the caller an admin, at once.
async fn transfer(
    State(db): State<Database>,
    tenant: Tenant,
    JsonBody(transfer): JsonBody<Transfer>,
) -> Result<Json<Vec<Member>>, ApiError> {
    Ok(Json(
        orgs::transfer_ownership(&db, &tenant, &transfer.user_id).await?,
    ))
}

async fn invite(
    State(db): State<Database>,
    State(config): State<OrgsConfig>,
    tenant: Tenant,
    JsonBody(new): JsonBody<NewInvitation>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let invitation = invitations::invite(&db, &tenant, &new, config.invitation_ttl).await?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

async fn list_invitations(
    State(db): State<Database>,
    tenant: Tenant,
) -> Result<Json<Vec<Invitation>>, ApiError> {
    Ok(Json(invitations::list(&db, &tenant).await?))
}

async fn revoke(
    State(db): State<Database>,
    tenant: Tenant,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    invitations::revoke(&db, &tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation for the signed-in user; answers with the organization joined.
async fn accept(
    State(db): State<Database>,
    current: CurrentUser,
    JsonBody(accept): JsonBody<Accept>,
) -> Result<Json<Organization>, ApiError> {
    let (_, organization) = invitations::accept(&db, &current.user, &accept.token).await?;
    Ok(Json(organization))
}

/// An access token for this organization, in the caller's session.
async fn switch(State(auth): State<Auth>, tenant: Tenant) -> Result<Json<Switched>, ApiError> {
    tenant.require(Action::Switch)?;
    let token = auth.switch_organization(&tenant.user, tenant.id.as_str(), tenant.role.as_str());
    Ok(Json(Switched {
        token,
        org_id: tenant.id.as_str().to_owned(),
        role: tenant.role,
    }))
}
