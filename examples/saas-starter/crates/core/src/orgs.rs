//! Organizations: the tenants of the product, their members and roles (docs/orgs.md).
//!
//! Every function that reads or changes what belongs to an organization takes a [`TenantId`],
//! which only code that checked the caller's membership can make (the `Tenant` extractor of
//! `crate::http::orgs`, creating an organization, accepting an invitation): a handler that
//! forgets to check the tenant does not compile, instead of leaking another organization's rows.
//! What a role may do is in one table, [`PERMISSIONS`].
//!
//! Changes that must leave an organization an owner (a demotion, a removal, leaving) take the
//! organization's row lock first ([`lock`]), so two of them running at once are serialized and
//! the second one sees the first one's result: two owners demoting each other at the same time
//! leave one owner, on PostgreSQL as on SQLite (where writers take turns anyway).
//!
//! On PostgreSQL, the tenant-owned tables (`memberships`, `invitations`) have row-level security
//! as defence in depth: a transaction sees only the rows of the organization, user or invitation
//! it names with `set_config(..., true)` ([`Scope`]), so every query of this module runs in a
//! transaction that names its scope first, and a query that forgot its tenant would see nothing
//! when the service connects as a role that does not bypass the policies (docs/orgs.md).

pub mod invitations;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use crate::auth::{Auth, CurrentUser, User, now};
use crate::config::Env;
use crate::db::{Backend, Columns, Database, Param};
use crate::error::{BoxError, FieldErrors};

pub use invitations::{Invitation, InvitationEmails, NewInvitation};

/// The longest organization name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// The `ORGS_*` settings.
#[derive(Debug, Clone, Copy)]
pub struct OrgsConfig {
    /// Registration creates a personal organization, owned by the new account
    /// (`ORGS_PERSONAL_ORGANIZATION`).
    pub personal_organization: bool,
    /// How long an invitation link works, in seconds (`ORGS_INVITATION_TTL_SECS`).
    pub invitation_ttl: i64,
}

impl OrgsConfig {
    pub fn from_env(env: &mut Env) -> Self {
        let invitation_ttl = env.optional("ORGS_INVITATION_TTL_SECS", 7 * 24 * 3600);
        if invitation_ttl <= 0 {
            env.record(
                "ORGS_INVITATION_TTL_SECS",
                "must be a positive number of seconds",
            );
        }
        Self {
            personal_organization: env.optional("ORGS_PERSONAL_ORGANIZATION", true),
            invitation_ttl,
        }
    }

    /// `auth` with what organizations add to it: the personal organization hooked into
    /// registration, when configured, and the membership check of access tokens switched to an
    /// organization, for the reads that take the organization from the token
    /// ([`Auth::active_organization`]).
    pub fn hook(&self, auth: Auth) -> Auth {
        let auth = auth.check_memberships_with(|db, org_id, user_id| {
            Box::pin(async move { Ok(membership(db, org_id, user_id).await?.is_some()) })
        });
        if self.personal_organization {
            auth.on_registration(|conn, user| Box::pin(create_personal(conn, user)))
        } else {
            auth
        }
    }
}

/// The id of an organization whose membership of the current user was checked. Repository
/// functions take it instead of a string, so that a query can only name a tenant the caller
/// belongs to. Deliberately not constructible outside this crate, not `Deserialize`, and not
/// `From<String>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// Only for code that has just checked (or created) the membership.
    pub(crate) fn checked(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A member's role in an organization, from least to most powerful.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    Member,
    Admin,
    Owner,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Member, Self::Admin, Self::Owner]
            .into_iter()
            .find(|role| role.as_str() == text)
    }

    /// Whether the permission table lets this role do `action`.
    pub fn can(self, action: Action) -> bool {
        PERMISSIONS
            .iter()
            .any(|(allowed, roles)| *allowed == action && roles.contains(&self))
    }
}

/// What members do in an organization. Add a variant (and its row in [`PERMISSIONS`]) for each
/// action of the product's own org-scoped endpoints, then `tenant.require(Action::...)?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See the organization's name and slug.
    ReadOrganization,
    /// Rename it, change its slug.
    UpdateOrganization,
    /// Delete it with its memberships and invitations.
    DeleteOrganization,
    /// List the members and their roles.
    ReadMembers,
    /// Change the role of admins and members, remove them.
    ManageMembers,
    /// Make owners, demote or remove owners, transfer ownership.
    ManageOwners,
    /// List the invitations.
    ReadInvitations,
    /// Invite people and revoke invitations.
    Invite,
    /// Switch a session's tokens to this organization.
    Switch,
}

impl Action {
    /// How the action reads in an error message.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ReadOrganization => "reading the organization",
            Self::UpdateOrganization => "changing the organization",
            Self::DeleteOrganization => "deleting the organization",
            Self::ReadMembers => "listing the members",
            Self::ManageMembers => "managing members",
            Self::ManageOwners => "making, demoting or removing owners",
            Self::ReadInvitations => "listing the invitations",
            Self::Invite => "inviting people and revoking invitations",
            Self::Switch => "switching to the organization",
        }
    }
}

use Action::*;
// `OrgRole::Member` stays qualified: `Member` is also the struct of the members list.
use OrgRole::{Admin, Owner};

/// The permission table: which roles may do each action. The one place the rules live;
/// docs/orgs.md shows it. Extend it with the product's own actions.
pub const PERMISSIONS: &[(Action, &[OrgRole])] = &[
    (ReadOrganization, &[Owner, Admin, OrgRole::Member]),
    (UpdateOrganization, &[Owner, Admin]),
    (DeleteOrganization, &[Owner]),
    (ReadMembers, &[Owner, Admin, OrgRole::Member]),
    (ManageMembers, &[Owner, Admin]),
    (ManageOwners, &[Owner]),
    (ReadInvitations, &[Owner, Admin]),
    (Invite, &[Owner, Admin]),
    (Switch, &[Owner, Admin, OrgRole::Member]),
];

/// A request's organization: the user, a member of it, and their role there. Built by the
/// `Tenant` extractor after one membership lookup, which reads the organization's row too.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub user: CurrentUser,
    pub role: OrgRole,
    /// The organization as the membership check read it, at the start of the request.
    pub organization: Organization,
}

impl Tenant {
    /// Refuses `action` unless the permission table gives it to the member's role.
    pub fn require(&self, action: Action) -> Result<(), OrgError> {
        if self.role.can(action) {
            Ok(())
        } else {
            Err(OrgError::Forbidden(action))
        }
    }
}

/// An organization as its members see it, with the caller's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// `personal` (made at registration) or `team`.
    pub kind: String,
    pub created_at: i64,
    /// The caller's role in it.
    pub role: OrgRole,
}

impl Organization {
    fn from_row(row: &(impl Columns + ?Sized)) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.text("id")?,
            name: row.text("name")?,
            slug: row.text("slug")?,
            kind: row.text("kind")?,
            created_at: row.int("created_at")?,
            role: role_of(&row.text("role")?)?,
        })
    }
}

/// A member, as the members list shows them: a membership with its user's email and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Membership)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub full_name: Option<String>,
    pub role: OrgRole,
    /// Unix seconds.
    pub joined_at: i64,
}

impl Member {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            full_name: row.try_get("full_name")?,
            role: role_of(&row.try_get::<String, _>("role")?)?,
            joined_at: row.try_get("created_at")?,
        })
    }
}

/// The fields of a new organization, as a client sends them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "Acme", "slug": "acme"}))]
pub struct NewOrganization {
    pub name: String,
    /// Derived from the name when left out.
    pub slug: Option<String>,
}

/// The fields of an organization to change; those left out stay.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "Acme Inc"}))]
pub struct OrganizationUpdate {
    pub name: Option<String>,
    pub slug: Option<String>,
}

/// Why an organization operation failed, in the domain's terms; `crate::error::orgs` says how
/// each is answered over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// No such organization, member or invitation, as far as the caller may know: another
    /// organization's things are not found either, never forbidden.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller's role does not allow this, in an organization they belong to.
    #[error("your role does not allow {}", .0.describe())]
    Forbidden(Action),
    /// The change would leave the organization without an owner.
    #[error("the organization would have no owner left")]
    LastOwner,
    /// Another organization has this slug.
    #[error("the slug is taken")]
    SlugTaken,
    /// The address invited, or the user, is a member already.
    #[error("already a member")]
    AlreadyMember,
    /// Some inputs are invalid, each explained by field name.
    #[error("invalid fields: {0:?}")]
    Invalid(FieldErrors),
    /// The invitation token is unknown, used, revoked, replaced or expired.
    #[error("the invitation is not valid")]
    InvalidInvitation,
    /// The invitation was sent to another address than the signed-in account's.
    #[error("the invitation is for another address")]
    InvitationForAnotherAddress,
    /// Accepting needs the account's address verified (it proves the invitation reached them).
    #[error("the account's email address is not verified")]
    EmailUnverified,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Anything else: a bug or an infrastructure failure.
    #[error(transparent)]
    Internal(BoxError),
}

/// What a transaction may see of the tenant-owned tables under PostgreSQL's row-level security:
/// each variant is a setting the policies of the `orgs_row_level_security` migration compare
/// rows with. On SQLite the application alone enforces tenancy, and nothing is set.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The rows of one organization (`app.org_id`).
    Tenant(&'a str),
    /// The memberships of one user, in every organization (`app.user_id`): "my organizations",
    /// and the membership check that comes before a tenant is known.
    User(&'a str),
    /// The invitation with this token hash (`app.invitation`): accepting, before the
    /// organization is known.
    Invitation(&'a str),
    /// The memberships of every organization, read only (`app.staff`): the back office's list
    /// of organizations with their member counts. Only the policy of the `admin/orgs` module's
    /// migration reads this setting; without that module it opens nothing.
    Staff,
}

impl Scope<'_> {
    fn setting(self) -> (&'static str, String) {
        match self {
            Self::Tenant(org_id) => ("app.org_id", org_id.to_owned()),
            Self::User(user_id) => ("app.user_id", user_id.to_owned()),
            Self::Invitation(token_hash) => ("app.invitation", token_hash.to_owned()),
            Self::Staff => ("app.staff", "on".to_owned()),
        }
    }
}

/// Names `scope` for the rest of the transaction on `conn` (PostgreSQL; nothing on SQLite).
/// `set_config(..., true)` ends with the transaction: a pooled connection carries no tenant
/// over to the next one.
pub async fn set_scope(conn: &mut AnyConnection, scope: Scope<'_>) -> sqlx::Result<()> {
    if conn.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    let (name, value) = scope.setting();
    sqlx::query("SELECT set_config($1, $2, true)")
        .bind(name)
        .bind(value)
        .execute(conn)
        .await?;
    Ok(())
}

/// A write transaction ([`Database::begin_write`]) in `scope`.
pub async fn begin_write(
    db: &Database,
    scope: Scope<'_>,
) -> sqlx::Result<Transaction<'static, Any>> {
    let mut tx = db.begin_write().await?;
    set_scope(&mut tx, scope).await?;
    Ok(tx)
}

/// A transaction that only reads, in `scope`.
pub async fn begin_read(
    db: &Database,
    scope: Scope<'_>,
) -> sqlx::Result<Transaction<'static, Any>> {
    let mut tx = db.pool().begin().await?;
    set_scope(&mut tx, scope).await?;
    Ok(tx)
}

fn role_of(text: &str) -> Result<OrgRole, sqlx::Error> {
    OrgRole::parse(text)
        .ok_or_else(|| sqlx::Error::Decode("memberships.role is not owner, admin or member".into()))
}

/// The organization `org_id` as `user_id` sees it, with their role, if they are a member: the
/// check of every org-scoped request. One statement, on the path [`Database::read_row`] gives
/// the reads every request makes, which returns the organization's row with the membership so
/// that a handler reading it (`GET /api/orgs/{org}`) needs no second query:
///
/// - SQLite: a join, looked up by both primary keys, on the calling thread (a read-only
///   connection, a cached statement);
/// - PostgreSQL: the `org_membership` function of migration `orgs_membership_function`, one
///   round trip where `BEGIN`, `set_config`, the lookup and `COMMIT` were four: row-level
///   security needs the user named in the transaction, and the function names it
///   (`set_config(..., true)`) before its query runs, inside the statement's own transaction,
///   which ends with the statement, so the pooled connection keeps no user for its next one.
pub async fn membership(
    db: &Database,
    org_id: &str,
    user_id: &str,
) -> Result<Option<Organization>, sqlx::Error> {
    let sql = match db.backend() {
        Backend::Postgres => {
            "SELECT role, id, name, slug, kind, created_at FROM org_membership($1, $2)"
        }
        Backend::Sqlite => {
            "SELECT m.role, o.id, o.name, o.slug, o.kind, o.created_at \
             FROM memberships m JOIN organizations o ON o.id = m.org_id \
             WHERE m.org_id = $1 AND m.user_id = $2"
        }
    };
    db.read_row(sql, &[Param::Text(org_id), Param::Text(user_id)], |row| {
        Organization::from_row(row)
    })
    .await
}

/// The organizations `user_id` belongs to, with their role in each, oldest first.
pub async fn list_mine(db: &Database, user_id: &str) -> Result<Vec<Organization>, OrgError> {
    let mut tx = begin_read(db, Scope::User(user_id)).await?;
    let rows = sqlx::query(
        "SELECT o.id, o.name, o.slug, o.kind, o.created_at, m.role FROM memberships m \
         JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY o.created_at, o.id",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .iter()
        .map(Organization::from_row)
        .collect::<Result<_, _>>()?)
}

/// The organization of `tenant`, with the caller's role: as the membership check read it, with
/// no query of its own.
pub fn get(tenant: &Tenant) -> Result<Organization, OrgError> {
    tenant.require(ReadOrganization)?;
    Ok(tenant.organization.clone())
}

/// Creates an organization with `user` as its owner.
pub async fn create(
    db: &Database,
    user: &User,
    new: &NewOrganization,
) -> Result<Organization, OrgError> {
    let name = clean_name(&new.name);
    let mut fields = FieldErrors::new();
    if let Some(problem) = name_violation(&name) {
        fields.insert("name".into(), problem);
    }
    let slug = match new.slug.as_deref() {
        Some(slug) => {
            let slug = slug.trim().to_lowercase();
            if let Some(problem) = slug_violation(&slug) {
                fields.insert("slug".into(), problem);
            }
            Some(slug)
        }
        None => None,
    };
    if !fields.is_empty() {
        return Err(OrgError::Invalid(fields));
    }
    let mut tx = begin_write(db, Scope::User(&user.id)).await?;
    let tenant = match slug {
        Some(slug) => insert(&mut tx, &user.id, &name, &slug, "team").await?,
        // A slug derived from the name, made unique with a random suffix when it is taken.
        None => insert_with_derived_slug(&mut tx, &user.id, &name, "team").await?,
    };
    let organization = find_in(&mut tx, &tenant, Owner).await?;
    tx.commit().await?;
    tracing::info!(org = %tenant.as_str(), user = %user.id, "organization created");
    Ok(organization)
}

/// Creates the personal organization of a new account, in the transaction that creates the
/// account: a hook of `Auth::register` (`ORGS_PERSONAL_ORGANIZATION`).
pub async fn create_personal(conn: &mut AnyConnection, user: &User) -> Result<(), BoxError> {
    let name = user.full_name.clone().unwrap_or_else(|| {
        user.email
            .split('@')
            .next()
            .unwrap_or("personal")
            .to_owned()
    });
    let name: String = clean_name(&name).chars().take(MAX_NAME_CHARS).collect();
    set_scope(conn, Scope::User(&user.id)).await?;
    insert_with_derived_slug(conn, &user.id, &name, "personal")
        .await
        .map_err(|error| Box::new(error) as BoxError)?;
    Ok(())
}

async fn insert_with_derived_slug(
    conn: &mut AnyConnection,
    user_id: &str,
    name: &str,
    kind: &str,
) -> Result<TenantId, OrgError> {
    let base = derive_slug(name);
    match insert(conn, user_id, name, &base, kind).await {
        Err(OrgError::SlugTaken) => {
            // The last 12 hex digits of a UUID v7 are random: a second collision is negligible.
            let random = uuid::Uuid::now_v7().simple().to_string();
            let slug = format!("{base}-{}", &random[20..]);
            insert(conn, user_id, name, &slug, kind).await
        }
        other => other,
    }
}

async fn insert(
    conn: &mut AnyConnection,
    user_id: &str,
    name: &str,
    slug: &str,
    kind: &str,
) -> Result<TenantId, OrgError> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = now();
    // A taken slug inserts nothing rather than failing: on PostgreSQL a failed statement aborts
    // the transaction, and the caller retries with another slug in the same one (registration's
    // transaction, when two accounts of the same name register at once). A concurrent insert of
    // the same slug makes this one wait for its commit, then insert nothing.
    let inserted = sqlx::query(
        "INSERT INTO organizations (id, name, slug, kind, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (slug) DO NOTHING",
    )
    .bind(&id)
    .bind(name)
    .bind(slug)
    .bind(kind)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(OrgError::SlugTaken);
    }
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) \
         VALUES ($1, $2, 'owner', $3, $3)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(TenantId::checked(id))
}

async fn find_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    role: OrgRole,
) -> Result<Organization, OrgError> {
    let row = sqlx::query(
        "SELECT id, name, slug, kind, created_at, $2 AS role FROM organizations WHERE id = $1",
    )
    .bind(tenant.as_str())
    .bind(role.as_str())
    .fetch_optional(conn)
    .await?
    .ok_or(OrgError::NotFound("organization"))?;
    Ok(Organization::from_row(&row)?)
}

/// Renames the organization or changes its slug (owners and admins).
pub async fn update(
    db: &Database,
    tenant: &Tenant,
    update: &OrganizationUpdate,
) -> Result<Organization, OrgError> {
    tenant.require(UpdateOrganization)?;
    let name = update.name.as_deref().map(clean_name);
    let slug = update
        .slug
        .as_deref()
        .map(|slug| slug.trim().to_lowercase());
    let mut fields = FieldErrors::new();
    if let Some(problem) = name.as_deref().and_then(name_violation) {
        fields.insert("name".into(), problem);
    }
    if let Some(problem) = slug.as_deref().and_then(slug_violation) {
        fields.insert("slug".into(), problem);
    }
    if !fields.is_empty() {
        return Err(OrgError::Invalid(fields));
    }
    let mut tx = db.begin_write().await?;
    if let Some(slug) = &slug {
        let taken = sqlx::query("SELECT 1 FROM organizations WHERE slug = $1 AND id <> $2")
            .bind(slug)
            .bind(tenant.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(OrgError::SlugTaken);
        }
    }
    sqlx::query(
        "UPDATE organizations SET name = COALESCE($1, name), slug = COALESCE($2, slug), \
         updated_at = $3 WHERE id = $4",
    )
    .bind(name.as_deref())
    .bind(slug.as_deref())
    .bind(now())
    .bind(tenant.id.as_str())
    .execute(&mut *tx)
    .await
    .map_err(slug_taken_or_database)?;
    let organization = find_in(&mut tx, &tenant.id, tenant.role).await?;
    tx.commit().await?;
    Ok(organization)
}

/// Deletes the organization (owners), with its memberships and invitations. Returns how many
/// memberships ended. Nothing outside the database is touched: see docs/orgs.md for billing.
pub async fn delete(db: &Database, tenant: &Tenant) -> Result<u64, OrgError> {
    tenant.require(DeleteOrganization)?;
    let mut tx = begin_write(db, Scope::Tenant(tenant.id.as_str())).await?;
    let members = sqlx::query("DELETE FROM memberships WHERE org_id = $1")
        .bind(tenant.id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM invitations WHERE org_id = $1")
        .bind(tenant.id.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM organizations WHERE id = $1")
        .bind(tenant.id.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(org = %tenant.id.as_str(), user = %tenant.user.user.id, members, "organization deleted");
    Ok(members)
}

/// The members of the organization, owners first.
pub async fn members(db: &Database, tenant: &Tenant) -> Result<Vec<Member>, OrgError> {
    tenant.require(ReadMembers)?;
    let mut tx = begin_read(db, Scope::Tenant(tenant.id.as_str())).await?;
    let members = members_in(&mut tx, &tenant.id).await?;
    tx.commit().await?;
    Ok(members)
}

/// The members of `tenant`, owners first, on `conn` (in a transaction that named its scope).
pub(crate) async fn members_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
) -> Result<Vec<Member>, OrgError> {
    let rows = sqlx::query(
        "SELECT m.user_id, u.email, u.full_name, m.role, m.created_at FROM memberships m \
         JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 \
         ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, \
         m.created_at, m.user_id",
    )
    .bind(tenant.as_str())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(Member::from_row)
        .collect::<Result<_, _>>()?)
}

/// Takes the organization's row lock for the rest of the transaction (see the module's
/// documentation). `NotFound` when it was deleted meanwhile.
pub(crate) async fn lock(conn: &mut AnyConnection, tenant: &TenantId) -> Result<(), OrgError> {
    let locked = sqlx::query("UPDATE organizations SET updated_at = $1 WHERE id = $2")
        .bind(now())
        .bind(tenant.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if locked == 0 {
        return Err(OrgError::NotFound("organization"));
    }
    Ok(())
}

pub(crate) async fn role_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    user_id: &str,
) -> Result<Option<OrgRole>, OrgError> {
    let row = sqlx::query("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(tenant.as_str())
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(role_of(&row.try_get::<String, _>("role")?)?)),
        None => Ok(None),
    }
}

async fn owners(conn: &mut AnyConnection, tenant: &TenantId) -> Result<i64, OrgError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS owners FROM memberships WHERE org_id = $1 AND role = 'owner'",
    )
    .bind(tenant.as_str())
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("owners")?)
}

/// Gives member `user_id` the role `role`. Admins manage admins and members; only owners make
/// owners or change an owner's role; the last owner cannot be demoted (409).
pub async fn change_role(
    db: &Database,
    tenant: &Tenant,
    user_id: &str,
    role: OrgRole,
) -> Result<Member, OrgError> {
    tenant.require(ManageMembers)?;
    let mut tx = begin_write(db, Scope::Tenant(tenant.id.as_str())).await?;
    lock(&mut tx, &tenant.id).await?;
    // The caller's role as of the lock: a concurrent change may have demoted them.
    let actor = role_in(&mut tx, &tenant.id, &tenant.user.user.id)
        .await?
        .ok_or(OrgError::NotFound("organization"))?;
    let current = role_in(&mut tx, &tenant.id, user_id)
        .await?
        .ok_or(OrgError::NotFound("member"))?;
    if (current == Owner || role == Owner) && !actor.can(ManageOwners) {
        return Err(OrgError::Forbidden(ManageOwners));
    }
    if !actor.can(ManageMembers) {
        return Err(OrgError::Forbidden(ManageMembers));
    }
    if current == Owner && role != Owner && owners(&mut tx, &tenant.id).await? <= 1 {
        return Err(OrgError::LastOwner);
    }
    sqlx::query(
        "UPDATE memberships SET role = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4",
    )
    .bind(role.as_str())
    .bind(now())
    .bind(tenant.id.as_str())
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let member = member_in(&mut tx, &tenant.id, user_id).await?;
    tx.commit().await?;
    tracing::info!(org = %tenant.id.as_str(), user = %user_id, role = role.as_str(), by = %tenant.user.user.id, "member role changed");
    Ok(member)
}

pub(crate) async fn member_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    user_id: &str,
) -> Result<Member, OrgError> {
    let row = sqlx::query(
        "SELECT m.user_id, u.email, u.full_name, m.role, m.created_at FROM memberships m \
         JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id = $2",
    )
    .bind(tenant.as_str())
    .bind(user_id)
    .fetch_optional(conn)
    .await?
    .ok_or(OrgError::NotFound("member"))?;
    Ok(Member::from_row(&row)?)
}

/// Removes member `user_id` (their own membership: see [`leave`]). Only owners remove owners;
/// the last owner stays (409).
pub async fn remove_member(db: &Database, tenant: &Tenant, user_id: &str) -> Result<(), OrgError> {
    if user_id == tenant.user.user.id {
        return leave(db, tenant).await;
    }
    tenant.require(ManageMembers)?;
    let mut tx = begin_write(db, Scope::Tenant(tenant.id.as_str())).await?;
    lock(&mut tx, &tenant.id).await?;
    let actor = role_in(&mut tx, &tenant.id, &tenant.user.user.id)
        .await?
        .ok_or(OrgError::NotFound("organization"))?;
    let current = role_in(&mut tx, &tenant.id, user_id)
        .await?
        .ok_or(OrgError::NotFound("member"))?;
    if current == Owner && !actor.can(ManageOwners) {
        return Err(OrgError::Forbidden(ManageOwners));
    }
    if !actor.can(ManageMembers) {
        return Err(OrgError::Forbidden(ManageMembers));
    }
    end_membership(&mut tx, &tenant.id, user_id, current).await?;
    tx.commit().await?;
    tracing::info!(org = %tenant.id.as_str(), user = %user_id, by = %tenant.user.user.id, "member removed");
    Ok(())
}

/// Ends the caller's own membership; the last owner cannot leave (409: make someone else an
/// owner, or delete the organization).
pub async fn leave(db: &Database, tenant: &Tenant) -> Result<(), OrgError> {
    let user_id = &tenant.user.user.id;
    let mut tx = begin_write(db, Scope::Tenant(tenant.id.as_str())).await?;
    lock(&mut tx, &tenant.id).await?;
    let current = role_in(&mut tx, &tenant.id, user_id)
        .await?
        .ok_or(OrgError::NotFound("organization"))?;
    end_membership(&mut tx, &tenant.id, user_id, current).await?;
    tx.commit().await?;
    tracing::info!(org = %tenant.id.as_str(), user = %user_id, "member left");
    Ok(())
}

/// Ends the membership of `user_id`, whose role is `current`, unless they are the last owner
/// (409). Call it with the organization's row lock taken ([`lock`]), so that the owners
/// counted are still the owners when the row goes.
pub(crate) async fn end_membership(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    user_id: &str,
    current: OrgRole,
) -> Result<(), OrgError> {
    if current == Owner && owners(&mut *conn, tenant).await? <= 1 {
        return Err(OrgError::LastOwner);
    }
    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(tenant.as_str())
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Makes member `user_id` an owner and the caller, an owner, an admin: in one transaction, so
/// the organization has an owner throughout.
pub async fn transfer_ownership(
    db: &Database,
    tenant: &Tenant,
    user_id: &str,
) -> Result<Vec<Member>, OrgError> {
    tenant.require(ManageOwners)?;
    let me = &tenant.user.user.id;
    let mut tx = begin_write(db, Scope::Tenant(tenant.id.as_str())).await?;
    lock(&mut tx, &tenant.id).await?;
    let actor = role_in(&mut tx, &tenant.id, me)
        .await?
        .ok_or(OrgError::NotFound("organization"))?;
    if actor != Owner {
        return Err(OrgError::Forbidden(ManageOwners));
    }
    role_in(&mut tx, &tenant.id, user_id)
        .await?
        .ok_or(OrgError::NotFound("member"))?;
    if user_id != me {
        let now = now();
        for (user, role) in [(user_id, Owner), (me.as_str(), Admin)] {
            sqlx::query(
                "UPDATE memberships SET role = $1, updated_at = $2 \
                 WHERE org_id = $3 AND user_id = $4",
            )
            .bind(role.as_str())
            .bind(now)
            .bind(tenant.id.as_str())
            .bind(user)
            .execute(&mut *tx)
            .await?;
        }
    }
    let members = vec![
        member_in(&mut tx, &tenant.id, user_id).await?,
        member_in(&mut tx, &tenant.id, me).await?,
    ];
    tx.commit().await?;
    tracing::info!(org = %tenant.id.as_str(), from = %me, to = %user_id, "ownership transferred");
    Ok(members)
}

/// `name` trimmed, inner runs of whitespace as one space.
fn clean_name(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn name_violation(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("must not be empty".into())
    } else if name.chars().count() > MAX_NAME_CHARS {
        Some(format!("must be at most {MAX_NAME_CHARS} characters long"))
    } else {
        None
    }
}

/// What is wrong with a slug, if anything: 3 to 48 lower-case letters, digits and dashes, not
/// starting or ending with a dash.
pub fn slug_violation(slug: &str) -> Option<String> {
    let allowed = slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !(3..=48).contains(&slug.len()) || !allowed || slug.starts_with('-') || slug.ends_with('-') {
        Some(
            "must be 3 to 48 lower-case letters, digits and dashes, not starting or ending with \
             a dash"
                .into(),
        )
    } else {
        None
    }
}

/// A slug made from `name`: ASCII letters and digits kept (lower-cased), anything else a dash.
fn derive_slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 32 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.len() < 3 {
        format!("org-{slug}").trim_end_matches('-').to_owned()
    } else {
        slug.to_owned()
    }
}

fn slug_taken_or_database(error: sqlx::Error) -> OrgError {
    match &error {
        sqlx::Error::Database(db_error) if db_error.is_unique_violation() => OrgError::SlugTaken,
        _ => OrgError::Database(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_table_gives_owners_everything_and_members_reads() {
        let all = [
            ReadOrganization,
            UpdateOrganization,
            DeleteOrganization,
            ReadMembers,
            ManageMembers,
            ManageOwners,
            ReadInvitations,
            Invite,
            Switch,
        ];
        assert!(all.iter().all(|action| Owner.can(*action)));
        assert!(!Admin.can(ManageOwners));
        assert!(!Admin.can(DeleteOrganization));
        assert!(Admin.can(Invite));
        let member: Vec<Action> = all
            .into_iter()
            .filter(|a| OrgRole::Member.can(*a))
            .collect();
        assert_eq!(member, [ReadOrganization, ReadMembers, Switch]);
    }

    #[test]
    fn slugs_are_derived_and_checked() {
        assert_eq!(derive_slug("Acme Corp."), "acme-corp");
        assert_eq!(derive_slug("  Über Team  "), "ber-team");
        assert_eq!(derive_slug("X"), "org-x");
        assert_eq!(derive_slug("日本"), "org");
        assert!(slug_violation(&derive_slug("日本")).is_none());
        assert!(slug_violation("acme-corp").is_none());
        for bad in ["ab", "-acme", "acme-", "Acme", "ac me", &"a".repeat(49)] {
            assert!(slug_violation(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn roles_parse_and_order() {
        assert_eq!(OrgRole::parse("owner"), Some(Owner));
        assert_eq!(OrgRole::parse("staff"), None);
        assert!(Owner > Admin && Admin > OrgRole::Member);
    }
}
