//! The one error type handlers return. What went wrong is a variant of [`ApiError`];
//! its HTTP status is decided in one place ([`ApiError::status`]), and it renders as the
//! reference's JSON error body `{"error": true, "message": "..."}` — or, on feed-me's
//! routes, wrapped in [`FeedMeError`], as feed-me's `{"error": "..."}`.

use axum::http::{HeaderValue, StatusCode};
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

/// A message shown to the client.
pub type Message = Cow<'static, str>;

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed, or names something that does not exist where the
    /// reference answers 400 (`User not found` on `/follow`); `field` names the request
    /// field at fault, where there is one.
    Invalid {
        /// What is wrong.
        message: Message,
        /// The field, for validation errors of `/events`, `/analytics`, feed-me.
        field: Option<&'static str>,
    },
    /// No valid app key.
    Unauthorized(Message),
    /// A valid key, but not allowed to do this.
    Forbidden(Message),
    /// What the path names does not exist.
    NotFound(Message),
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// The change conflicts with the current state (following twice).
    Conflict(Message),
    /// The body is over `MAX_BODY_BYTES`.
    PayloadTooLarge,
    /// Over the client's rate limit (the caller adds `Retry-After` and `RateLimit-*`).
    RateLimited,
    /// The client hung up before its write was published, so it was not.
    ClientGone,
    /// A dependency (broker, database, Redis) cannot work right now; safe to retry.
    Unavailable(Message),
    /// The API sheds load (writes in flight, a deadline that cannot be met); retry shortly.
    Overloaded(Message),
    /// A bug: a statement the database refused, a script error. The cause was logged
    /// where it happened (see [`ApiError::internal`]); the client gets a generic message.
    Internal,
}

impl ApiError {
    /// The status each kind of error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            // nginx's "client closed request": nobody reads it; logs and metrics do.
            Self::ClientGone => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Self::Unavailable(_) | Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told.
    pub fn message(&self) -> &str {
        match self {
            Self::Invalid { message, .. }
            | Self::Unauthorized(message)
            | Self::Forbidden(message)
            | Self::NotFound(message)
            | Self::Conflict(message)
            | Self::Unavailable(message)
            | Self::Overloaded(message) => message,
            Self::MethodNotAllowed => "Method not allowed",
            Self::PayloadTooLarge => "Request body is too large",
            Self::RateLimited => "Too many requests",
            Self::ClientGone => "The client closed the connection; nothing was recorded",
            Self::Internal => "Internal error",
        }
    }

    /// Seconds for a `Retry-After` header: shedding asks clients to come back shortly.
    fn retry_after(&self) -> Option<u64> {
        matches!(self, Self::Overloaded(_)).then_some(1)
    }

    /// The request field at fault.
    fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { field, .. } => *field,
            _ => None,
        }
    }

    /// [`ApiError::Invalid`] with `message`.
    pub fn bad_request(message: impl Into<Message>) -> Self {
        Self::Invalid { message: message.into(), field: None }
    }

    /// [`ApiError::Invalid`] about one request field, named in the body as `"field"`.
    pub fn invalid_field(field: &'static str, message: impl Into<Message>) -> Self {
        Self::Invalid { message: message.into(), field: Some(field) }
    }

    /// [`ApiError::Internal`], logging its cause (never shown to the client) and counting it
    /// in `feed_internal_errors_total` by `store` (`postgres`, `redis`, `api`).
    pub fn internal(error: &dyn std::fmt::Display, store: &'static str) -> Self {
        tracing::error!(%error, store, "internal error");
        metrics::counter!("feed_internal_errors_total", "store" => store).increment(1);
        Self::Internal
    }

    /// [`ApiError::Unavailable`] because `store` cannot work right now, logging `error`.
    fn store_unavailable(error: &dyn std::fmt::Display, store: &'static str, message: &'static str) -> Self {
        metrics::counter!("feed_store_errors_total", "store" => store).increment(1);
        tracing::error!(%error, store, "store unavailable");
        Self::Unavailable(message.into())
    }

    /// The answer in the reference's shape, or in feed-me's.
    fn respond(&self, feed_me: bool) -> Response {
        let (status, message) = (self.status(), self.message().to_string());
        let mut response = if feed_me {
            (status, Json(FeedMeErrorBody { error: message })).into_response()
        } else {
            (status, Json(ErrorBody { error: true, message, field: self.field() })).into_response()
        };
        if let Some(seconds) = self.retry_after() {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status(), self.message())
    }
}

/// So tools calling handler logic (feedctl) can use `?` into `anyhow`.
impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond(false)
    }
}

/// An [`ApiError`] on one of feed-me's routes: the same status, feed-me's body.
#[derive(Debug)]
pub struct FeedMeError(pub ApiError);

impl<E: Into<ApiError>> From<E> for FeedMeError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for FeedMeError {
    fn into_response(self) -> Response {
        self.0.respond(true)
    }
}

impl From<sqlx::Error> for ApiError {
    /// 503 only when PostgreSQL cannot work right now; anything else is a bug (500).
    fn from(error: sqlx::Error) -> Self {
        if feed_core::db::is_unavailable(&error) {
            Self::store_unavailable(&error, "postgres", "Database unavailable")
        } else {
            Self::internal(&error, "postgres")
        }
    }
}

impl From<redis::RedisError> for ApiError {
    /// 503 only when Redis cannot work right now; anything else is a bug (500).
    fn from(error: redis::RedisError) -> Self {
        if feed_core::redis_client::is_unavailable(&error) {
            Self::store_unavailable(&error, "redis", "Feed store unavailable")
        } else {
            Self::internal(&error, "redis")
        }
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

    #[test]
    fn shedding_asks_to_retry_and_internal_errors_say_nothing_more() {
        let shed = ApiError::Overloaded("Too many writes in flight, retry shortly".into()).into_response();
        assert_eq!(shed.headers().get(axum::http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
        assert_eq!(ApiError::internal(&"secret detail", "api").message(), "Internal error");
        assert_eq!(ApiError::ClientGone.status().as_u16(), 499);
    }
}
