//! The figures of the dashboard and of `GET /api/admin/metrics`, from every module that counts
//! something: each one adds its own after the marker below.

use shared::ApiError;
use shared::admin::metrics::{self, Metric};
use shared::auth::now;
use shared::db::Database;

pub async fn collect(db: &Database) -> Result<Vec<Metric>, ApiError> {
    let now = now();
    let metrics = metrics::users(db, now).await?;
    // <<<inject:metrics>>>
    // <<<begin:admin/billing@metrics>>>
    let metrics = [metrics, shared::admin_billing::metrics(db).await?].concat();
    // <<<end:admin/billing@metrics>>>
    // <<<begin:admin/webhooks@metrics>>>
    let metrics = [metrics, shared::admin_webhooks::metrics(db).await?].concat();
    // <<<end:admin/webhooks@metrics>>>
    Ok(metrics)
}
