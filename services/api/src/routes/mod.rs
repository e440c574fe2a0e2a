//! One module per HTTP resource, each with its own `router()`. Routes are registered
//! through `utoipa_axum`, which takes each path and method from the handler's
//! `#[utoipa::path]`: a route cannot exist without its OpenAPI description.

mod activities;
mod analytics;
mod events;
mod feedme;
mod feeds;
pub use feeds::REBUILDING_HEADER;
mod follows;
mod health;
mod me;
pub mod page;
mod posts;

use crate::error::{ApiError, FeedMeError};
use crate::AppState;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use bytes::Bytes;
use std::time::Instant;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every route, and the OpenAPI document describing them.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .merge(me::router())
        .merge(posts::router())
        .merge(activities::router())
        .merge(follows::router())
        .merge(feeds::router())
        .merge(feedme::router())
        .merge(events::router())
        .merge(analytics::router())
        .merge(health::router())
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .split_for_parts();
    crate::openapi::complete(&mut openapi);
    utoipa::Modify::modify(&feedme::FeedMeDocs, &mut openapi);
    (router, openapi)
}

/// The OpenAPI document as JSON, as served at `/openapi.json` and checked in as
/// `docs/openapi.json`.
pub fn openapi_document() -> String {
    crate::openapi::render(&api().1)
}

/// The whole HTTP API.
pub fn router(
    state: AppState,
    max_body_bytes: usize,
    body_read_timeout: std::time::Duration,
    write_deadline: std::time::Duration,
) -> Router {
    let (router, openapi) = api();
    let document = OpenApiJson(Bytes::from(crate::openapi::render(&openapi)));
    router
        .layer(Extension(document))
        .fallback(|| async { ApiError::NotFound("Not found".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(well_formed_query))
        .layer(middleware::from_fn_with_state(state.clone(), crate::shedding::rate_limit))
        .layer(middleware::from_fn(track))
        // Outside the rate limits, so the deadline counts from the request's arrival.
        .layer(middleware::from_fn_with_state(write_deadline, crate::deadline::scope))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // A client that stops sending its body mid-way is cut off, not waited for.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_read_timeout))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Prometheus metrics of this API instance.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain", description = "Prometheus text format")))]
async fn metrics(State(state): State<AppState>) -> String {
    crate::lag::record(&state).await;
    feed_core::metrics::render()
}

/// The OpenAPI document as JSON, rendered once when the router is built.
#[derive(Clone)]
struct OpenApiJson(Bytes);

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, body = Object, description = "OpenAPI 3.1")))]
async fn openapi_json(Extension(OpenApiJson(json)): Extension<OpenApiJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
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

/// Refuses, on every route, a query string whose parameters are not valid UTF-8 once
/// percent-decoded (they would be stored with U+FFFD in their place) or that names a
/// parameter twice (which one would win?).
async fn well_formed_query(request: Request, next: Next) -> Response {
    match request.uri().query().map(query_problem) {
        Some(Some(message)) if feedme::serves(request.uri().path()) => FeedMeError(ApiError::bad_request(message)).into_response(),
        Some(Some(message)) => ApiError::bad_request(message).into_response(),
        _ => next.run(request).await,
    }
}

/// What is wrong with `query`, if anything.
fn query_problem(query: &str) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |raw: &str| percent_encoding::percent_decode_str(&raw.replace('+', " ")).decode_utf8().map(|s| s.into_owned());
        let (Ok(name), Ok(_)) = (decode(name), decode(value)) else {
            return Some("Query string is not valid UTF-8".to_string());
        };
        if !seen.insert(name.clone()) {
            return Some(format!("Query parameter {name} is given more than once"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::query_problem;

    #[test]
    fn query_strings_must_be_utf8_without_repeated_parameters() {
        assert_eq!(query_problem("a=1&b=%C3%A9&c"), None);
        assert_eq!(query_problem("message=%FF").as_deref(), Some("Query string is not valid UTF-8"));
        assert_eq!(query_problem("%FF=1").as_deref(), Some("Query string is not valid UTF-8"));
        assert_eq!(query_problem("timestamp=1&timestamp=2").as_deref(), Some("Query parameter timestamp is given more than once"));
        assert_eq!(query_problem("t%69mestamp=1&timestamp=2").as_deref(), Some("Query parameter timestamp is given more than once"));
    }

    /// `docs/openapi.json` is what downstream teams read; it must be this document.
    /// `UPDATE_OPENAPI=1 cargo test -p api openapi` rewrites it.
    #[test]
    fn openapi_checked_in_copy_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let generated = super::openapi_document() + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(committed == generated, "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p api openapi` and commit it");
    }

    #[test]
    fn openapi_documents_every_route_with_its_errors() {
        let doc = super::api().1;
        let paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        for path in [
            "/me",
            "/post",
            "/activity",
            "/follow",
            "/unfollow",
            "/feed/my",
            "/feed/friends",
            "/events",
            "/analytics",
            "/health",
            "/livez",
            "/readyz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
        let me = doc.paths.paths["/me"].get.as_ref().unwrap();
        assert!(me.responses.responses.contains_key("401"));
        let post = doc.paths.paths["/post"].post.as_ref().unwrap();
        let utoipa::openapi::RefOr::T(ok) = &post.responses.responses["200"] else { panic!("inline response") };
        assert!(ok.headers.contains_key("X-Event-Id"));
        let utoipa::openapi::RefOr::T(bad) = &post.responses.responses["400"] else { panic!("inline response") };
        assert!(bad.description.contains("Key is missing"));
        assert!(bad.description.contains("Must be json request"));
        assert!(post.responses.responses.contains_key("413"));
    }
}
