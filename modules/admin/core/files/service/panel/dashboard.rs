//! The dashboard: the figures of [`crate::metrics`], each linking to its details.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use shared::admin::Permission;
use shared::admin::metrics::Metric;
use shared::auth::Auth;

use super::{Frame, PanelError, Viewer, html};

pub fn routes() -> Router<Auth> {
    Router::new().route("/admin", get(show))
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    frame: Frame,
    metrics: Vec<Metric>,
}

async fn show(State(auth): State<Auth>, viewer: Viewer) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let metrics = crate::metrics::collect(auth.db()).await?;
    Ok(html(&DashboardPage {
        frame: viewer.frame,
        metrics,
    }))
}
