//! feed-me's API (`../shared/reference/feed-me.md`), behind app keys:
//! - `POST /activity` with a `target` records a free-verb activity (see
//!   [`record_activity`]; without one it is the reference's like/share);
//! - `GET /feed/<username>`: the user's activities, readable by any authenticated user;
//! - `GET /feed/<username>/friends`: the activities of whom the user follows, only for
//!   the user themself;
//! - `POST /feed/<username>` with `{"follow": name}` or `{"unfollow": name}`, only for
//!   the user themself.
//!
//! Feeds list activities, never follows, newest first, [`PAGE_SIZE`] per `?page=N`.
//! Errors answer feed-me's `{"error": "..."}` with the matching status.

use crate::auth::AuthUser;
use crate::domain::{fits, Username, MAX_SHORT_TEXT};
use crate::error::{ApiError, FeedMeError, FeedMeErrorBody};
use crate::friends::Start;
use crate::json::JsonObject;
use crate::routes::follows::is_following;
use crate::users::find_by_name;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use feed_core::activities::{self, ActivityRow, Range, Verbs};
use feed_core::event::{Event, EventType, UserRef};
use feed_core::feed::FeedEntry;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{OneOfBuilder, Schema};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::Modify;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(user_feed, change_follows)).routes(routes!(friends_feed))
}

/// Whether `path` is one of feed-me's routes (`/feed/<username>[/friends]`), whose
/// errors answer in feed-me's shape even when a layer before the handler refuses them.
pub(super) fn serves(path: &str) -> bool {
    match path.strip_prefix("/feed/").map(|rest| rest.strip_suffix("/friends").unwrap_or(rest)) {
        Some(user) => !user.is_empty() && !user.contains('/') && !matches!(path, "/feed/my" | "/feed/friends"),
        None => false,
    }
}

/// Entries per page.
pub const PAGE_SIZE: usize = 20;

/// Longest free verb.
const MAX_VERB: usize = 32;

/// A free-verb activity, as feed-me's `POST /activity` takes it. Documents the body,
/// which `record_activity` parses by hand.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FreeActivity {
    /// Who did it: the key's user (the default); anyone else is refused (403).
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    actor: Option<String>,
    /// Any word of lowercase letters (`punched`, `cheered`), but `follow` and
    /// `unfollow`: following goes through `POST /feed/<username>`.
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z]+$", example = "punched")]
    verb: String,
    /// Free text (`"null"` is the string "null"); need not name anything.
    #[schema(max_length = 256, example = "null")]
    object: Option<String>,
    /// An existing user.
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_.-]+$", example = "niko")]
    target: String,
}

/// An activity as feed-me shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FeedMeEntry {
    /// Who did it.
    actor: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SS`.
    #[schema(example = "2019-02-08T08:07:19")]
    datetime: String,
    /// The free-text object, `post:<id>` / `photo:<id>` for the reference's activities,
    /// or null.
    object: Option<String>,
    /// Whom it concerns, or `""`.
    target: String,
    /// What was done.
    verb: String,
}

/// feed-me's time format.
fn datetime(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S").to_string()
}

impl FeedMeEntry {
    fn from_row(row: &ActivityRow) -> Self {
        Self::new(row.entry(), row.time)
    }

    /// From a feed entry; its time is the entry's (RFC 3339) time.
    fn from_entry(entry: FeedEntry) -> Option<Self> {
        let time = DateTime::parse_from_rfc3339(&entry.time).ok()?.with_timezone(&Utc);
        Some(Self::new(entry, time))
    }

    fn new(entry: FeedEntry, time: DateTime<Utc>) -> Self {
        let object = entry.object.or_else(|| Some(format!("{}:{}", entry.object_type?, entry.object_id?)));
        Self { actor: entry.actor_name, datetime: datetime(time), object, target: entry.target_name.unwrap_or_default(), verb: entry.verb }
    }
}

/// Records a free-verb activity for `user`: `POST /activity` with a body naming a
/// `target` (or an `actor`). Errors are in feed-me's shape.
pub(super) async fn record_activity(state: AppState, user: AuthUser, body: JsonObject) -> Result<Response, ApiError> {
    let text = |field: &'static str| match body.0.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid_field(field, format!("{field} must be a string"))),
    };
    if let Some(actor) = text("actor")? {
        if actor != user.name {
            return Err(ApiError::Forbidden("You can only record your own activities: actor must be your user or absent".into()));
        }
    }
    let verb = text("verb")?.unwrap_or_default();
    if verb.is_empty() || verb.len() > MAX_VERB || !verb.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ApiError::invalid_field("verb", format!("verb must be 1 to {MAX_VERB} lowercase letters")));
    }
    if matches!(verb, "follow" | "unfollow") {
        return Err(ApiError::invalid_field("verb", "Follow and unfollow through POST /feed/<username>"));
    }
    let object = text("object")?;
    if object.is_some_and(|o| !fits(o, MAX_SHORT_TEXT)) {
        return Err(ApiError::invalid_field("object", format!("object must be at most {MAX_SHORT_TEXT} characters")));
    }
    let target = text("target")?.ok_or_else(|| ApiError::invalid_field("target", "target is missing"))?;
    let target = known_user(&state, target).await?.ok_or_else(|| ApiError::invalid_field("target", "target is not a known user"))?;
    let payload = serde_json::json!({ "verb": verb, "object": object });
    let event = Event::new(EventType::Activity, user.user_ref(), None, Some(target), payload);
    let entry = FeedEntry::from_event(&event).ok_or_else(|| ApiError::internal(&"a free-verb activity has a verb", "api"))?;
    let recorded = state.record(&event).await?;
    Ok(recorded.respond(Json(FeedMeEntry::new(entry, event.time))))
}

/// The user named `name`, if any.
async fn known_user(state: &AppState, name: &str) -> Result<Option<UserRef>, ApiError> {
    match Username::parse(name) {
        Some(name) => find_by_name(&state.db, name.as_str()).await,
        None => Ok(None),
    }
}

/// `?page=N`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageNumber {
    /// From 1 (the default).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100000)]
    page: Option<String>,
}

impl PageNumber {
    fn parse(query: Result<Query<PageNumber>, axum::extract::rejection::QueryRejection>) -> Result<usize, ApiError> {
        let Query(query) = query.map_err(|_| ApiError::bad_request("Bad Request"))?;
        match query.page.as_deref() {
            None => Ok(1),
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| ApiError::invalid_field("page", "page must be a whole number from 1 to 100000")),
        }
    }
}

/// A page of a feed-me feed; `next_url` and `previous_url` only where those pages exist.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FeedMePage {
    /// The user's own activities (`GET /feed/<username>`), newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    my_feed: Option<Vec<FeedMeEntry>>,
    /// The activities of whom the user follows (`.../friends`), newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    friends_feed: Option<Vec<FeedMeEntry>>,
    /// The next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<String>,
    /// The previous page, on pages after the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_url: Option<String>,
}

impl FeedMePage {
    /// Page `number` of `path` from up to `PAGE_SIZE + 1` entries (one more tells
    /// whether a next page exists).
    fn new(path: &str, number: usize, mut entries: Vec<FeedMeEntry>, friends: bool) -> Self {
        let has_next = entries.len() > PAGE_SIZE;
        entries.truncate(PAGE_SIZE);
        let (my_feed, friends_feed) = if friends { (None, Some(entries)) } else { (Some(entries), None) };
        Self {
            my_feed,
            friends_feed,
            next_url: has_next.then(|| format!("{path}?page={}", number + 1)),
            previous_url: (number > 1).then(|| format!("{path}?page={}", number - 1)),
        }
    }
}

/// The user of a path, or 404.
async fn path_user(state: &AppState, username: &str) -> Result<UserRef, ApiError> {
    known_user(state, username).await?.ok_or_else(|| ApiError::NotFound("User not found".into()))
}

/// The user's activities (not follows), newest first.
#[utoipa::path(get, path = "/feed/{username}", operation_id = "feed_me_user_feed", tag = "feed-me", security(("app_key" = [])),
    params(("username" = String, Path, description = "Whose feed"), PageNumber),
    responses(
        (status = 200, body = FeedMePage, description = "`{\"my_feed\": [...]}` with `next_url` / `previous_url` where those pages exist; a page past the end is empty"),
        (status = 400, body = FeedMeErrorBody, description = "`Key is missing`, or a bad `page`"),
        (status = 401, body = FeedMeErrorBody, description = "`Key is not valid`"),
        (status = 404, body = FeedMeErrorBody, description = "`User not found`"),
        (status = 503, body = FeedMeErrorBody, description = "The database is unavailable"),
    ))]
async fn user_feed(
    State(state): State<AppState>,
    caller: Result<AuthUser, ApiError>,
    Path(username): Path<String>,
    query: Result<Query<PageNumber>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FeedMePage>, FeedMeError> {
    async {
        caller?;
        let page = PageNumber::parse(query)?;
        let user = path_user(&state, &username).await?;
        let range = Range::skipping(((page - 1) * PAGE_SIZE) as i64, PAGE_SIZE as i64 + 1);
        let rows = activities::authored(&state.db, user.id, Verbs::FannedOut, range).await?;
        let entries = rows.iter().map(FeedMeEntry::from_row).collect();
        Ok(Json(FeedMePage::new(&format!("/feed/{}", user.name), page, entries, false)))
    }
    .await
    .map_err(FeedMeError)
}

/// The activities of whom the user follows, newest first: only for the user themself.
/// Pages within what Redis keeps are one Redis read; later ones come from PostgreSQL.
#[utoipa::path(get, path = "/feed/{username}/friends", operation_id = "feed_me_friends_feed", tag = "feed-me", security(("app_key" = [])),
    params(("username" = String, Path, description = "The caller's own name"), PageNumber),
    responses(
        (status = 200, body = FeedMePage, description = "`{\"friends_feed\": [...]}` with `next_url` / `previous_url` where those pages exist; empty for a user following nobody"),
        (status = 400, body = FeedMeErrorBody, description = "`Key is missing`, or a bad `page`"),
        (status = 401, body = FeedMeErrorBody, description = "`Key is not valid`"),
        (status = 403, body = FeedMeErrorBody, description = "Another user's friends feed"),
        (status = 503, body = FeedMeErrorBody, description = "Redis or the database is unavailable"),
    ))]
async fn friends_feed(
    State(state): State<AppState>,
    caller: Result<AuthUser, ApiError>,
    Path(username): Path<String>,
    query: Result<Query<PageNumber>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FeedMePage>, FeedMeError> {
    async {
        let caller = caller?;
        let page = PageNumber::parse(query)?;
        if username != caller.name {
            return Err(ApiError::Forbidden("You can only read your own friends feed".into()));
        }
        let read = crate::friends::page(&state, caller.id, Start::Skip((page - 1) * PAGE_SIZE), PAGE_SIZE + 1).await?;
        let entries: Vec<FeedMeEntry> = read
            .entries
            .iter()
            .filter_map(|e| serde_json::from_slice::<FeedEntry>(&e.json).ok())
            .filter_map(FeedMeEntry::from_entry)
            .collect();
        Ok(Json(FeedMePage::new(&format!("/feed/{}/friends", caller.name), page, entries, true)))
    }
    .await
    .map_err(FeedMeError)
}

/// `{"follow": {"followee": ..., "follower": ...}}` or the same under `unfollow`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FollowChanged {
    /// Set when a follow was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    follow: Option<FollowPair>,
    /// Set when an unfollow was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    unfollow: Option<FollowPair>,
}

/// Who follows whom.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FollowPair {
    /// The followed user.
    followee: String,
    /// The following user.
    follower: String,
}

/// `{"follow": name}` or `{"unfollow": name}`. Documents the body, which
/// `change_follows` parses by hand.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FollowChange {
    /// Whom to follow.
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    follow: Option<String>,
    /// Whom to stop following.
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_.-]+$")]
    unfollow: Option<String>,
}

/// Follows or unfollows someone: only for the user themself. Adds nothing to any
/// feed-me feed.
#[utoipa::path(post, path = "/feed/{username}", operation_id = "feed_me_change_follows", tag = "feed-me", security(("app_key" = [])),
    params(("username" = String, Path, description = "The caller's own name")),
    request_body = FollowChange,
    responses(
        (status = 200, body = FollowChanged, description = "The follow or unfollow recorded"),
        (status = 400, body = FeedMeErrorBody, description = "`Key is missing`, neither or both of `follow` and `unfollow`, yourself, or an unknown user"),
        (status = 401, body = FeedMeErrorBody, description = "`Key is not valid`"),
        (status = 403, body = FeedMeErrorBody, description = "Another user's follows"),
        (status = 409, body = FeedMeErrorBody, description = "Already following, or not following"),
        (status = 503, body = FeedMeErrorBody, description = "The broker or database is unavailable: nothing was recorded"),
    ))]
async fn change_follows(
    State(state): State<AppState>,
    caller: Result<AuthUser, ApiError>,
    Path(username): Path<String>,
    body: Result<JsonObject, ApiError>,
) -> Result<Response, FeedMeError> {
    async {
        let caller = caller?;
        let body = body?;
        if username != caller.name {
            return Err(ApiError::Forbidden("You can only change whom you follow".into()));
        }
        let (kind, name) = match (body.0.get("follow"), body.0.get("unfollow")) {
            (Some(name), None) => (EventType::Follow, name),
            (None, Some(name)) => (EventType::Unfollow, name),
            _ => return Err(ApiError::bad_request("Give either follow or unfollow, with a username")),
        };
        let name = name.as_str().ok_or_else(|| ApiError::bad_request("The username must be a string"))?;
        if name == caller.name {
            return Err(ApiError::bad_request("You can't follow or unfollow yourself"));
        }
        let target = known_user(&state, name).await?.ok_or_else(|| ApiError::bad_request(format!("No user named {name}")))?;
        let following = is_following(&state, caller.id, target.id).await?;
        match (kind, following) {
            (EventType::Follow, true) => return Err(ApiError::Conflict(format!("Already following {}", target.name).into())),
            (EventType::Unfollow, false) => return Err(ApiError::Conflict(format!("Not following {}", target.name).into())),
            _ => {}
        }
        let event = Event::new(kind, caller.user_ref(), None, Some(target.clone()), serde_json::Value::Null);
        let recorded = state.record(&event).await?;
        let pair = Some(FollowPair { followee: target.name, follower: caller.name });
        let answer = if kind == EventType::Follow {
            FollowChanged { follow: pair, unfollow: None }
        } else {
            FollowChanged { follow: None, unfollow: pair }
        };
        Ok(recorded.respond(Json(answer)).into_response())
    }
    .await
    .map_err(FeedMeError)
}

/// Documents feed-me's error shape on its routes, and `POST /activity`'s two kinds of
/// body. Runs after [`crate::openapi::complete`], whose answers it reshapes; the rate
/// limiter's 429 keeps the reference shape on every route.
pub(super) struct FeedMeDocs;

impl FeedMeDocs {
    fn one_of(names: &[&str]) -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new();
        for name in names {
            one_of = one_of.item(Ref::from_schema_name(*name));
        }
        RefOr::T(Schema::OneOf(one_of.build()))
    }

    /// Sets the JSON schema of every error answer but 429 of `operation`.
    fn errors(operation: &mut Operation, schema: &RefOr<Schema>) {
        for (status, response) in &mut operation.responses.responses {
            if let (false, RefOr::T(response)) = (status.starts_with('2') || status == "429", response) {
                response.content.insert("application/json".to_string(), Content::new(Some(schema.clone())).into());
            }
        }
    }
}

impl Modify for FeedMeDocs {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in [
            ("FreeActivity", <FreeActivity as utoipa::PartialSchema>::schema()),
            ("FeedMeEntry", <FeedMeEntry as utoipa::PartialSchema>::schema()),
            ("FeedMeErrorBody", <FeedMeErrorBody as utoipa::PartialSchema>::schema()),
        ] {
            components.schemas.entry(name.to_string()).or_insert(schema);
        }
        let feed_me_error = RefOr::Ref(Ref::from_schema_name("FeedMeErrorBody"));
        for operation in crate::openapi::operations(openapi) {
            if operation.tags.as_ref().is_some_and(|tags| tags.iter().any(|t| t == "feed-me")) {
                Self::errors(operation, &feed_me_error);
            }
        }
        let Some(activity) = openapi.paths.paths.get_mut("/activity").and_then(|item| item.post.as_mut()) else { return };
        if let Some(RefOr::T(body)) = &mut activity.request_body {
            body.content.insert("application/json".to_string(), Content::new(Some(Self::one_of(&["NewActivity", "FreeActivity"]))).into());
        }
        if let Some(RefOr::T(ok)) = activity.responses.responses.get_mut("200") {
            ok.content
                .insert("application/json".to_string(), Content::new(Some(Self::one_of(&["ActivityRecorded", "FeedMeEntry"]))).into());
        }
        activity
            .responses
            .responses
            .insert("403".to_string(), crate::openapi::error_response("A free-verb activity whose `actor` is not the key's user").into());
        Self::errors(activity, &Self::one_of(&["ErrorBody", "FeedMeErrorBody"]));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn feed_me_paths_are_told_from_the_reference_feeds() {
        for path in ["/feed/ivan", "/feed/ivan/friends", "/feed/friends/friends"] {
            assert!(super::serves(path), "{path}");
        }
        for path in ["/feed/my", "/feed/friends", "/feed/", "/feed/a/b", "/feed/a/friends/friends", "/post"] {
            assert!(!super::serves(path), "{path}");
        }
    }
}
