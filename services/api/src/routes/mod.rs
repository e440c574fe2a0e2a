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
use axum::extract::DefaultBodyLimit;
use axum::Router;
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
        .fallback(|| async { ApiError::not_found("Not found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
