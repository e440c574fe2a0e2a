//! The one error type handlers return; it renders as the reference's JSON error body
//! `{"error": true, "message": "..."}` with the matching status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::borrow::Cow;

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always `true`.
    pub error: bool,
    /// What went wrong, e.g. `Key is not valid`.
    pub message: String,
    /// The request field at fault, for validation errors of `/events` and `/analytics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

/// The JSON body of an error on feed-me's routes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedMeErrorBody {
    /// What went wrong, e.g. `Already following ivan`.
    pub error: String,
}

/// An error answer to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
    field: Option<&'static str>,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
    /// The body's shape.
    shape: Shape,
}

/// How an error body looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// The activity-feed reference's `{"error": true, "message": "..."}` (every route
    /// but feed-me's).
    Reference,
    /// feed-me's `{"error": "..."}`.
    FeedMe,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, message: message.into(), field: None, retry_after: None, shape: Shape::Reference }
    }

    /// 400 about one request field, named in the body as `"field"`.
    pub fn invalid_field(field: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { field: Some(field), ..Self::bad_request(message) }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401 with `message`.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403 with `message`.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 409 with `message`: the change conflicts with the current state.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// The same error with feed-me's body, `{"error": "<message>"}`.
    pub fn feed_me(self) -> Self {
        Self { shape: Shape::FeedMe, ..self }
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 503: a dependency (broker, database, Redis) is unavailable; safe to retry.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 503 with `Retry-After: 1`: the API sheds load; retry shortly.
    pub fn overloaded(message: impl Into<Cow<'static, str>>) -> Self {
        Self { retry_after: Some(1), ..Self::unavailable(message) }
    }

    /// 499 (nginx's "client closed request"): the client hung up before its write was
    /// published, so it was not. Nobody reads the answer; logs and metrics do.
    pub fn client_gone() -> Self {
        let status = StatusCode::from_u16(499).expect("499 is a valid status code");
        Self::new(status, "The client closed the connection; nothing was recorded")
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 500: a bug (a statement the database refused, a script error). The cause goes to
    /// the log, the client gets a generic message.
    pub(crate) fn internal(error: &dyn std::fmt::Display, store: &'static str) -> Self {
        tracing::error!(%error, store, "internal error");
        metrics::counter!("feed_internal_errors_total", "store" => store).increment(1);
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

/// So tools calling handler logic (feedctl) can use `?` into `anyhow`.
impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = match self.shape {
            Shape::Reference => {
                let body = ErrorBody { error: true, message: self.message.into_owned(), field: self.field };
                (self.status, Json(body)).into_response()
            }
            Shape::FeedMe => (self.status, Json(FeedMeErrorBody { error: self.message.into_owned() })).into_response(),
        };
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    /// 503 only when PostgreSQL cannot work right now; anything else is a bug (500).
    fn from(error: sqlx::Error) -> Self {
        if !feed_core::db::is_unavailable(&error) {
            return ApiError::internal(&error, "postgres");
        }
        metrics::counter!("feed_store_errors_total", "store" => "postgres").increment(1);
        tracing::error!(%error, "database error");
        ApiError::unavailable("Database unavailable")
    }
}

impl From<redis::RedisError> for ApiError {
    /// 503 only when Redis cannot work right now; anything else is a bug (500).
    fn from(error: redis::RedisError) -> Self {
        if !feed_core::redis_pool::is_unavailable(&error) {
            return ApiError::internal(&error, "redis");
        }
        metrics::counter!("feed_store_errors_total", "store" => "redis").increment(1);
        tracing::error!(%error, "redis error");
        ApiError::unavailable("Feed store unavailable")
    }
}

impl From<bb8::RunError<redis::RedisError>> for ApiError {
    fn from(error: bb8::RunError<redis::RedisError>) -> Self {
        if let bb8::RunError::User(error) = error {
            return error.into();
        }
        metrics::counter!("feed_store_errors_total", "store" => "redis").increment(1);
        tracing::error!(%error, "redis pool error");
        ApiError::unavailable("Feed store unavailable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dependency_that_cannot_work_is_503_and_a_bug_is_500() {
        assert_eq!(ApiError::from(sqlx::Error::PoolTimedOut).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ApiError::from(sqlx::Error::RowNotFound).status(), StatusCode::INTERNAL_SERVER_ERROR);
        let refused = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(ApiError::from(refused).status(), StatusCode::SERVICE_UNAVAILABLE);
        let script = redis::RedisError::from((redis::ErrorKind::Client, "bad script"));
        assert_eq!(ApiError::from(script).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
