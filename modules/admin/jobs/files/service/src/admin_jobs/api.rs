//! The job queue as JSON under `/api/admin/jobs`, for staff presenting an access token or the
//! panel's session cookie: 401 without credentials, 403 when the role does not allow it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use saaskit_core::ApiError;
use saaskit_core::admin::{Permission, Staff};
use saaskit_core::admin_jobs::{self, JobAction, ListQuery};
use saaskit_core::db::Database;
use saaskit_core::http::openapi::ErrorBody;
use saaskit_core::http::{Path, Query};
use saaskit_core::jobs::store::{self, Count, JobDetail, JobPage};

use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(counts))
        .routes(routes!(job))
        .routes(routes!(retry))
        .routes(routes!(discard))
}

/// `?state=&kind=&limit=&before=`: newest first, `next_before` for the next page.
#[utoipa::path(get, path = "/api/admin/jobs", tag = "jobs", operation_id = "list_jobs",
    security(("bearer" = []), ("staff_session" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "`bad_request`: a parameter is not of its type", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `state`, `limit` or `before` is invalid", body = ErrorBody),
    ),
)]
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
#[derive(Serialize, ToSchema)]
struct Counts {
    counts: Vec<Count>,
}

/// How many jobs of each kind are in each state.
#[utoipa::path(get, path = "/api/admin/jobs/counts", tag = "jobs",
    security(("bearer" = []), ("staff_session" = [])),
    responses(
        (status = 200, description = "The counts", body = Counts),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
    ),
)]
async fn counts(staff: Staff, State(db): State<Database>) -> Result<Json<Counts>, ApiError> {
    staff.require(Permission::View)?;
    let counts = store::counts(&db).await?;
    Ok(Json(Counts { counts }))
}

/// A job with its payload and the errors of its attempts.
#[utoipa::path(get, path = "/api/admin/jobs/{id}", tag = "jobs",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = JobDetail),
        (status = 400, description = "`bad_request`: the id is not of its type", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not view (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job", body = ErrorBody),
    ),
)]
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
#[derive(Serialize, ToSchema)]
struct Acted {
    job: i64,
    status: &'static str,
}

/// 202: the job waits for a worker again. 409 when it is not dead.
#[utoipa::path(post, path = "/api/admin/jobs/{id}/retry", tag = "jobs",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 202, description = "Queued again", body = Acted),
        (status = 400, description = "`bad_request`: the id is not of its type", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job", body = ErrorBody),
        (status = 409, description = "`conflict`: the job is not dead", body = ErrorBody),
    ),
)]
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

/// Discards a dead job.
#[utoipa::path(post, path = "/api/admin/jobs/{id}/discard", tag = "jobs",
    security(("bearer" = []), ("staff_session" = [])),
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Discarded", body = Acted),
        (status = 400, description = "`bad_request`: the id is not of its type", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no staff token nor staff session cookie", body = ErrorBody),
        (status = 403, description = "`forbidden`: the role may not manage (or a cross-site cookie); `staff_token_required`: an api access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such job", body = ErrorBody),
        (status = 409, description = "`conflict`: the job is not dead", body = ErrorBody),
    ),
)]
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
