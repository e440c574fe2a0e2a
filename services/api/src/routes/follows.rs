//! `POST /follow` and `POST /unfollow`.

use crate::auth::AuthUser;
use crate::domain::Username;
use crate::error::{ApiError, ErrorBody};
use crate::json::JsonObject;
use crate::routes::activities::ActivityRecorded;
use crate::users::find_by_name;
use crate::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use feed_core::event::{Event, EventType, UserRef};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(follow)).routes(routes!(unfollow))
}

/// Whom to follow.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // schema only: the name is read by `other_user`
pub struct FollowRequest {
    /// The user's name.
    #[schema(example = "nico")]
    follow: String,
}

/// Whom to stop following.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // schema only: the name is read by `other_user`
pub struct UnfollowRequest {
    /// The user's name.
    #[schema(example = "nico")]
    unfollow: String,
}

/// The user named by `field`, who must exist and not be the caller.
async fn other_user(
    state: &AppState,
    user: &AuthUser,
    body: &JsonObject,
    field: &str,
    yourself: &'static str,
) -> Result<UserRef, ApiError> {
    let name = body.str(field).and_then(Username::parse).ok_or_else(|| ApiError::bad_request("User not found"))?;
    if name.as_str() == user.name {
        return Err(ApiError::bad_request(yourself));
    }
    find_by_name(&state.db, name.as_str()).await?.ok_or_else(|| ApiError::bad_request("User not found"))
}

pub(super) async fn is_following(state: &AppState, follower: i64, followee: i64) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2)")
        .bind(follower)
        .bind(followee)
        .fetch_one(&state.db)
        .await?)
}

/// Follows a user: their posts, likes and shares from now on, and their recent ones,
/// appear in the caller's `/feed/friends`.
#[utoipa::path(post, path = "/follow", tag = "feed", security(("app_key" = [])), request_body = FollowRequest,
    responses(
        (status = 200, body = ActivityRecorded, description = "`User followed`, or `Already followed` (nothing recorded)"),
        (status = 400, body = ErrorBody, description = "`You can't follow yourself`, or `User not found` (400, as the reference answers)"),
        (status = 503, body = ErrorBody, description = "The broker or database is unavailable: nothing was recorded"),
    ))]
async fn follow(State(state): State<AppState>, user: AuthUser, body: JsonObject) -> Result<Response, ApiError> {
    let target = other_user(&state, &user, &body, "follow", "You can't follow yourself").await?;
    if is_following(&state, user.id, target.id).await? {
        return Ok(Json(ActivityRecorded { verb: "follow", message: "Already followed" }).into_response());
    }
    let event = Event::new(EventType::Follow, user.user_ref(), None, Some(target), serde_json::Value::Null);
    let recorded = state.record(&event).await?;
    Ok(recorded.respond(Json(ActivityRecorded { verb: "follow", message: "User followed" })))
}

/// Stops following a user and removes their entries from the caller's `/feed/friends`.
/// Unfollowing someone the caller does not follow changes nothing and records nothing.
#[utoipa::path(post, path = "/unfollow", tag = "feed", security(("app_key" = [])), request_body = UnfollowRequest,
    responses(
        (status = 200, body = ActivityRecorded, description = "`User unfollowed`"),
        (status = 400, body = ErrorBody, description = "`You can't unfollow yourself`, or `User not found` (400, as the reference answers)"),
        (status = 503, body = ErrorBody, description = "The broker or database is unavailable: nothing was recorded"),
    ))]
async fn unfollow(State(state): State<AppState>, user: AuthUser, body: JsonObject) -> Result<Response, ApiError> {
    let target = other_user(&state, &user, &body, "unfollow", "You can't unfollow yourself").await?;
    let answer = Json(ActivityRecorded { verb: "unfollow", message: "User unfollowed" });
    if !is_following(&state, user.id, target.id).await? {
        return Ok(answer.into_response());
    }
    let event = Event::new(EventType::Unfollow, user.user_ref(), None, Some(target), serde_json::Value::Null);
    let recorded = state.record(&event).await?;
    Ok(recorded.respond(answer))
}
