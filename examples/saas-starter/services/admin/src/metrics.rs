//! The figures of the dashboard and of `GET /api/admin/metrics`, from every module that counts
//! something: each one adds its own after the marker below.

use saas_starter_core::ApiError;
use saas_starter_core::admin::metrics::{self, Metric};
use saas_starter_core::auth::now;
use saas_starter_core::db::Database;

pub async fn collect(db: &Database) -> Result<Vec<Metric>, ApiError> {
    let now = now();
    let metrics = metrics::users(db, now).await?;
    // <<<inject:metrics>>>
    // <<<begin:admin/billing@metrics>>>
    let billing_metrics = saas_starter_core::admin_billing::metrics(db).await?;
    let metrics = [metrics, billing_metrics].concat();
    // <<<end:admin/billing@metrics>>>
    // <<<begin:admin/jobs@metrics>>>
    let jobs_metrics = saas_starter_core::admin_jobs::metrics(db).await?;
    let metrics = [metrics, jobs_metrics].concat();
    // <<<end:admin/jobs@metrics>>>
    // <<<begin:admin/webhooks@metrics>>>
    let webhooks_metrics = saas_starter_core::admin_webhooks::metrics(db).await?;
    let metrics = [metrics, webhooks_metrics].concat();
    // <<<end:admin/webhooks@metrics>>>
    Ok(metrics)
}
