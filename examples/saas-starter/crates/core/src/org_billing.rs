//! Billing per organization (module `billing/orgs`): the Stripe customer, and so its
//! subscription, belongs to an organization (`customers.org_id`), and a subscription's seats are
//! the organization's members. A single user's personal organization stands for them, so a
//! product without teams sees no difference (docs/orgs.md, "Billing").
//!
//! - the webhooks service links customers to organizations ([`webhook_handlers`]): a checkout or
//!   a customer names the organization in its metadata (`org_id`) or, for a checkout, in
//!   `client_reference_id`; without one, the paying account's personal organization pays;
//! - the api reads an organization's subscription for its members ([`of_tenant`]), and
//!   `GET /api/billing/subscription` shows the caller's active organization's ([`active_payer`]);
//! - the admin service reads any organization's ([`of_organization_for_staff`]).

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::auth::CurrentUser;
use crate::billing::{self, CheckoutSession, Payer, Subscription};
use crate::db::Database;
use crate::orgs::{self, OrgError, Scope, TenantId};
use crate::webhooks::{Event, Handler, HandlerError, Handlers};

/// An organization's billing: its subscription and its seats.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrgBilling {
    /// The subscription that matters most (a running one, else the latest); `None` when the
    /// organization has never subscribed.
    pub subscription: Option<Subscription>,
    /// The organization's members: what a per-seat price counts.
    pub seats: i64,
}

/// The billing of `tenant`, for its members.
pub async fn of_tenant(db: &Database, tenant: &TenantId) -> Result<OrgBilling, sqlx::Error> {
    read(db, tenant.as_str()).await
}

/// The billing of organization `org_id`, whoever asks: for staff tools (the admin service),
/// which check their own permissions first. An unknown organization has no subscription and no
/// seats.
pub async fn of_organization_for_staff(
    db: &Database,
    org_id: &str,
) -> Result<OrgBilling, sqlx::Error> {
    read(db, org_id).await
}

async fn read(db: &Database, org_id: &str) -> Result<OrgBilling, sqlx::Error> {
    // One transaction: the seats and the subscription of the same moment, and on PostgreSQL
    // the organization named for the row-level security of `memberships`.
    let mut tx = orgs::begin_read(db, Scope::Tenant(org_id)).await?;
    let seats: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(&mut *tx)
        .await?;
    let payer = Payer::Organization(org_id.to_owned());
    let subscription = billing::subscription_of(&mut tx, &payer).await?;
    tx.commit().await?;
    Ok(OrgBilling {
        subscription,
        seats,
    })
}

/// Who pays for `current`: the organization their access token is switched to (while they are
/// a member: a removed member's switched token is answered 404, as on org-scoped routes), else
/// their personal organization, else `account` (no personal organization: accounts created
/// with `ORGS_PERSONAL_ORGANIZATION=false` or before module `orgs` was added).
pub async fn active_payer(
    db: &Database,
    current: &CurrentUser,
    account: Payer,
) -> Result<Payer, OrgError> {
    let user_id = &current.user.id;
    if let Some(org_id) = &current.org_id {
        return match orgs::membership(db, org_id, user_id).await? {
            Some(_) => Ok(Payer::Organization(org_id.clone())),
            None => Err(OrgError::NotFound("organization")),
        };
    }
    let mut tx = orgs::begin_read(db, Scope::User(user_id)).await?;
    let personal = personal_organization(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(personal.map_or(account, Payer::Organization))
}

/// The personal organization `user_id` owns, if any (in a transaction scoped to the user).
async fn personal_organization(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT o.id FROM memberships m JOIN organizations o ON o.id = m.org_id \
         WHERE m.user_id = $1 AND m.role = 'owner' AND o.kind = 'personal' \
         ORDER BY o.created_at, o.id LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// The handlers of module `billing/orgs`; merged after `billing::webhook_handlers()`, its
/// `checkout.session.completed` handler replaces the one that links accounts only.
pub fn webhook_handlers() -> Handlers {
    Handlers::new()
        .on(&["checkout.session.completed"], OrgCheckoutCompleted)
        .on(
            &["customer.created", "customer.updated"],
            OrgCustomerChanged,
        )
}

/// Where an event's object names the organization: Stripe's `metadata`, which the product sets
/// when it creates the checkout session or the customer (`metadata[org_id]`), and the checkout's
/// `client_reference_id`, which may hold an organization's id instead of an account's.
#[derive(Deserialize)]
struct OrgHint {
    client_reference_id: Option<String>,
    /// Stripe sends `{}` or leaves it out when nothing was set.
    metadata: Option<HashMap<String, String>>,
}

impl OrgHint {
    fn org_id(&self) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|metadata| metadata.get("org_id"))
            .map(String::as_str)
    }
}

/// The account and organization a customer belongs to: the organization named (`org_id`, or
/// `reference` when it is an organization's id) with, as the account, its member named by
/// `reference` or `email`, else its oldest owner; without an organization named, the account
/// named by `reference` or `email` and its personal organization (none: billing per account).
///
/// An organization or account not found is an error, so the event is retried (the
/// organization or account may be committed a moment after the payment) and, failing that,
/// dead-lettered: recorded, to be replayed, never lost.
async fn payer_of(
    conn: &mut AnyConnection,
    org_id: Option<&str>,
    reference: Option<&str>,
    email: Option<&str>,
) -> Result<(String, Option<String>), HandlerError> {
    let named: Option<String> = match org_id.or(reference) {
        Some(candidate) => {
            sqlx::query_scalar("SELECT id FROM organizations WHERE id = $1")
                .bind(candidate)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => None,
    };
    if let Some(org) = named {
        orgs::set_scope(conn, Scope::Tenant(&org)).await?;
        let user: String = sqlx::query_scalar(
            "SELECT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 \
             ORDER BY CASE WHEN m.user_id = $2 THEN 0 WHEN u.email = $3 THEN 1 \
                 WHEN m.role = 'owner' THEN 2 ELSE 3 END, m.created_at, m.user_id LIMIT 1",
        )
        .bind(&org)
        .bind(reference.unwrap_or(""))
        .bind(email.unwrap_or(""))
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| format!("organization {org:?} has no members"))?;
        return Ok((user, Some(org)));
    }
    if let Some(org_id) = org_id {
        return Err(format!("no organization has id {org_id:?} (yet)").into());
    }
    let user = billing::find_user(conn, reference, email)
        .await?
        .ok_or_else(|| {
            format!(
                "no user has id {:?} or email {:?} (yet)",
                reference.unwrap_or_default(),
                email.unwrap_or_default()
            )
        })?;
    orgs::set_scope(conn, Scope::User(&user)).await?;
    let personal = personal_organization(conn, &user).await?;
    Ok((user, personal))
}

/// `checkout.session.completed`: links the session's customer to its organization and account.
struct OrgCheckoutCompleted;

impl Handler for OrgCheckoutCompleted {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        conn: &'a mut AnyConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let session: CheckoutSession = event.object()?;
            // A one-off payment without a customer object: there is nothing to link.
            let Some(customer) = &session.customer else {
                return Ok(());
            };
            let hint: OrgHint = event.object()?;
            let email = session.email();
            let reference = hint.client_reference_id.as_deref();
            let (user, org) = payer_of(conn, hint.org_id(), reference, email.as_deref()).await?;
            billing::link_customer(
                conn,
                event,
                customer,
                &user,
                email.as_deref(),
                org.as_deref(),
            )
            .await?;
            Ok(())
        })
    }
}

/// `customer.created|updated`: a customer the product created for an organization
/// (`metadata[org_id]`) is linked to it, whether or not a checkout follows. Customers without
/// the key are left to their checkout.
struct OrgCustomerChanged;

#[derive(Deserialize)]
struct Customer {
    id: String,
    email: Option<String>,
}

impl Handler for OrgCustomerChanged {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        conn: &'a mut AnyConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let hint: OrgHint = event.object()?;
            let Some(org_id) = hint.org_id() else {
                return Ok(());
            };
            let customer: Customer = event.object()?;
            let email = customer
                .email
                .as_deref()
                .map(|email| email.trim().to_lowercase());
            let (user, org) = payer_of(conn, Some(org_id), None, email.as_deref()).await?;
            billing::link_customer(
                conn,
                event,
                &customer.id,
                &user,
                email.as_deref(),
                org.as_deref(),
            )
            .await?;
            Ok(())
        })
    }
}
