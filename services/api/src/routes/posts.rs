//! `POST /post`: publish a post or a photo; `DELETE /post/<type>/<id>`: delete one.

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::json::JsonObject;
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use feed_core::event::{Event, EventType, ObjectKind, ObjectRef};
use serde::Serialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create)).routes(routes!(delete))
}

/// A new post or photo (parsed by hand, for the reference's error messages).
#[derive(utoipa::ToSchema)]
pub struct NewPost {
    /// `post` or `photo`.
    #[schema(rename = "type")]
    kind: ObjectKind,
    /// The text, or the photo's name; not blank.
    #[schema(min_length = 1, max_length = 10000)]
    content: String,
}

impl NewPost {
    fn parse(body: &JsonObject) -> Result<Self, ApiError> {
        let kind = body.str("type").and_then(ObjectKind::parse).ok_or_else(|| ApiError::bad_request("Type is missing or not valid"))?;
        let content = body.str("content").filter(|c| !c.trim().is_empty()).ok_or_else(|| ApiError::bad_request("Content is missing"))?;
        if !crate::domain::fits(content, crate::domain::MAX_LONG_TEXT) {
            return Err(ApiError::bad_request(format!("Content must be at most {} characters", crate::domain::MAX_LONG_TEXT)));
        }
        Ok(Self { kind, content: content.to_string() })
    }
}

/// The answer to a recorded post.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PostRecorded {
    /// `post` or `photo`.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: ObjectKind,
    /// The new object's id (ids are allocated per type).
    object_id: i64,
    /// `Activity recorded`.
    message: &'static str,
}

/// Publishes a post or a photo; it appears in the author's `/feed/my` and the
/// followers' `/feed/friends`.
#[utoipa::path(post, path = "/post", operation_id = "create_post", tag = "feed", security(("app_key" = [])), request_body = NewPost,
    responses(
        (status = 200, body = PostRecorded, description = "`Activity recorded`"),
        (status = 400, body = ErrorBody, description = "`Type is missing or not valid`, `Content is missing`, `Content must be at most 10000 characters`"),
        (status = 503, body = ErrorBody, description = "The broker did not acknowledge: nothing was recorded"),
    ))]
async fn create(State(state): State<AppState>, user: AuthUser, body: JsonObject) -> Result<Response, ApiError> {
    let NewPost { kind, content } = NewPost::parse(&body)?;
    let sequence = match kind {
        ObjectKind::Post => "SELECT nextval('post_ids')",
        ObjectKind::Photo => "SELECT nextval('photo_ids')",
    };
    let id: i64 = sqlx::query_scalar(sequence).fetch_one(&state.db).await?;
    let object = ObjectRef { kind, id };
    let event = Event::new(EventType::Post, user.user_ref(), Some(object), None, json!({ "content": content }));
    let recorded = state.record(&event).await?;
    Ok(recorded.respond(Json(PostRecorded { kind, object_id: id, message: "Activity recorded" })))
}

/// The answer to a recorded delete.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Deleted {
    /// The deleted object, `post:<id>` or `photo:<id>`.
    #[schema(example = "post:21")]
    object: String,
    /// `Object deleted`.
    message: &'static str,
}

/// Deletes the caller's own post or photo: it, and every like and share of it, leave
/// every feed (the authors' `/feed/my`, every follower's `/feed/friends`) within the
/// fan-out's lag — for the caller, before the answer. Liking or sharing it afterwards
/// is 400 `Object is not found`.
#[utoipa::path(delete, path = "/post/{type}/{id}", operation_id = "delete_post", tag = "feed", security(("app_key" = [])),
    params(
        ("type" = String, Path, description = "`post` or `photo`", pattern = "^(post|photo)$"),
        ("id" = i64, Path, description = "The object's id", minimum = 1),
    ),
    responses(
        (status = 200, body = Deleted, description = "`Object deleted`"),
        (status = 403, body = ErrorBody, description = "`Only its owner can delete it`"),
        (status = 404, body = ErrorBody, description = "`Object is not found` (never existed, or already deleted)"),
        (status = 503, body = ErrorBody, description = "The broker or database is unavailable: nothing was recorded"),
    ))]
async fn delete(State(state): State<AppState>, user: AuthUser, Path((kind, id)): Path<(String, String)>) -> Result<Response, ApiError> {
    let object = crate::domain::parse_object(&format!("{kind}:{id}")).ok_or_else(|| ApiError::NotFound("Object is not found".into()))?;
    let owner: Option<i64> = sqlx::query_scalar("SELECT owner_id FROM objects WHERE kind = $1 AND id = $2")
        .bind(object.kind.as_str())
        .bind(object.id)
        .fetch_optional(&state.db)
        .await?;
    match owner {
        None => return Err(ApiError::NotFound("Object is not found".into())),
        Some(owner) if owner != user.id => return Err(ApiError::Forbidden("Only its owner can delete it".into())),
        Some(_) => {}
    }
    let event = Event::new(EventType::Deleted, user.user_ref(), Some(object), None, serde_json::Value::Null);
    let recorded = state.record(&event).await?;
    Ok(recorded.respond(Json(Deleted { object: object.to_string(), message: "Object deleted" })))
}
