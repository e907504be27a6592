//! The organization pages: the searchable list and an organization's page, with the staff
//! actions (remove a member, revoke an invitation), each a form that comes back to the page.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use saas_starter_core::admin::Permission;
use saas_starter_core::admin_orgs::{self, OrgSearch, OrgSummary};
use saas_starter_core::db::Database;
use saas_starter_core::orgs::{Invitation, Member};

use crate::panel::customers::{EntryRow, ReasonForm, Section, search_links};
use crate::panel::{Frame, PanelError, PanelForm, Viewer, done, html, when};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/orgs", get(list))
        .route("/admin/orgs/{id}", get(show))
        .route(
            "/admin/orgs/{id}/members/{user_id}/remove",
            post(remove_member),
        )
        .route(
            "/admin/orgs/{id}/invitations/{invitation_id}/revoke",
            post(revoke_invitation),
        )
}

/// An organization as the list and the page show it.
struct OrgRow {
    id: String,
    name: String,
    slug: String,
    kind: String,
    created: String,
    members: i64,
}

impl From<OrgSummary> for OrgRow {
    fn from(org: OrgSummary) -> Self {
        Self {
            id: org.id,
            name: org.name,
            slug: org.slug,
            kind: org.kind,
            created: when(org.created_at),
            members: org.members,
        }
    }
}

#[derive(Template)]
#[template(path = "orgs.html")]
struct ListPage {
    frame: Frame,
    q: String,
    orgs: Vec<OrgRow>,
    previous: Option<String>,
    next: Option<String>,
}

async fn list(
    State(db): State<Database>,
    viewer: Viewer,
    Query(search): Query<OrgSearch>,
) -> Result<Response, PanelError> {
    let page = admin_orgs::search(&db, &viewer.staff, &search).await?;
    let q = search.q.unwrap_or_default();
    let (previous, next) = search_links(&page, "/admin/orgs", &q);
    Ok(html(&ListPage {
        frame: viewer.frame,
        orgs: page.items.into_iter().map(OrgRow::from).collect(),
        q,
        previous,
        next,
    }))
}

struct MemberRow {
    user_id: String,
    email: String,
    full_name: String,
    role: &'static str,
    joined: String,
}

impl From<Member> for MemberRow {
    fn from(member: Member) -> Self {
        Self {
            user_id: member.user_id,
            email: member.email,
            full_name: member.full_name.unwrap_or_default(),
            role: member.role.as_str(),
            joined: when(member.joined_at),
        }
    }
}

struct InvitationRow {
    id: String,
    email: String,
    role: &'static str,
    sent: String,
    expires: String,
}

impl From<Invitation> for InvitationRow {
    fn from(invitation: Invitation) -> Self {
        Self {
            id: invitation.id,
            email: invitation.email,
            role: invitation.role.as_str(),
            sent: when(invitation.created_at),
            expires: when(invitation.expires_at),
        }
    }
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    frame: Frame,
    org: OrgRow,
    may_manage: bool,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    trail: Vec<EntryRow>,
    sections: Vec<Section>,
}

async fn show(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PanelError> {
    let detail = admin_orgs::find(&db, &viewer.staff, &id).await?;
    let trail = admin_orgs::trail(&db, &viewer.staff, &id).await?;
    let sections: Vec<Section> = Vec::new();
    // <<<inject:org-sections>>>
    // <<<begin:admin/org-billing@org-sections>>>
    let billing_section = Section {
        title: "Subscription",
        html: crate::admin_org_billing::org_section(&db, &id).await?,
    };
    let sections: Vec<Section> = sections.into_iter().chain([billing_section]).collect();
    // <<<end:admin/org-billing@org-sections>>>
    Ok(html(&OrgPage {
        may_manage: viewer.staff.may(Permission::Manage),
        org: OrgRow::from(detail.organization),
        members: detail.members.into_iter().map(MemberRow::from).collect(),
        // The page lists what staff may act on; the JSON API has every invitation.
        invitations: detail
            .invitations
            .into_iter()
            .filter(|invitation| invitation.state == "pending")
            .map(InvitationRow::from)
            .collect(),
        trail: trail.items.into_iter().map(EntryRow::from).collect(),
        sections,
        frame: viewer.frame,
    }))
}

async fn remove_member(
    State(db): State<Database>,
    viewer: Viewer,
    Path((id, user_id)): Path<(String, String)>,
    PanelForm(form): PanelForm<ReasonForm>,
) -> Result<Response, PanelError> {
    admin_orgs::remove_member(&db, &viewer.staff, &id, &user_id, form.reason()).await?;
    Ok(done(&format!("/admin/orgs/{id}"), "member-removed").into_response())
}

async fn revoke_invitation(
    State(db): State<Database>,
    viewer: Viewer,
    Path((id, invitation_id)): Path<(String, String)>,
    PanelForm(form): PanelForm<ReasonForm>,
) -> Result<Response, PanelError> {
    admin_orgs::revoke_invitation(&db, &viewer.staff, &id, &invitation_id, form.reason()).await?;
    Ok(done(&format!("/admin/orgs/{id}"), "invitation-revoked").into_response())
}
