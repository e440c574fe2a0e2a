//! `GET /me`: the caller's account.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/me", get(me))
}

/// The reference's date format, e.g. `Sun, 10 Feb 2019 09:47:03 GMT`.
fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    let follow_ids: Vec<i64> =
        sqlx::query_scalar("SELECT followee_id FROM follows WHERE follower_id = $1 ORDER BY since, followee_id")
            .bind(user.id)
            .fetch_all(&state.db)
            .await?;
    Ok(Json(json!({
        "id": user.id,
        "name": user.name,
        "auth_token": user.key,
        "follow_ids": follow_ids,
        "created_at": http_date(user.created_at),
        "updated_at": http_date(user.updated_at),
    })))
}
