//! One module per HTTP resource, each with its own `router()`.

mod activities;
mod analytics;
mod events;
mod feeds;
mod follows;
mod health;
mod me;
mod posts;

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use std::time::Instant;
use tower_http::trace::TraceLayer;

/// The whole HTTP API.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(me::router())
        .merge(posts::router())
        .merge(activities::router())
        .merge(follows::router())
        .merge(feeds::router())
        .merge(health::router())
        .merge(events::router())
        .merge(analytics::router())
        .route("/metrics", get(|| async { feed_core::metrics::render() }))
        .fallback(|| async { ApiError::not_found("Not found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .layer(middleware::from_fn(track))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Request rate and latency by route template (never the raw path: bounded labels).
async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_string();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [("method", method), ("route", route), ("status", response.status().as_u16().to_string())];
    metrics::counter!("feed_http_requests_total", &labels).increment(1);
    metrics::histogram!("feed_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}
