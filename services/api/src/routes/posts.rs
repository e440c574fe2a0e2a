//! `POST /post`: publish a post or a photo.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::json::JsonObject;
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use feed_core::event::{Event, EventType, ObjectKind, ObjectRef};
use serde_json::json;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/post", post(create))
}

async fn create(State(state): State<AppState>, user: AuthUser, body: JsonObject) -> Result<Response, ApiError> {
    let kind = body
        .str("type")
        .and_then(ObjectKind::parse)
        .ok_or_else(|| ApiError::bad_request("Type is missing or not valid"))?;
    let content = body
        .str("content")
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("Content is missing"))?;
    let sequence = match kind {
        ObjectKind::Post => "SELECT nextval('post_ids')",
        ObjectKind::Photo => "SELECT nextval('photo_ids')",
    };
    let id: i64 = sqlx::query_scalar(sequence).fetch_one(&state.db).await?;
    let object = ObjectRef { kind, id };
    let event = Event::new(EventType::Post, user.user_ref(), Some(object), None, json!({ "content": content }));
    let recorded = state.record(&event).await?;
    Ok(recorded.respond(Json(json!({
        "type": kind,
        "object_id": id,
        "message": "Activity recorded",
    }))))
}
