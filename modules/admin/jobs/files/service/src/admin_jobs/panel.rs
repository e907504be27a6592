//! The panel's job pages: the queue (`/admin/jobs`: counts by kind and state, then the jobs,
//! newest first, filtered by state and kind) and a job's page (`/admin/jobs/{id}`: payload,
//! errors of its attempts), with the retry and discard forms of a dead job for admins.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use saaskit_core::ApiError;
use saaskit_core::admin::Permission;
use saaskit_core::admin_jobs::{self, JobAction, ListQuery};
use saaskit_core::db::Database;
use saaskit_core::jobs::State as JobState;
use saaskit_core::jobs::store::{self, JobSummary};

use crate::panel::{Frame, NoFields, PanelError, PanelForm, Viewer, done, html, when};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/jobs", get(list))
        .route("/admin/jobs/{id}", get(show))
        .route("/admin/jobs/{id}/retry", post(retry))
        .route("/admin/jobs/{id}/discard", post(discard))
}

/// A state of the filter's list.
struct StateOption {
    value: &'static str,
    selected: bool,
}

/// A kind's jobs in each state, in the order of [`JobState::ALL`].
struct CountRow {
    kind: String,
    by_state: Vec<i64>,
}

/// A job as the list and its page show it.
struct JobRow {
    id: i64,
    href: String,
    kind: String,
    state: String,
    dead: bool,
    attempts: i64,
    max_attempts: i64,
    created: String,
    due: String,
    finished: String,
    worker: String,
    unique_key: String,
    last_error: String,
}

impl From<&JobSummary> for JobRow {
    fn from(job: &JobSummary) -> Self {
        Self {
            id: job.id,
            href: format!("/admin/jobs/{}", job.id),
            kind: job.kind.clone(),
            state: job.state.clone(),
            dead: job.state == JobState::Dead.as_str(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            created: when(job.created_at_ms / 1000),
            due: when(job.run_at_ms / 1000),
            finished: job
                .finished_at_ms
                .map(|at| when(at / 1000))
                .unwrap_or_default(),
            worker: job.worker.clone().unwrap_or_default(),
            unique_key: job.unique_key.clone().unwrap_or_default(),
            last_error: job.last_error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct ListPage {
    frame: Frame,
    states: Vec<StateOption>,
    kind: String,
    counts: Vec<CountRow>,
    jobs: Vec<JobRow>,
    /// The first page, when this one is not.
    newest: Option<String>,
    next: Option<String>,
}

async fn list(
    State(db): State<Database>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let filter = query.filter()?;
    let page = store::list(&db, &filter).await?;
    let mut counts: Vec<CountRow> = Vec::new();
    for count in store::counts(&db).await? {
        if counts.last().is_none_or(|row| row.kind != count.kind) {
            counts.push(CountRow {
                kind: count.kind.clone(),
                by_state: vec![0; JobState::ALL.len()],
            });
        }
        let position = JobState::ALL
            .iter()
            .position(|state| state.as_str() == count.state);
        if let (Some(row), Some(position)) = (counts.last_mut(), position) {
            row.by_state[position] = count.jobs;
        }
    }
    let kind = filter.kind.clone().unwrap_or_default();
    let link = |before: Option<i64>| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(state) = filter.state {
            pairs.push(("state", state.as_str().to_owned()));
        }
        if !kind.is_empty() {
            pairs.push(("kind", kind.clone()));
        }
        if let Some(before) = before {
            pairs.push(("before", before.to_string()));
        }
        let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
        if query.is_empty() {
            "/admin/jobs".to_owned()
        } else {
            format!("/admin/jobs?{query}")
        }
    };
    Ok(html(&ListPage {
        states: JobState::ALL
            .iter()
            .map(|state| StateOption {
                value: state.as_str(),
                selected: filter.state == Some(*state),
            })
            .collect(),
        counts,
        jobs: page.jobs.iter().map(JobRow::from).collect(),
        newest: filter.before.is_some().then(|| link(None)),
        next: page.next_before.map(|before| link(Some(before))),
        kind,
        frame: viewer.frame,
    }))
}

/// A failed attempt as the job's page shows it.
struct ErrorRow {
    attempt: i64,
    at: String,
    worker: String,
    error: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    frame: Frame,
    job: JobRow,
    errors: Vec<ErrorRow>,
    /// The payload, indented.
    payload: String,
    may_manage: bool,
}

async fn show(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let job = store::detail(&db, id)
        .await?
        .ok_or(PanelError(ApiError::NotFound("job")))?;
    Ok(html(&JobPage {
        job: JobRow::from(&job.summary),
        errors: job
            .errors
            .into_iter()
            .map(|error| ErrorRow {
                attempt: error.attempt,
                at: when(error.at_ms / 1000),
                worker: error.worker,
                error: error.error,
            })
            .collect(),
        payload: serde_json::to_string_pretty(&job.payload).unwrap_or_default(),
        may_manage: viewer.staff.may(Permission::Manage),
        frame: viewer.frame,
    }))
}

async fn retry(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<i64>,
    PanelForm(NoFields {}): PanelForm<NoFields>,
) -> Result<Response, PanelError> {
    admin_jobs::act(&db, &viewer.staff, id, JobAction::Retry).await?;
    Ok(done(&format!("/admin/jobs/{id}"), "queued").into_response())
}

async fn discard(
    State(db): State<Database>,
    viewer: Viewer,
    Path(id): Path<i64>,
    PanelForm(NoFields {}): PanelForm<NoFields>,
) -> Result<Response, PanelError> {
    admin_jobs::act(&db, &viewer.staff, id, JobAction::Discard).await?;
    // The job is gone: back to the dead ones that are left.
    Ok(Redirect::to("/admin/jobs?state=dead&notice=discarded").into_response())
}
