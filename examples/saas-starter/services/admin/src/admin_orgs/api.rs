//! Organizations as JSON under `/api/admin/orgs`, for staff presenting a staff token or the
//! panel's session cookie: 401 without credentials, 403 when the role does not allow it.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saas_starter_core::ApiError;
use saas_starter_core::admin::{Page, Staff};
use saas_starter_core::admin_orgs::{self, OrgDetail, OrgSearch, OrgSummary};
use saas_starter_core::db::Database;
use saas_starter_core::http::openapi::ErrorBody;
use saas_starter_core::http::{JsonBody, Path, Query};
use saas_starter_core::orgs::{Invitation, Member};

use crate::admin_api::ReasonBody;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(organizations))
        .routes(routes!(organization))
        .routes(routes!(remove_member))
        .routes(routes!(revoke_invitation))
}

/// Organizations, searched by name or slug, newest first, with their member counts.
#[utoipa::path(get, path = "/api/admin/orgs", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(OrgSearch),
    responses(
        (status = 200, description = "A page of organizations", body = Page<OrgSummary>),
        (status = 400, description = "`bad_request`: a parameter is not of its type", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
    ),
)]
async fn organizations(
    staff: Staff,
    State(db): State<Database>,
    Query(search): Query<OrgSearch>,
) -> Result<Json<Page<OrgSummary>>, ApiError> {
    Ok(Json(admin_orgs::search(&db, &staff, &search).await?))
}

/// An organization with its members (owners first) and its invitations (newest first). Its
/// audit trail is `GET /api/admin/audit?target={id}`.
#[utoipa::path(get, path = "/api/admin/orgs/{id}", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = String, Path, description = "The organization's id")),
    responses(
        (status = 200, description = "The organization", body = OrgDetail),
        (status = 400, description = "`bad_request`: a path parameter is not of its type, or has a NUL character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization", body = ErrorBody),
    ),
)]
async fn organization(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<String>,
) -> Result<Json<OrgDetail>, ApiError> {
    Ok(Json(admin_orgs::find(&db, &staff, &id).await?))
}

/// Removes a member from the organization (`org.remove_member` in the audit log); never its
/// last owner.
#[utoipa::path(post, path = "/api/admin/orgs/{id}/members/{user_id}/remove", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(
        ("id" = String, Path, description = "The organization's id"),
        ("user_id" = String, Path, description = "The member's user id"),
    ),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "The member as they were, now removed", body = Member),
        (status = 400, description = "`bad_request`: the body or a parameter is not of its shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization, or no such member of it", body = ErrorBody),
        (status = 409, description = "`conflict`: the member is the organization's last owner", body = ErrorBody),
    ),
)]
async fn remove_member(
    staff: Staff,
    State(db): State<Database>,
    Path((id, user_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Json<Member>, ApiError> {
    let reason = body.reason();
    Ok(Json(
        admin_orgs::remove_member(&db, &staff, &id, &user_id, reason).await?,
    ))
}

/// Revokes a pending invitation of the organization (`org.revoke_invitation` in the audit
/// log): its link stops working.
#[utoipa::path(post, path = "/api/admin/orgs/{id}/invitations/{invitation_id}/revoke", tag = "admin",
    security(("bearer" = []), ("staff_session" = [])),
    params(
        ("id" = String, Path, description = "The organization's id"),
        ("invitation_id" = String, Path, description = "The invitation's id"),
    ),
    request_body = ReasonBody,
    responses(
        (status = 200, description = "The invitation, revoked", body = Invitation),
        (status = 400, description = "`bad_request`: the body or a parameter is not of its shape", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such organization, or no pending invitation of it with this id", body = ErrorBody),
    ),
)]
async fn revoke_invitation(
    staff: Staff,
    State(db): State<Database>,
    Path((id, invitation_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ReasonBody>,
) -> Result<Json<Invitation>, ApiError> {
    let reason = body.reason();
    let invitation =
        admin_orgs::revoke_invitation(&db, &staff, &id, &invitation_id, reason).await?;
    Ok(Json(invitation))
}
