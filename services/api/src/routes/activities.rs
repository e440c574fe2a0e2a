//! `POST /activity`: like or share an existing object.

use crate::auth::AuthUser;
use crate::domain::{parse_object, ReactionVerb};
use crate::error::ApiError;
use crate::json::JsonObject;
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use feed_core::event::{Event, EventType, UserRef};
use serde_json::json;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/activity", post(create))
}

async fn create(State(state): State<AppState>, user: AuthUser, body: JsonObject) -> Result<Response, ApiError> {
    let verb = body
        .str("verb")
        .and_then(ReactionVerb::parse)
        .ok_or_else(|| ApiError::bad_request("Verb is missing or wrong verb format"))?;
    let object = body
        .str("object")
        .and_then(parse_object)
        .ok_or_else(|| ApiError::bad_request("Wrong object format"))?;
    let owner: Option<(i64, String)> = sqlx::query_as(
        "SELECT u.id, u.name FROM objects o JOIN users u ON u.id = o.owner_id WHERE o.kind = $1 AND o.id = $2",
    )
    .bind(object.kind.as_str())
    .bind(object.id)
    .fetch_optional(&state.db)
    .await?;
    let (owner_id, owner_name) = owner.ok_or_else(|| ApiError::not_found("Object is not found"))?;
    let kind = match verb {
        ReactionVerb::Like => EventType::Like,
        ReactionVerb::Share => EventType::Share,
    };
    let target = UserRef { id: owner_id, name: owner_name };
    let event = Event::new(kind, user.user_ref(), Some(object), Some(target), serde_json::Value::Null);
    let recorded = state.record(&event).await?;
    Ok(recorded.respond(Json(json!({ "verb": verb.as_str(), "message": "Activity recorded" }))))
}
