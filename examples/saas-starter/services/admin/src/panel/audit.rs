//! The audit log: every staff action, newest first, filtered by actor, action or target, and
//! the same selection as CSV.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;

use saas_starter_core::admin::Permission;
use saas_starter_core::admin::audit::{self, Filter};
use saas_starter_core::db::Database;

use super::customers::{EntryRow, page_links};
use super::{Frame, PanelError, Viewer, html};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/audit", get(list))
        .route("/admin/audit.csv", get(export))
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    frame: Frame,
    actor: String,
    action: String,
    target: String,
    entries: Vec<EntryRow>,
    csv: String,
    previous: Option<String>,
    next: Option<String>,
}

async fn list(
    State(db): State<Database>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let filter = filter.normalized()?;
    let page = audit::list(&db, &filter).await?;
    let fields = [
        ("actor", filter.actor.clone().unwrap_or_default()),
        ("action", filter.action.clone().unwrap_or_default()),
        ("target", filter.target.clone().unwrap_or_default()),
    ];
    let query = |extra: Option<u32>| {
        let mut pairs: Vec<(&str, String)> = fields
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (*name, value.clone()))
            .collect();
        if let Some(page) = extra {
            pairs.push(("page", page.to_string()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    };
    let (previous, next) = page_links(&page, |page| format!("/admin/audit?{}", query(Some(page))));
    let csv = format!("/admin/audit.csv?{}", query(None));
    let [actor, action, target] = fields.map(|(_, value)| value);
    Ok(html(&AuditPage {
        frame: viewer.frame,
        csv,
        entries: page.items.into_iter().map(EntryRow::from).collect(),
        actor,
        action,
        target,
        previous,
        next,
    }))
}

/// Every entry the filter selects (pages ignored), oldest first, as a CSV download.
async fn export(
    State(db): State<Database>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let csv = audit::csv(&db, &filter.normalized()?).await?;
    Ok(crate::admin_api::csv_download(csv))
}
