//! Prometheus metrics. Every service records through the `metrics` facade into one
//! process-wide recorder; the API serves it at `GET /metrics`, the consumers on their own
//! small listener (`METRICS_ADDR`), next to `/livez`.
//!
//! Names all start with `feed_`; see the README's table.

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often the recorder drains its histograms' pending samples into their buckets.
/// Without it they pile up until `/metrics` is rendered: memory grew ~18 bytes a request
/// on a process nobody scraped.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide recorder, installed on first use, with its upkeep thread (the
/// crate spawns one only from `install`, which would also bind its own listener).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
                .expect("static buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); this one still renders.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start the metrics upkeep thread: histograms grow until scraped");
            }
            handle
        })
        .clone()
}

/// The current metrics in Prometheus text format.
pub fn render() -> String {
    handle().render()
}

/// Serves `GET /metrics`, `GET /livez` and `GET /health` (503 naming the stalled
/// partitions of this process's consumers, see [`crate::health`]) on `listener` until
/// `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, shutdown: crate::shutdown::Shutdown) -> anyhow::Result<()> {
    handle();
    let router = Router::new()
        .route("/metrics", get(|| async { render() }))
        .route("/livez", get(consumer_liveness))
        .route("/health", get(consumer_health));
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
    Ok(())
}

/// The consumers' liveness: 200 `ok` while every consumer's loop turns, 503
/// `{"status": "stuck", "stuck": [{"group", "topic", "seconds"}]}` once one has not for its
/// bound (`CONSUMER_STUCK_AFTER_MS`): a restart is what fixes that.
async fn consumer_liveness() -> axum::response::Response {
    use axum::response::IntoResponse;
    let stuck = crate::health::stuck();
    if stuck.is_empty() {
        "ok".into_response()
    } else {
        let body = serde_json::json!({"status": "stuck", "stuck": stuck});
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

/// The consumers' health: 200 `{"status": "healthy"}`, or 503 `{"status": "unhealthy",
/// "stalled": [{"group", "topic", "partition", "lag", "seconds"}]}`.
async fn consumer_health() -> axum::response::Response {
    use axum::response::IntoResponse;
    let stalled = crate::health::stalled();
    if stalled.is_empty() {
        axum::Json(serde_json::json!({"status": "healthy"})).into_response()
    } else {
        let body = serde_json::json!({"status": "unhealthy", "stalled": stalled});
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}
