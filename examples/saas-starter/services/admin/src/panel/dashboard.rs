//! The dashboard: the figures of [`crate::metrics`], each linking to its details.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use saas_starter_core::admin::Permission;
use saas_starter_core::admin::metrics::Metric;
use saas_starter_core::db::Database;

use super::{Frame, PanelError, Viewer, html};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin", get(show))
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    frame: Frame,
    metrics: Vec<Metric>,
}

async fn show(State(db): State<Database>, viewer: Viewer) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let metrics = crate::metrics::collect(&db).await?;
    Ok(html(&DashboardPage {
        frame: viewer.frame,
        metrics,
    }))
}
