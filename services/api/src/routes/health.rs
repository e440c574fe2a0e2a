//! `GET /health`: 200 `{"status": "healthy"}` when PostgreSQL, Redis and the broker
//! answer; 503 `{"status": "unhealthy", "failing": [...]}` naming the ones that do not.
//! Each probe is bounded by a short timeout so a load balancer's check never hangs.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rdkafka::producer::Producer;
use serde::Serialize;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(live)).routes(routes!(ready))
}

/// Whether the API's dependencies answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `healthy` or `unhealthy`.
    #[schema(example = "healthy")]
    status: &'static str,
    /// When unhealthy: which of `postgres`, `redis`, `kafka` did not answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failing: Vec<&'static str>,
}

/// Liveness: the process serves HTTP, nothing else is checked (a restart would not
/// fix a dependency). Also the benchmark's trivial-route ceiling.
#[utoipa::path(get, path = "/livez", operation_id = "livez", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain", description = "`ok`")))]
async fn live() -> &'static str {
    "ok"
}

/// Readiness: the process takes traffic until it was told to stop. Nothing outside the
/// process is asked: a Redis blip or a broker's rolling restart would take every replica
/// out of the load balancer at once, and the API answers its own 503 for the one thing
/// it cannot do meanwhile.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses(
        (status = 200, body = String, content_type = "text/plain", description = "`ok`"),
        (status = 503, body = String, content_type = "text/plain", description = "`draining`: shutting down"),
    ))]
async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.draining.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (StatusCode::OK, "ok")
    }
}

/// Whether PostgreSQL, Redis and the broker each answer within 2 s: for dashboards and
/// people, not for probes (see [`ready`]).
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, body = Health, description = "`{\"status\": \"healthy\"}`"),
        (status = 503, body = Health, description = "`unhealthy`, naming what failed"),
    ))]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let postgres = async { sqlx::query("SELECT 1").execute(&state.db).await.is_ok() };
    let redis = async { redis::cmd("PING").query_async::<String>(&mut state.redis.clone()).await.is_ok() };
    let producer = state.feed.publisher().producer().clone();
    let kafka = async move {
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, PROBE_TIMEOUT).is_ok()).await.unwrap_or(false)
    };
    let (postgres, redis, kafka) = tokio::join!(
        async { tokio::time::timeout(PROBE_TIMEOUT, postgres).await.unwrap_or(false) },
        async { tokio::time::timeout(PROBE_TIMEOUT, redis).await.unwrap_or(false) },
        kafka,
    );
    let failing: Vec<&str> =
        [("postgres", postgres), ("redis", redis), ("kafka", kafka)].into_iter().filter(|(_, ok)| !ok).map(|(name, _)| name).collect();
    if failing.is_empty() {
        (StatusCode::OK, Json(Health { status: "healthy", failing }))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "unhealthy", failing }))
    }
}
