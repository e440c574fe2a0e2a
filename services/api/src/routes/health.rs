//! `GET /health`: 200 `{"status": "healthy"}` when PostgreSQL, Redis and the broker
//! answer; 503 `{"status": "unhealthy", "failing": [...]}` naming the ones that do not.
//! Each probe is bounded by a short timeout so a load balancer's check never hangs.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use rdkafka::producer::Producer;
use serde_json::{json, Value};
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/livez", get(live))
}

/// Liveness: the process serves HTTP, nothing else is checked (a restart would not
/// fix a dependency). Also the benchmark's trivial-route ceiling.
async fn live() -> &'static str {
    "ok"
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let postgres = async { sqlx::query("SELECT 1").execute(&state.db).await.is_ok() };
    let redis = async {
        match state.redis.get().await {
            Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut *conn).await.is_ok(),
            Err(_) => false,
        }
    };
    let producer = state.publisher.producer().clone();
    let kafka = async move {
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, PROBE_TIMEOUT).is_ok())
            .await
            .unwrap_or(false)
    };
    let (postgres, redis, kafka) = tokio::join!(
        async { tokio::time::timeout(PROBE_TIMEOUT, postgres).await.unwrap_or(false) },
        async { tokio::time::timeout(PROBE_TIMEOUT, redis).await.unwrap_or(false) },
        kafka,
    );
    let failing: Vec<&str> = [("postgres", postgres), ("redis", redis), ("kafka", kafka)]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
    if failing.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "healthy" })))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unhealthy", "failing": failing })))
    }
}
