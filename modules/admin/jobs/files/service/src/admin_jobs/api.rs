//! The job queue as JSON under `/api/admin/jobs`, for staff presenting an access token or the
//! panel's session cookie: 401 without credentials, 403 when the role does not allow it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use saaskit_core::ApiError;
use saaskit_core::admin::{Permission, Staff};
use saaskit_core::admin_jobs::{self, JobAction, ListQuery};
use saaskit_core::db::Database;
use saaskit_core::jobs::store::{self, Count, JobDetail, JobPage};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/jobs", get(list))
        .route("/api/admin/jobs/counts", get(counts))
        .route("/api/admin/jobs/{id}", get(job))
        .route("/api/admin/jobs/{id}/retry", post(retry))
        .route("/api/admin/jobs/{id}/discard", post(discard))
}

/// `?state=&kind=&limit=&before=`: newest first, `next_before` for the next page.
async fn list(
    staff: Staff,
    State(db): State<Database>,
    Query(query): Query<ListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    staff.require(Permission::View)?;
    let filter = query.filter()?;
    Ok(Json(store::list(&db, &filter).await?))
}

/// `{"counts": [{"kind": "...", "state": "...", "jobs": n}, ...]}`.
#[derive(Serialize)]
struct Counts {
    counts: Vec<Count>,
}

async fn counts(staff: Staff, State(db): State<Database>) -> Result<Json<Counts>, ApiError> {
    staff.require(Permission::View)?;
    let counts = store::counts(&db).await?;
    Ok(Json(Counts { counts }))
}

async fn job(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<i64>,
) -> Result<Json<JobDetail>, ApiError> {
    staff.require(Permission::View)?;
    let job = store::detail(&db, id).await?;
    Ok(Json(job.ok_or(ApiError::NotFound("job"))?))
}

/// What an action did: `{"job": id, "status": "queued"|"discarded"}`.
#[derive(Serialize)]
struct Acted {
    job: i64,
    status: &'static str,
}

/// 202: the job waits for a worker again. 409 when it is not dead.
async fn retry(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Acted>), ApiError> {
    admin_jobs::act(&db, &staff, id, JobAction::Retry).await?;
    let acted = Acted {
        job: id,
        status: "queued",
    };
    Ok((StatusCode::ACCEPTED, Json(acted)))
}

async fn discard(
    staff: Staff,
    State(db): State<Database>,
    Path(id): Path<i64>,
) -> Result<Json<Acted>, ApiError> {
    admin_jobs::act(&db, &staff, id, JobAction::Discard).await?;
    Ok(Json(Acted {
        job: id,
        status: "discarded",
    }))
}
