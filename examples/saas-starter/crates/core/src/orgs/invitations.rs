//! Invitations to join an organization: an email with a link, accepted by a signed-in user whose
//! verified address is the one invited.
//!
//! As with the account emails (`crate::auth::mail`), the token is minted by the job that sends
//! the message (`orgs.invitation_email`, [`InvitationEmails`]), so it exists nowhere but in the
//! email: the job's payload names the invitation, and the table keeps the token's SHA-256. Each
//! attempt of the job mints a new token, replacing the previous one: the link of the last
//! message sent is the one that works. Inviting an address again revokes its pending invitation
//! and sends a new one; accepting uses the token up.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::{
    Action, OrgError, OrgRole, Organization, Scope, Tenant, TenantId, begin_read, begin_write,
    find_in, lock, role_in, role_of, set_scope,
};
use crate::auth::mail::in_words;
use crate::auth::session::{hash_token, new_token};
use crate::auth::{User, accounts, now};
use crate::email::{Branding, Email, Mailer};
use crate::email_message;
use crate::jobs::{self, Job, JobContext, JobError, NewJob};

/// The product's page the invitation links point to (under `APP_BASE_URL`), taking `?token=`;
/// it signs the user in (or up) and calls `POST /api/invitations/accept`.
pub const ACCEPT_INVITATION_PAGE: &str = "/accept-invitation";

/// An invitation as the organization's admins see it: never with its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub id: String,
    pub email: String,
    pub role: OrgRole,
    /// `pending`, `accepted`, `revoked`, or `expired` (pending past `expires_at`).
    pub state: String,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Invitation {
    fn from_row(row: &sqlx::any::AnyRow, now: i64) -> Result<Self, sqlx::Error> {
        let state: String = row.try_get("state")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        let state = if state == "pending" && expires_at <= now {
            "expired".to_owned()
        } else {
            state
        };
        Ok(Self {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            role: role_of(&row.try_get::<String, _>("role")?)?,
            state,
            invited_by: row.try_get("invited_by")?,
            created_at: row.try_get("created_at")?,
            expires_at,
        })
    }
}

/// An invitation as a client asks for it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"email": "ben@example.com", "role": "member"}))]
pub struct NewInvitation {
    pub email: String,
    pub role: OrgRole,
}

/// Invites `new.email` with `new.role` for `ttl` seconds: revokes a pending invitation of the
/// address and enqueues the email, in one transaction. Owners only invite owners.
pub async fn invite(
    db: &crate::db::Database,
    tenant: &Tenant,
    new: &NewInvitation,
    ttl: i64,
) -> Result<Invitation, OrgError> {
    tenant.require(Action::Invite)?;
    if new.role == OrgRole::Owner && !tenant.role.can(Action::ManageOwners) {
        return Err(OrgError::Forbidden(Action::ManageOwners));
    }
    let email = accounts::normalize_email(&new.email);
    if !accounts::is_valid_email(&email) {
        return Err(OrgError::Invalid(
            [(
                "email".to_owned(),
                "is not a valid email address".to_owned(),
            )]
            .into(),
        ));
    }
    let now = now();
    let mut tx = begin_write(db, Scope::Tenant(tenant.id.as_str())).await?;
    let member = sqlx::query(
        "SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.org_id = $1 AND u.email = $2",
    )
    .bind(tenant.id.as_str())
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    if member.is_some() {
        return Err(OrgError::AlreadyMember);
    }
    sqlx::query(
        "UPDATE invitations SET state = 'revoked' \
         WHERE org_id = $1 AND email = $2 AND state = 'pending'",
    )
    .bind(tenant.id.as_str())
    .bind(&email)
    .execute(&mut *tx)
    .await?;
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO invitations (org_id, id, email, role, invited_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant.id.as_str())
    .bind(&id)
    .bind(&email)
    .bind(new.role.as_str())
    .bind(&tenant.user.user.id)
    .bind(now)
    .bind(now.saturating_add(ttl))
    .execute(&mut *tx)
    .await?;
    let payload = InvitationEmail {
        org_id: tenant.id.as_str().to_owned(),
        invitation_id: id.clone(),
    };
    let job = NewJob::of::<InvitationEmails>(&payload)
        .map_err(|error| OrgError::Internal(error.into()))?;
    jobs::enqueue(&mut tx, &job).await?;
    let invitation = find(&mut tx, &tenant.id, &id, now).await?;
    tx.commit().await?;
    tracing::info!(org = %tenant.id.as_str(), invitation = %id, by = %tenant.user.user.id, "invitation sent");
    Ok(invitation)
}

async fn find(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    id: &str,
    now: i64,
) -> Result<Invitation, OrgError> {
    let row = sqlx::query(
        "SELECT id, email, role, state, invited_by, created_at, expires_at FROM invitations \
         WHERE org_id = $1 AND id = $2",
    )
    .bind(tenant.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(OrgError::NotFound("invitation"))?;
    Ok(Invitation::from_row(&row, now)?)
}

/// The organization's invitations, newest first.
pub async fn list(db: &crate::db::Database, tenant: &Tenant) -> Result<Vec<Invitation>, OrgError> {
    tenant.require(Action::ReadInvitations)?;
    let mut tx = begin_read(db, Scope::Tenant(tenant.id.as_str())).await?;
    let invitations = list_in(&mut tx, &tenant.id, now()).await?;
    tx.commit().await?;
    Ok(invitations)
}

/// The invitations of `tenant`, newest first, on `conn` (in a transaction that named its
/// scope), their state as of `now`.
pub(crate) async fn list_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    now: i64,
) -> Result<Vec<Invitation>, OrgError> {
    let rows = sqlx::query(
        "SELECT id, email, role, state, invited_by, created_at, expires_at FROM invitations \
         WHERE org_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(tenant.as_str())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| Invitation::from_row(row, now))
        .collect::<Result<_, _>>()?)
}

/// Revokes a pending invitation: its link stops working. `NotFound` when it is not this
/// organization's or is no longer pending.
pub async fn revoke(db: &crate::db::Database, tenant: &Tenant, id: &str) -> Result<(), OrgError> {
    tenant.require(Action::Invite)?;
    let mut tx = begin_write(db, Scope::Tenant(tenant.id.as_str())).await?;
    revoke_in(&mut tx, &tenant.id, id).await?;
    tx.commit().await?;
    tracing::info!(org = %tenant.id.as_str(), invitation = %id, by = %tenant.user.user.id, "invitation revoked");
    Ok(())
}

/// Revokes the pending invitation `id` of `tenant` on `conn` and returns it, revoked (its
/// address and role, for whoever records the change). `NotFound` when it is not this
/// organization's or is no longer pending.
pub(crate) async fn revoke_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    id: &str,
) -> Result<Invitation, OrgError> {
    let revoked = sqlx::query(
        "UPDATE invitations SET state = 'revoked' \
         WHERE org_id = $1 AND id = $2 AND state = 'pending'",
    )
    .bind(tenant.as_str())
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if revoked == 0 {
        return Err(OrgError::NotFound("invitation"));
    }
    let invitation = find(conn, tenant, id, now()).await?;
    Ok(invitation)
}

/// Accepts the invitation whose link carried `token`, for `user`, whose verified address must
/// be the one invited: makes them a member with the invited role (a member already keeps their
/// role). Returns the organization and the member's role.
pub async fn accept(
    db: &crate::db::Database,
    user: &User,
    token: &str,
) -> Result<(TenantId, Organization), OrgError> {
    let now = now();
    let token_hash = hash_token(token);
    let mut tx = begin_write(db, Scope::Invitation(&token_hash)).await?;
    let row = sqlx::query(
        "SELECT org_id, id, email, role, state, expires_at FROM invitations WHERE token_hash = $1",
    )
    .bind(&token_hash)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(OrgError::InvalidInvitation)?;
    let state: String = row.try_get("state")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    if state != "pending" || expires_at <= now {
        return Err(OrgError::InvalidInvitation);
    }
    let email: String = row.try_get("email")?;
    if email != user.email {
        return Err(OrgError::InvitationForAnotherAddress);
    }
    if !user.email_verified {
        return Err(OrgError::EmailUnverified);
    }
    // The invitation names the organization: holding its token is the proof of membership.
    let tenant = TenantId::checked(row.try_get("org_id")?);
    let id: String = row.try_get("id")?;
    let role = role_of(&row.try_get::<String, _>("role")?)?;
    set_scope(&mut tx, Scope::Tenant(tenant.as_str())).await?;
    lock(&mut tx, &tenant).await?;
    sqlx::query(
        "UPDATE invitations SET state = 'accepted', accepted_by = $1, accepted_at = $2 \
         WHERE org_id = $3 AND id = $4",
    )
    .bind(&user.id)
    .bind(now)
    .bind(tenant.as_str())
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    let role = match role_in(&mut tx, &tenant, &user.id).await? {
        Some(existing) => existing,
        None => {
            sqlx::query(
                "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(tenant.as_str())
            .bind(&user.id)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            role
        }
    };
    let organization = find_in(&mut tx, &tenant, role).await?;
    tx.commit().await?;
    tracing::info!(org = %tenant.as_str(), user = %user.id, role = role.as_str(), "invitation accepted");
    Ok((tenant, organization))
}

/// "You are invited to join ...".
pub struct InvitationMessage {
    pub brand: Branding,
    pub link: String,
    pub organization: String,
    pub inviter: String,
    pub role: &'static str,
    pub valid_for: String,
}

email_message!(
    InvitationMessage,
    text = "orgs/invitation.txt",
    html = "orgs/invitation.html",
    subject = |m| format!(
        "{} invited you to {} on {}",
        m.inviter, m.organization, m.brand.app_name
    ),
);

/// The payload of `orgs.invitation_email` jobs: which invitation, never its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvitationEmail {
    pub org_id: String,
    pub invitation_id: String,
}

/// The `orgs.invitation_email` job: mints the invitation's token and sends the message.
pub struct InvitationEmails {
    mailer: Mailer,
}

impl InvitationEmails {
    pub fn new(mailer: Mailer) -> Self {
        Self { mailer }
    }
}

impl Job for InvitationEmails {
    const KIND: &'static str = "orgs.invitation_email";
    type Payload = InvitationEmail;

    async fn run(&self, ctx: &JobContext, payload: InvitationEmail) -> Result<(), JobError> {
        let db = ctx.db();
        let now = now();
        let mut tx = begin_write(db, Scope::Tenant(&payload.org_id)).await?;
        let row = sqlx::query(
            "SELECT i.email, i.role, i.created_at, i.expires_at, o.name, COALESCE(u.full_name, u.email) AS inviter \
             FROM invitations i JOIN organizations o ON o.id = i.org_id \
             LEFT JOIN users u ON u.id = i.invited_by \
             WHERE i.org_id = $1 AND i.id = $2 AND i.state = 'pending' AND i.expires_at > $3",
        )
        .bind(&payload.org_id)
        .bind(&payload.invitation_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        // Revoked, replaced, accepted or expired meanwhile, or the organization is gone.
        let Some(row) = row else {
            return Ok(());
        };
        let to: String = row.try_get("email")?;
        let role = role_of(&row.try_get::<String, _>("role")?).map_err(JobError::permanent)?;
        let lifetime =
            row.try_get::<i64, _>("expires_at")? - row.try_get::<i64, _>("created_at")?;
        let token = new_token().map_err(JobError::retry)?;
        sqlx::query("UPDATE invitations SET token_hash = $1 WHERE org_id = $2 AND id = $3")
            .bind(hash_token(&token))
            .bind(&payload.org_id)
            .bind(&payload.invitation_id)
            .execute(&mut *tx)
            .await?;
        let brand = self.mailer.branding().clone();
        let message = InvitationMessage {
            link: brand.link(&format!("{ACCEPT_INVITATION_PAGE}?token={token}")),
            brand,
            organization: row.try_get("name")?,
            inviter: row
                .try_get::<Option<String>, _>("inviter")?
                .unwrap_or_else(|| "Someone".to_owned()),
            role: role.as_str(),
            valid_for: in_words(lifetime),
        };
        // A template that does not render never will.
        let email = Email::render(&to, &message).map_err(JobError::permanent)?;
        tx.commit().await?;
        // Each attempt's message is another (another token): its own Message-ID.
        let id = format!("job-{}-{}", ctx.id(), ctx.attempt());
        self.mailer.deliver(db, &email, &id).await?;
        tracing::info!(org = %payload.org_id, invitation = %payload.invitation_id, "invitation email sent");
        Ok(())
    }
}
