//! `POST /follow` and `POST /unfollow`.

use crate::auth::AuthUser;
use crate::domain::Username;
use crate::error::ApiError;
use crate::json::JsonObject;
use crate::users::find_by_name;
use crate::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use feed_core::event::{Event, EventType, UserRef};
use serde_json::json;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/follow", post(follow)).route("/unfollow", post(unfollow))
}

/// The user named by `field`, who must exist and not be the caller.
async fn other_user(
    state: &AppState,
    user: &AuthUser,
    body: &JsonObject,
    field: &str,
    yourself: &'static str,
) -> Result<UserRef, ApiError> {
    let name = body.str(field).and_then(Username::parse).ok_or_else(|| ApiError::not_found("User not found"))?;
    if name.as_str() == user.name {
        return Err(ApiError::bad_request(yourself));
    }
    find_by_name(state, name.as_str()).await?.ok_or_else(|| ApiError::not_found("User not found"))
}

async fn is_following(state: &AppState, follower: i64, followee: i64) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2)")
        .bind(follower)
        .bind(followee)
        .fetch_one(&state.db)
        .await?)
}

async fn follow(State(state): State<AppState>, user: AuthUser, body: JsonObject) -> Result<Response, ApiError> {
    let target = other_user(&state, &user, &body, "follow", "You can't follow yourself").await?;
    if is_following(&state, user.id, target.id).await? {
        return Ok(Json(json!({ "verb": "follow", "message": "Already followed" })).into_response());
    }
    let event = Event::new(EventType::Follow, user.user_ref(), None, Some(target), serde_json::Value::Null);
    let recorded = state.record(&event).await?;
    Ok(recorded.respond(Json(json!({ "verb": "follow", "message": "User followed" }))))
}

/// Unfollowing someone the caller does not follow changes nothing and records nothing.
async fn unfollow(State(state): State<AppState>, user: AuthUser, body: JsonObject) -> Result<Response, ApiError> {
    let target = other_user(&state, &user, &body, "unfollow", "You can't unfollow yourself").await?;
    let answer = Json(json!({ "verb": "unfollow", "message": "User unfollowed" }));
    if !is_following(&state, user.id, target.id).await? {
        return Ok(answer.into_response());
    }
    let event = Event::new(EventType::Unfollow, user.user_ref(), None, Some(target), serde_json::Value::Null);
    let recorded = state.record(&event).await?;
    Ok(recorded.respond(answer))
}
