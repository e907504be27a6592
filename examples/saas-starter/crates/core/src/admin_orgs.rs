//! Organizations in the back office: the searchable list with member counts, an organization
//! with its members and invitations, and the staff actions on it (remove a member, revoke an
//! invitation), each audited in the transaction of its effect, as the actions on customers are.
//!
//! Staff are not members of the organizations they look after: the staff permission check
//! ([`Staff::require`]) stands in for the membership check that makes a [`TenantId`], and the
//! rules that protect an organization still hold (it keeps an owner). The queries run in the
//! organization's scope, so on PostgreSQL they pass row-level security like the api's
//! (docs/orgs.md); the list, which counts the members of many organizations, reads in the
//! [`Scope::Staff`] scope that this module's migration opens to reading memberships.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use crate::admin::audit;
use crate::admin::{AdminError, Page, PageQuery, Permission, Staff, like_pattern};
use crate::auth::now;
use crate::db::Database;
use crate::orgs::invitations::{self, Invitation};
use crate::orgs::{
    Member, OrgError, Scope, TenantId, begin_read, begin_write, end_membership, lock, member_in,
    members_in,
};

/// An organization in the back office's list and at the top of its page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AdminOrganization)]
pub struct OrgSummary {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// `personal` (made at registration) or `team`.
    pub kind: String,
    /// Unix seconds.
    pub created_at: i64,
    /// How many members it has: the seats a per-seat plan bills.
    pub members: i64,
}

impl OrgSummary {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            slug: row.try_get("slug")?,
            kind: row.try_get("kind")?,
            created_at: row.try_get("created_at")?,
            members: row.try_get("members")?,
        })
    }
}

/// An organization with its members (owners first) and its invitations (newest first).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AdminOrganizationDetail)]
pub struct OrgDetail {
    pub organization: OrgSummary,
    pub members: Vec<Member>,
    pub invitations: Vec<Invitation>,
}

/// `?q=&page=&per_page=`: `q` matches a part of the name or of the slug, ignoring case.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgSearch {
    /// A part of the name or of the slug, ignoring case.
    pub q: Option<String>,
    /// The 1-based page number.
    pub page: Option<u32>,
    /// Items per page.
    pub per_page: Option<u32>,
}

/// Why a back-office operation on an organization failed: the staff member may not do it, or
/// the organization refuses it (not found, it would lose its last owner).
#[derive(Debug, thiserror::Error)]
pub enum AdminOrgError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Org(#[from] OrgError),
}

impl From<sqlx::Error> for AdminOrgError {
    fn from(error: sqlx::Error) -> Self {
        Self::Org(error.into())
    }
}

/// The organization `org_id` for `staff`, once their role allows `permission`: staff reach
/// every organization, so the permission is what is checked instead of a membership.
fn tenant(staff: &Staff, permission: Permission, org_id: &str) -> Result<TenantId, AdminError> {
    staff.require(permission)?;
    Ok(TenantId::checked(org_id.to_owned()))
}

/// The organizations `search` selects, newest first, with their member counts.
pub async fn search(
    db: &Database,
    staff: &Staff,
    search: &OrgSearch,
) -> Result<Page<OrgSummary>, AdminOrgError> {
    staff.require(Permission::View)?;
    let page = PageQuery {
        page: search.page,
        per_page: search.per_page,
    };
    let (limit, offset) = page.limit_offset();
    let mut tx = begin_read(db, Scope::Staff).await?;
    let rows = sqlx::query(
        "SELECT o.id, o.name, o.slug, o.kind, o.created_at, \
         (SELECT COUNT(*) FROM memberships m WHERE m.org_id = o.id) AS members \
         FROM organizations o \
         WHERE ($1 IS NULL OR lower(o.name) LIKE $1 ESCAPE '\\' OR o.slug LIKE $1 ESCAPE '\\') \
         ORDER BY o.created_at DESC, o.id DESC LIMIT $2 OFFSET $3",
    )
    .bind(like_pattern(search.q.as_deref()))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let organizations = rows
        .iter()
        .map(OrgSummary::from_row)
        .collect::<sqlx::Result<_>>()?;
    Ok(Page::from_rows(page, organizations))
}

async fn summary_in(conn: &mut AnyConnection, tenant: &TenantId) -> Result<OrgSummary, OrgError> {
    let row = sqlx::query(
        "SELECT o.id, o.name, o.slug, o.kind, o.created_at, \
         (SELECT COUNT(*) FROM memberships m WHERE m.org_id = o.id) AS members \
         FROM organizations o WHERE o.id = $1",
    )
    .bind(tenant.as_str())
    .fetch_optional(conn)
    .await?
    .ok_or(OrgError::NotFound("organization"))?;
    Ok(OrgSummary::from_row(&row)?)
}

/// The organization `org_id` with its member count, as the list shows it; 404 when there is
/// none. For the sections other modules add to an organization (its subscription).
pub async fn summary(
    db: &Database,
    staff: &Staff,
    org_id: &str,
) -> Result<OrgSummary, AdminOrgError> {
    let tenant = tenant(staff, Permission::View, org_id)?;
    let mut tx = begin_read(db, Scope::Tenant(tenant.as_str())).await?;
    let organization = summary_in(&mut tx, &tenant).await?;
    tx.commit().await?;
    Ok(organization)
}

/// The organization `org_id` with its members and invitations; 404 when there is none.
pub async fn find(db: &Database, staff: &Staff, org_id: &str) -> Result<OrgDetail, AdminOrgError> {
    let tenant = tenant(staff, Permission::View, org_id)?;
    let mut tx = begin_read(db, Scope::Tenant(tenant.as_str())).await?;
    let organization = summary_in(&mut tx, &tenant).await?;
    let members = members_in(&mut tx, &tenant).await?;
    let invitations = invitations::list_in(&mut tx, &tenant, now()).await?;
    tx.commit().await?;
    Ok(OrgDetail {
        organization,
        members,
        invitations,
    })
}

/// Removes member `user_id` from organization `org_id` (`org.remove_member`). The organization
/// keeps an owner: removing the last one is refused (409), as it is for its own members.
pub async fn remove_member(
    db: &Database,
    staff: &Staff,
    org_id: &str,
    user_id: &str,
    reason: Option<&str>,
) -> Result<Member, AdminOrgError> {
    let tenant = tenant(staff, Permission::Manage, org_id)?;
    let mut tx = begin_write(db, Scope::Tenant(tenant.as_str())).await?;
    lock(&mut tx, &tenant).await?;
    let member = member_in(&mut tx, &tenant, user_id).await?;
    end_membership(&mut tx, &tenant, user_id, member.role).await?;
    let details = serde_json::json!({
        "user_id": member.user_id,
        "email": member.email,
        "role": member.role,
    });
    let change = ("org.remove_member", reason, details);
    record(&mut tx, staff, &tenant, change).await?;
    tx.commit().await?;
    tracing::info!(org = %org_id, user = %user_id, by = %staff.user.id, "member removed by staff");
    Ok(member)
}

/// Revokes the pending invitation `invitation_id` of organization `org_id`
/// (`org.revoke_invitation`): its link stops working. 404 when it is not pending.
pub async fn revoke_invitation(
    db: &Database,
    staff: &Staff,
    org_id: &str,
    invitation_id: &str,
    reason: Option<&str>,
) -> Result<Invitation, AdminOrgError> {
    let tenant = tenant(staff, Permission::Manage, org_id)?;
    let mut tx = begin_write(db, Scope::Tenant(tenant.as_str())).await?;
    let invitation = invitations::revoke_in(&mut tx, &tenant, invitation_id).await?;
    let details = serde_json::json!({
        "invitation_id": invitation.id,
        "email": invitation.email,
        "role": invitation.role,
    });
    let change = ("org.revoke_invitation", reason, details);
    record(&mut tx, staff, &tenant, change).await?;
    tx.commit().await?;
    tracing::info!(org = %org_id, invitation = %invitation_id, by = %staff.user.id, "invitation revoked by staff");
    Ok(invitation)
}

/// Writes the audit entry of a staff action on `tenant` in `tx`: `(action, reason, details)`,
/// with the organization as the target, so that its trail is `audit?target=<org id>`.
async fn record(
    tx: &mut Transaction<'static, Any>,
    staff: &Staff,
    tenant: &TenantId,
    (action, reason, details): (&str, Option<&str>, serde_json::Value),
) -> sqlx::Result<()> {
    let details = details.to_string();
    let entry = audit::Action {
        action,
        target_type: "organization",
        target_id: tenant.as_str(),
        reason,
        details: Some(&details),
    };
    audit::record(tx, staff.actor(), entry, now()).await
}

/// The organization's audit trail: the staff actions on it, newest first.
pub async fn trail(
    db: &Database,
    staff: &Staff,
    org_id: &str,
) -> Result<Page<audit::Entry>, AdminOrgError> {
    staff.require(Permission::View)?;
    let filter = audit::Filter {
        target: Some(org_id.to_owned()),
        ..audit::Filter::default()
    };
    Ok(audit::list(db, &filter).await?)
}
