//! `GET /feed/my` (from the `activities` hypertable) and `GET /feed/friends` (one Redis
//! sorted set, filled by the fan-out). Both newest first, with keyset cursors that stay
//! correct while new entries arrive: a cursor names the last entry seen (its time and
//! event id), and the next page starts strictly after it.

use super::page::{Cursor, Page};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use feed_core::activities::{self, ActivityRow, Range, Verbs};
use feed_core::feed::{feeds_complete, parse_member, FeedEntry};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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

/// A page of the caller's friends feed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FriendsFeed<'a> {
    /// Newest first; entries as stored by the fan-out, written out unparsed.
    #[schema(value_type = Vec<FeedEntry>)]
    friends_feed: Vec<&'a RawValue>,
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

/// Posts, likes and shares of the users the caller follows: one Redis read, and past
/// the newest `FEED_MAX_LEN` entries Redis keeps, one PostgreSQL query, so the feed goes
/// back to the followees' first activity.
#[utoipa::path(get, path = "/feed/friends", tag = "feed", security(("app_key" = [])), params(PageQuery),
    responses(
        (status = 200, body = FriendsFeed<'static>, description = "A page of the feed",
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
    let key = state.keys.friends(user.id);
    let mut conn = state.redis.get().await?;
    let wanted = page.limit + 1;
    // Entries strictly after the cursor: a lower score, or the same score and a smaller
    // event id (Redis orders equal scores by member, and members start with the id).
    // The generation tells whether the feeds are complete (see the fan-out's rebuild).
    let generation_key = state.keys.generation();
    let generation: Option<String>;
    let mut raw: Vec<(String, i64)> = Vec::with_capacity(wanted);
    match page.after {
        None => {
            (generation, raw) =
                redis::pipe().get(&generation_key).zrevrange_withscores(&key, 0, wanted as isize - 1).query_async(&mut *conn).await?;
        }
        Some(cursor) => {
            generation = conn.get(&generation_key).await?;
            let cursor_id = cursor.id.to_string();
            let mut offset = 0;
            loop {
                let chunk: Vec<(String, i64)> =
                    conn.zrevrangebyscore_limit_withscores(&key, cursor.micros, "-inf", offset, wanted as isize).await?;
                let fetched = chunk.len();
                raw.extend(chunk.into_iter().filter(|(member, score)| {
                    *score < cursor.micros || parse_member(member).is_some_and(|m| m.event_id < cursor_id.as_str())
                }));
                offset += fetched as isize;
                if raw.len() >= wanted || fetched < wanted {
                    break;
                }
            }
            raw.truncate(wanted);
        }
    }
    drop(conn);
    let mut entries: Vec<(Cursor, &RawValue)> = raw
        .iter()
        .filter_map(|(member, score)| {
            let member = parse_member(member)?;
            let cursor = Cursor { micros: *score, id: member.event_id.parse().ok()? };
            Some((cursor, serde_json::from_str(member.json).ok()?))
        })
        .collect();
    // Redis keeps the newest `FEED_MAX_LEN` entries; past them the page continues from
    // PostgreSQL, strictly after the last entry seen, in the same order.
    let older: Vec<(Cursor, Box<RawValue>)> = if raw.len() < wanted {
        let from = entries.last().map(|(cursor, _)| *cursor).or(page.after).and_then(Cursor::position);
        let mut db = state.db.acquire().await?;
        let rows = activities::friends(&mut db, user.id, Range::after(from, (wanted - raw.len()) as i64)).await?;
        metrics::counter!("feed_friends_pages_from_db_total").increment(1);
        rows.iter()
            .filter_map(|row| Some((Cursor::at(row.time, row.event_id), serde_json::value::to_raw_value(&row.entry()).ok()?)))
            .collect()
    } else {
        Vec::new()
    };
    entries.extend(older.iter().map(|(cursor, json)| (*cursor, json.as_ref())));
    let has_more = entries.len() > page.limit;
    entries.truncate(page.limit);
    let last = entries.last().filter(|_| has_more).map(|(cursor, _)| *cursor);
    let entries: Vec<&RawValue> = entries.into_iter().map(|(_, json)| json).collect();
    let body = FriendsFeed { friends_feed: entries, next_url: page.next_url("/feed/friends", last) };
    metrics::counter!("feed_reads_total", "feed" => "friends").increment(1);
    // The entries are already JSON: written out as they are, never re-parsed into values.
    let json = serde_json::to_string(&body).map_err(|e| ApiError::internal(&e, "api"))?;
    let mut response = ([(header::CONTENT_TYPE, "application/json")], json).into_response();
    if !feeds_complete(generation.as_deref()) {
        response.headers_mut().insert(REBUILDING_HEADER, axum::http::HeaderValue::from_static("true"));
    }
    Ok(response)
}
