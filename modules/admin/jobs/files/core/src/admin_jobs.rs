//! Job operations of the back office (module `admin/jobs`): retrying or discarding a dead job on
//! behalf of a staff member, each audited in the action's transaction, and the dashboard's
//! figure of dead jobs. Reading the queue is the store's own ([`crate::jobs::store`]).
//!
//! A retried job waits for a worker of a service that has its kind, which takes it at its next
//! poll (`JOBS_POLL_INTERVAL_MS`).

use crate::admin::metrics::Metric;
use crate::admin::{AdminError, Permission, Staff};
use crate::audit::{self, Action};
use crate::db::Database;
use crate::error::FieldErrors;
use crate::jobs::State;
use crate::jobs::store::{self, DeadAction, ListFilter};
use crate::jobs::worker::now_ms;

/// The audit log's target type of job actions.
pub const AUDIT_TARGET_TYPE: &str = "job";

/// The largest page of the job list.
pub const MAX_LIST_LIMIT: i64 = 200;

/// Why a request about jobs was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminJobsError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Query parameters are invalid, each explained by name.
    #[error("invalid fields: {0:?}")]
    Invalid(FieldErrors),
    #[error("job not found")]
    UnknownJob,
    #[error("only a dead job can be retried or discarded; this one is not dead")]
    NotDead,
    #[error("another job with this job's unique key is queued or running")]
    DuplicateKey,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The query string of the job list: `?state=&kind=&limit=&before=`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this state, e.g. `dead`.
    pub state: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// How many jobs a page has.
    pub limit: Option<i64>,
    /// The `next_before` of the previous page.
    pub before: Option<i64>,
}

impl ListQuery {
    /// The filter it asks for, or each invalid parameter explained.
    pub fn filter(&self) -> Result<ListFilter, AdminJobsError> {
        let mut fields = FieldErrors::new();
        let state = match self.state.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => {
                let state = State::parse(text);
                if state.is_none() {
                    fields.insert("state".into(), format!("must be one of {}", State::LIST));
                }
                state
            }
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            fields.insert("limit".into(), format!("must be 1 to {MAX_LIST_LIMIT}"));
        }
        if !fields.is_empty() {
            return Err(AdminJobsError::Invalid(fields));
        }
        Ok(ListFilter {
            state,
            kind: self.kind.clone().filter(|kind| !kind.is_empty()),
            before: self.before,
            limit,
        })
    }
}

/// What an operator does to a dead job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    /// Queue it again, due now, with as many attempts again as it had.
    Retry,
    /// Delete it, with its payload and errors.
    Discard,
}

impl JobAction {
    fn audit_name(self) -> &'static str {
        match self {
            Self::Retry => "job.retry",
            Self::Discard => "job.discard",
        }
    }
}

/// Applies `action` to dead job `id` on behalf of `staff` (an admin: 403 otherwise), audited
/// (`job.retry` or `job.discard`, with the job's kind) in the same transaction: a refused action
/// is not audited.
pub async fn act(
    db: &Database,
    staff: &Staff,
    id: i64,
    action: JobAction,
) -> Result<(), AdminJobsError> {
    staff.require(Permission::Manage)?;
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let outcome = match action {
        JobAction::Retry => store::retry_dead(&mut tx, id, now).await?,
        JobAction::Discard => store::discard_dead(&mut tx, id).await?,
    };
    match outcome {
        DeadAction::Done => {}
        DeadAction::Unknown => return Err(AdminJobsError::UnknownJob),
        DeadAction::NotDead => return Err(AdminJobsError::NotDead),
        DeadAction::DuplicateKey => return Err(AdminJobsError::DuplicateKey),
    }
    let details = serde_json::json!({ "kind": kind }).to_string();
    let target = id.to_string();
    let record = Action {
        action: action.audit_name(),
        target_type: AUDIT_TARGET_TYPE,
        target_id: &target,
        reason: None,
        details: Some(&details),
    };
    audit::record(&mut tx, staff.actor(), record, now / 1000).await?;
    tx.commit().await?;
    tracing::info!(
        job = id,
        action = action.audit_name(),
        actor = staff.actor().user_id,
        "job action"
    );
    Ok(())
}

/// How many jobs are dead.
pub async fn dead(db: &Database) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) AS dead FROM jobs WHERE state = 'dead'")
        .fetch_one(db.pool())
        .await
}

/// The dashboard's figure: dead jobs, linking to the panel's list of them.
pub async fn metrics(db: &Database) -> sqlx::Result<Vec<Metric>> {
    Ok(vec![
        Metric::count("jobs_dead", "Dead jobs", dead(db).await?)
            .with_link("/admin/jobs?state=dead"),
    ])
}
