//! `POST /activity`: like or share an existing object, or, with a `target` (or an
//! `actor`) in the body, record a feed-me free-verb activity (see [`super::feedme`]).

use crate::auth::AuthUser;
use crate::domain::{parse_object, ReactionVerb};
use crate::error::{ApiError, ErrorBody, FeedMeError};
use crate::json::JsonObject;
use crate::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use feed_core::event::{Event, EventType, ObjectRef, UserRef};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create))
}

/// A like or share (parsed by hand, for the reference's error messages).
#[derive(utoipa::ToSchema)]
pub struct NewActivity {
    verb: ReactionVerb,
    /// `post:<id>` or `photo:<id>`.
    #[schema(value_type = String, pattern = "^(post|photo):[1-9][0-9]*$", example = "post:21")]
    object: ObjectRef,
}

impl NewActivity {
    fn parse(body: &JsonObject) -> Result<Self, ApiError> {
        let verb =
            body.str("verb").and_then(ReactionVerb::parse).ok_or_else(|| ApiError::bad_request("Verb is missing or wrong verb format"))?;
        let object = body.str("object").and_then(parse_object).ok_or_else(|| ApiError::bad_request("Wrong object format"))?;
        Ok(Self { verb, object })
    }
}

/// The answer to a recorded like, share, follow or unfollow.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivityRecorded {
    /// `like`, `share`, `follow` or `unfollow`.
    pub verb: &'static str,
    /// `Activity recorded`, `User followed`, `Already followed` or `User unfollowed`.
    pub message: &'static str,
}

/// Likes or shares a post or photo; the object's owner is the activity's target.
#[utoipa::path(post, path = "/activity", operation_id = "create_activity", tag = "feed", security(("app_key" = [])), request_body = NewActivity,
    responses(
        (status = 200, body = ActivityRecorded, description = "`Activity recorded`"),
        (status = 400, body = ErrorBody, description = "`Verb is missing or wrong verb format`, `Wrong object format`, or `Object is not found` (400, as the reference answers)"),
        (status = 503, body = ErrorBody, description = "The broker or database is unavailable: nothing was recorded"),
    ))]
async fn create(State(state): State<AppState>, user: AuthUser, body: JsonObject) -> Result<Response, ApiError> {
    if body.0.contains_key("target") || body.0.contains_key("actor") {
        return Ok(super::feedme::record_activity(state, user, body).await.map_err(FeedMeError).into_response());
    }
    let NewActivity { verb, object } = NewActivity::parse(&body)?;
    let owner: Option<(i64, String)> =
        sqlx::query_as("SELECT u.id, u.name FROM objects o JOIN users u ON u.id = o.owner_id WHERE o.kind = $1 AND o.id = $2")
            .bind(object.kind.as_str())
            .bind(object.id)
            .fetch_optional(&state.db)
            .await?;
    let (owner_id, owner_name) = owner.ok_or_else(|| ApiError::bad_request("Object is not found"))?;
    let kind = match verb {
        ReactionVerb::Like => EventType::Like,
        ReactionVerb::Share => EventType::Share,
    };
    let target = UserRef { id: owner_id, name: owner_name };
    let event = Event::new(kind, user.user_ref(), Some(object), Some(target), serde_json::Value::Null);
    let recorded = state.record(&event).await?;
    Ok(recorded.respond(Json(ActivityRecorded { verb: verb.as_str(), message: "Activity recorded" })))
}
