//! `POST /analytics` and `GET /analytics` (narrative-analytics reference): hits go
//! through the analytics topic; the writer keeps an exact hourly rollup, so a GET of
//! any hour, the current one included, is one primary-key lookup whatever the volume.

use crate::error::{ApiError, ErrorBody};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use feed_core::streams::{AnalyticsHit, HitKind};
use std::collections::HashMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(counts, record))
}

type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

fn params(query: Params) -> Result<HashMap<String, String>, ApiError> {
    query.map(|Query(p)| p).map_err(|_| ApiError::bad_request("Bad Request"))
}

/// `timestamp`: milliseconds since the epoch, from 1970 to the year 9999.
fn timestamp(params: &HashMap<String, String>) -> Result<DateTime<Utc>, ApiError> {
    let raw =
        params.get("timestamp").filter(|v| !v.is_empty()).ok_or_else(|| ApiError::invalid_field("timestamp", "timestamp is required"))?;
    raw.parse::<i64>()
        .ok()
        .filter(|ms| (0..=253_402_300_799_999).contains(ms))
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| ApiError::invalid_field("timestamp", "timestamp must be milliseconds since the epoch"))
}

/// Records one hit.
#[utoipa::path(post, path = "/analytics", operation_id = "record_hit", tag = "analytics",
    params(
        ("timestamp" = i64, Query, minimum = 0.0, maximum = 253402300799999.0,
            description = "When it happened, milliseconds since the epoch; within the accepted window (by default the last 168 hours up to 60 minutes ahead: `ANALYTICS_MAX_AGE_HOURS`, `ANALYTICS_MAX_AHEAD_MINUTES`)"),
        ("user" = String, Query, min_length = 1, max_length = 256, description = "Who; up to 256 bytes"),
        ("event" = String, Query, description = "`click` or `impression`", pattern = "^(click|impression)$"),
    ),
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, body = ErrorBody, description = "A missing or malformed parameter, named in `field`"),
        (status = 503, body = ErrorBody, description = "The broker did not acknowledge: nothing was recorded"),
    ))]
async fn record(State(state): State<AppState>, query: Params) -> Result<Response, ApiError> {
    let params = params(query)?;
    let timestamp = timestamp(&params)?;
    let window = state.analytics_window;
    if !window.contains(Utc::now(), timestamp) {
        let (age, ahead) = (window.max_age.num_hours(), window.max_ahead.num_minutes());
        let message = format!("timestamp must lie within the last {age} hours and the next {ahead} minutes");
        return Err(ApiError::invalid_field("timestamp", message));
    }
    let user = params.get("user").filter(|u| !u.trim().is_empty()).ok_or_else(|| ApiError::invalid_field("user", "user is required"))?;
    if user.len() > 256 || user.contains('\0') {
        return Err(ApiError::invalid_field("user", "user must be at most 256 bytes, without NUL"));
    }
    let event = match params.get("event").filter(|e| !e.is_empty()) {
        None => return Err(ApiError::invalid_field("event", "event is required")),
        Some(raw) => HitKind::parse(raw).ok_or_else(|| ApiError::invalid_field("event", "event must be click or impression"))?,
    };
    let hit = AnalyticsHit::new(timestamp, user.clone(), event);
    let recorded = state.record_on(&state.analytics, &hit).await?;
    Ok(recorded.respond(StatusCode::NO_CONTENT))
}

/// Exact counts for the UTC hour holding `timestamp`.
#[utoipa::path(get, path = "/analytics", operation_id = "hourly_counts", tag = "analytics",
    params(("timestamp" = i64, Query, minimum = 0.0, maximum = 253402300799999.0, description = "Any instant of the hour, milliseconds since the epoch")),
    responses(
        (status = 200, body = String, content_type = "text/plain",
            description = "`unique_users,N\nclicks,N\nimpressions,N\n`", example = "unique_users,2\nclicks,5\nimpressions,9\n"),
        (status = 400, body = ErrorBody, description = "A missing or malformed `timestamp`"),
        (status = 503, body = ErrorBody, description = "The database is unavailable"),
    ))]
async fn counts(State(state): State<AppState>, query: Params) -> Result<Response, ApiError> {
    let params = params(query)?;
    let hour = timestamp(&params)?
        .duration_trunc(TimeDelta::hours(1))
        .map_err(|_| ApiError::invalid_field("timestamp", "timestamp must be milliseconds since the epoch"))?;
    let row: Option<(i64, i64, i64)> = sqlx::query_as("SELECT unique_users, clicks, impressions FROM analytics_hourly WHERE hour = $1")
        .bind(hour)
        .fetch_optional(&state.db)
        .await?;
    let (users, clicks, impressions) = row.unwrap_or_default();
    let body = format!("unique_users,{users}\nclicks,{clicks}\nimpressions,{impressions}\n");
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}
