//! `GET /` answers a fixed user as JSON: the baseline the generated api's `/api/auth/me` is
//! compared with. Listens on `BARE_ADDR` (default 127.0.0.1:8090).

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

async fn user() -> Json<Value> {
    // The same fields and sizes as a `/me` answer: a UUID v7, the benchmark's email and name,
    // and a ten-digit Unix time.
    Json(json!({
        "id": "0193b3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
        "email": "ada@example.com",
        "full_name": "Ada",
        "created_at": 1764000000,
    }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("BARE_ADDR").unwrap_or_else(|_| "127.0.0.1:8090".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, Router::new().route("/", get(user))).await
}
