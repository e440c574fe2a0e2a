//! `GET /feed/my` (from the `activities` hypertable) and `GET /feed/friends` (from the
//! Redis feeds the fan-out keeps, see [`crate::friends`]). Both newest first, with keyset cursors that stay
//! correct while new entries arrive: a cursor names the last entry seen (its time and
//! event id), and the next page starts strictly after it.

use super::page::{Cursor, Page};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::friends::Start;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use feed_core::activities::{self, ActivityRow, Range, Verbs};
use feed_core::feed::FeedEntry;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Header on `/feed/friends` answers while the feeds are being rebuilt from PostgreSQL
/// (Redis lost them): `true`, and the page may be incomplete.
pub const REBUILDING_HEADER: axum::http::HeaderName = axum::http::HeaderName::from_static("x-feed-rebuilding");

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(my_feed)).routes(routes!(friends_feed))
}

/// Paging of both feeds.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Opaque; from the previous page's `next_url`.
    cursor: Option<String>,
    /// Entries per page, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
}

/// A page of the caller's own activities.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MyFeed {
    /// Newest first.
    my_feed: Vec<FeedEntry>,
    /// The next page's path and query, or `""` on the last page.
    next_url: String,
}

/// A page of the caller's friends feed (written out by hand: the entries are stored as
/// JSON and never parsed).
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // schema only
pub struct FriendsFeed {
    /// Newest first.
    friends_feed: Vec<FeedEntry>,
    /// The next page's path and query, or `""` on the last page.
    next_url: String,
}

/// The caller's own activities (posts, likes, shares, follows, unfollows).
#[utoipa::path(get, path = "/feed/my", tag = "feed", security(("app_key" = [])), params(PageQuery),
    responses(
        (status = 200, body = MyFeed, description = "A page of the feed"),
        (status = 400, body = ErrorBody, description = "`Bad Request`, `Cursor is not valid`, `Limit must be between 1 and 200`"),
        (status = 503, body = ErrorBody, description = "The database is unavailable"),
    ))]
async fn my_feed(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MyFeed>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::bad_request("Bad Request"))?;
    let page = Page::parse(query.cursor.as_deref(), query.limit.as_deref())?;
    let after = page.after.and_then(Cursor::position);
    let mut rows = activities::authored(&state.db, user.id, Verbs::All, Range::after(after, page.limit as i64 + 1)).await?;
    let has_more = rows.len() > page.limit;
    rows.truncate(page.limit);
    let last = rows.last().filter(|_| has_more).map(|r| Cursor::at(r.time, r.event_id));
    let entries: Vec<FeedEntry> = rows.iter().map(ActivityRow::entry).collect();
    metrics::counter!("feed_reads_total", "feed" => "my").increment(1);
    Ok(Json(MyFeed { my_feed: entries, next_url: page.next_url("/feed/my", last) }))
}

/// Posts, likes and shares of the users the caller follows: from Redis (the entries the
/// fan-out pushed, merged with those of the hot authors followed), and past what Redis
/// keeps, from PostgreSQL, so the feed goes back to the followees' first activity.
#[utoipa::path(get, path = "/feed/friends", tag = "feed", security(("app_key" = [])), params(PageQuery),
    responses(
        (status = 200, body = FriendsFeed, description = "A page of the feed",
            headers(("X-Feed-Rebuilding" = String, description = "`true` while the feeds are being rebuilt (Redis lost them): the page may be incomplete"))),
        (status = 400, body = ErrorBody, description = "`Bad Request`, `Cursor is not valid`, `Limit must be between 1 and 200`"),
        (status = 503, body = ErrorBody, description = "Redis is unavailable"),
    ))]
async fn friends_feed(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::bad_request("Bad Request"))?;
    let page = Page::parse(query.cursor.as_deref(), query.limit.as_deref())?;
    let read = crate::friends::page(&state, user.id, Start::After(page.after), page.limit + 1).await?;
    let has_more = read.entries.len() > page.limit;
    let shown = &read.entries[..read.entries.len().min(page.limit)];
    let last = shown.last().filter(|_| has_more).map(|e| e.cursor);
    metrics::counter!("feed_reads_total", "feed" => "friends").increment(1);
    // The entries are already JSON: written out as they are, never parsed.
    let mut json = Vec::with_capacity(64 + shown.iter().map(|e| e.json.len() + 1).sum::<usize>());
    json.extend_from_slice(b"{\"friends_feed\":[");
    for (i, entry) in shown.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(&entry.json);
    }
    json.extend_from_slice(b"],\"next_url\":");
    serde_json::to_writer(&mut json, &page.next_url("/feed/friends", last)).map_err(|e| ApiError::internal(&e, "api"))?;
    json.push(b'}');
    let mut response = ([(header::CONTENT_TYPE, "application/json")], json).into_response();
    if read.rebuilding {
        response.headers_mut().insert(REBUILDING_HEADER, axum::http::HeaderValue::from_static("true"));
    }
    Ok(response)
}
