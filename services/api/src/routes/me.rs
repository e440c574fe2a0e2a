//! `GET /me`: the caller's account.

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// The caller's account, as the reference returns it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    /// User id.
    id: i64,
    /// User name.
    name: String,
    /// The key the request carried.
    auth_token: String,
    /// Ids of the users the caller follows, oldest follow first.
    follow_ids: Vec<i64>,
    /// e.g. `Sun, 10 Feb 2019 09:47:03 GMT`.
    #[schema(example = "Sun, 10 Feb 2019 09:47:03 GMT")]
    created_at: String,
    /// Last change to the account (a key rotation), same format.
    #[schema(example = "Sun, 10 Feb 2019 09:47:03 GMT")]
    updated_at: String,
}

/// The reference's date format, e.g. `Sun, 10 Feb 2019 09:47:03 GMT`.
fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The caller's account.
#[utoipa::path(get, path = "/me", tag = "feed", security(("app_key" = [])),
    responses(
        (status = 200, body = Me, description = "The account"),
        (status = 503, body = ErrorBody, description = "The database is unavailable"),
    ))]
async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<Me>, ApiError> {
    let follow_ids: Vec<i64> = sqlx::query_scalar("SELECT followee_id FROM follows WHERE follower_id = $1 ORDER BY since, followee_id")
        .bind(user.id)
        .fetch_all(&state.db)
        .await?;
    Ok(Json(Me {
        id: user.id,
        name: user.name,
        auth_token: user.key,
        follow_ids,
        created_at: http_date(user.created_at),
        updated_at: http_date(user.updated_at),
    }))
}
