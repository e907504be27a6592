//! Impersonation: a staff member with [`Permission::Impersonate`](super::Permission) acts as a
//! customer to see what they see. It needs a written reason, is never of staff, and gets one
//! access token, valid at most [`MAX_IMPERSONATION_SECS`], whose `act` claim names the staff
//! member, in a session of its own and without a refresh token; the api then refuses password,
//! email and session changes made with it. Start and end are audited.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::audit::{self, Actor};
use super::{AdminError, customers};
use crate::auth::{self, Auth, MAX_IMPERSONATION_SECS};
use crate::db::Database;

/// The longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// `{"reason": "..."}`, the body (or form) of a start.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ImpersonationRequest, example = json!({"reason": "ticket #4521: the customer cannot see their invoices"}))]
pub struct Request {
    pub reason: String,
}

/// An impersonation in force or past.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Impersonation {
    pub id: String,
    pub staff_id: String,
    pub user_id: String,
    pub user_email: String,
    pub reason: String,
    pub started_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

/// A started impersonation and its one access token, shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ImpersonationStarted)]
pub struct Started {
    pub impersonation: Impersonation,
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

/// Why a reason is refused, if it is.
pub fn reason_violation(reason: &str) -> Option<&'static str> {
    let reason = reason.trim();
    if reason.is_empty() {
        Some("is required: say why you act as this customer")
    } else if reason.chars().count() > MAX_REASON_CHARS {
        Some("must be at most 500 characters long")
    } else {
        None
    }
}

/// Starts an impersonation of customer `user_id` by `actor` (whose permission the caller has
/// checked). 422 without a reason, 403 for a staff account, 409 for a disabled one.
pub async fn start(
    db: &Database,
    auth: &Auth,
    actor: Actor<'_>,
    user_id: &str,
    reason: &str,
) -> Result<Started, AdminError> {
    if let Some(problem) = reason_violation(reason) {
        return Err(AdminError::invalid_field("reason", problem));
    }
    let reason = reason.trim();
    let customer = customers::find(db, user_id).await?;
    if customer.user.role.is_staff() {
        return Err(AdminError::StaffAccount);
    }
    if customer.disabled_at.is_some() {
        return Err(AdminError::AccountDisabled);
    }
    let token = auth
        .impersonate(
            &customer.user,
            auth::Actor {
                sub: actor.user_id.to_owned(),
                email: actor.email.to_owned(),
            },
            MAX_IMPERSONATION_SECS,
        )
        .await?;
    let now = auth::now();
    let impersonation = Impersonation {
        id: uuid::Uuid::now_v7().to_string(),
        staff_id: actor.user_id.to_owned(),
        user_id: customer.user.id.clone(),
        user_email: customer.user.email.clone(),
        reason: reason.to_owned(),
        started_at: now,
        expires_at: now + token.expires_in,
        ended_at: None,
    };
    if let Err(error) = record_start(db, actor, &impersonation, &token.session_id).await {
        // Without its record the impersonation must not run: end its session.
        end_session(db, &token.session_id, now).await?;
        return Err(error.into());
    }
    Ok(Started {
        impersonation,
        access_token: token.access_token,
        token_type: token.token_type,
        expires_in: token.expires_in,
    })
}

async fn record_start(
    db: &Database,
    actor: Actor<'_>,
    impersonation: &Impersonation,
    session_id: &str,
) -> sqlx::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO impersonations (id, staff_id, user_id, session_id, reason, started_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&impersonation.id)
    .bind(&impersonation.staff_id)
    .bind(&impersonation.user_id)
    .bind(session_id)
    .bind(&impersonation.reason)
    .bind(impersonation.started_at)
    .bind(impersonation.expires_at)
    .execute(&mut *tx)
    .await?;
    let details = format!(r#"{{"impersonation_id":"{}"}}"#, impersonation.id);
    let action = audit::Action {
        action: "impersonation.start",
        target_type: "user",
        target_id: &impersonation.user_id,
        reason: Some(&impersonation.reason),
        details: Some(&details),
    };
    audit::record(&mut tx, actor, action, impersonation.started_at).await?;
    tx.commit().await
}

/// The impersonations `staff_id` has in force, newest first: the panel's banner.
pub async fn active(db: &Database, staff_id: &str, now: i64) -> sqlx::Result<Vec<Impersonation>> {
    let rows = sqlx::query(
        "SELECT impersonations.id, impersonations.staff_id, impersonations.user_id, \
         users.email AS user_email, impersonations.reason, impersonations.started_at, impersonations.expires_at, \
         impersonations.ended_at FROM impersonations \
         JOIN users ON users.id = impersonations.user_id \
         WHERE impersonations.staff_id = $1 AND impersonations.ended_at IS NULL \
         AND impersonations.expires_at > $2 ORDER BY impersonations.started_at DESC",
    )
    .bind(staff_id)
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Impersonation {
                id: row.try_get("id")?,
                staff_id: row.try_get("staff_id")?,
                user_id: row.try_get("user_id")?,
                user_email: row.try_get("user_email")?,
                reason: row.try_get("reason")?,
                started_at: row.try_get("started_at")?,
                expires_at: row.try_get("expires_at")?,
                ended_at: row.try_get("ended_at")?,
            })
        })
        .collect()
}

/// Ends impersonation `id` of `actor`'s (or of anyone's, when `any_staff`: admins may end
/// others'): its session, and so its token, stop working at once. 404 when `actor` has no such
/// impersonation in force.
pub async fn end(
    db: &Database,
    actor: Actor<'_>,
    id: &str,
    any_staff: bool,
    now: i64,
) -> Result<(), AdminError> {
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "UPDATE impersonations SET ended_at = $1, ended_by = $2 \
         WHERE id = $3 AND ended_at IS NULL AND expires_at > $1 AND ($4 OR staff_id = $2) \
         RETURNING session_id, user_id",
    )
    .bind(now)
    .bind(actor.user_id)
    .bind(id)
    .bind(any_staff)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(AdminError::UnknownImpersonation);
    };
    let session_id: String = row.try_get("session_id")?;
    let user_id: String = row.try_get("user_id")?;
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(&session_id)
        .execute(&mut *tx)
        .await?;
    let details = format!(r#"{{"impersonation_id":"{id}"}}"#);
    let action = audit::Action {
        action: "impersonation.end",
        target_type: "user",
        target_id: &user_id,
        reason: None,
        details: Some(&details),
    };
    audit::record(&mut tx, actor, action, now).await?;
    tx.commit().await?;
    Ok(())
}

async fn end_session(db: &Database, session_id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2")
        .bind(now)
        .bind(session_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_required_and_bounded() {
        assert!(reason_violation("  ").is_some());
        assert!(reason_violation(&"x".repeat(MAX_REASON_CHARS + 1)).is_some());
        assert_eq!(reason_violation("ticket #4711: invoice looks wrong"), None);
    }
}
