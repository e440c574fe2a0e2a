//! `GET /health`: 200 `{"status": "healthy"}` when PostgreSQL and Redis answer, 503
//! naming the failing dependency otherwise. (The broker is not probed: writes report its
//! absence themselves with 503, and reads do not need it.)

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut failing = Vec::new();
    if sqlx::query("SELECT 1").execute(&state.db).await.is_err() {
        failing.push("postgres");
    }
    let redis_ok = match state.redis.get().await {
        Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut *conn).await.is_ok(),
        Err(_) => false,
    };
    if !redis_ok {
        failing.push("redis");
    }
    if failing.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "healthy" })))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unhealthy", "failing": failing })))
    }
}
