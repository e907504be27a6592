//! The figures of the dashboard and of `GET /api/admin/metrics`, from every module that counts
//! something: each one adds its own after the marker below.

use saaskit_core::ApiError;
use saaskit_core::admin::metrics::{self, Metric};
use saaskit_core::auth::now;
use saaskit_core::db::Database;

pub async fn collect(db: &Database) -> Result<Vec<Metric>, ApiError> {
    let now = now();
    let metrics = metrics::users(db, now).await?;
    // <<<inject:metrics>>>
    Ok(metrics)
}
