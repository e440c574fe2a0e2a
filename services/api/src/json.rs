//! The JSON body extractor, with the reference's error messages instead of axum's.

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use bytes::Bytes;
use serde_json::{Map, Value};

/// A request body that is a JSON object. Rejections:
/// - content type not JSON → 400 `Must be json request`;
/// - body over the limit → 413;
/// - body that does not parse, or is not an object → 400 `Bad Request`.
pub struct JsonObject(pub Map<String, Value>);

impl JsonObject {
    /// The string at `field`, if it is one.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.0.get(field).and_then(Value::as_str)
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::bad_request("Must be json request"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("Bad Request")
            }
        })?;
        match serde_json::from_slice(&bytes) {
            // NUL cannot be stored in PostgreSQL text or jsonb: refuse it here rather
            // than acknowledge an event no consumer can apply.
            Ok(Value::Object(map)) if !contains_nul(&map) => Ok(JsonObject(map)),
            _ => Err(ApiError::bad_request("Bad Request")),
        }
    }
}

fn contains_nul(map: &Map<String, Value>) -> bool {
    let mut maps = vec![map];
    let mut values: Vec<&Value> = Vec::new();
    loop {
        if let Some(map) = maps.pop() {
            if map.keys().any(|k| k.contains('\0')) {
                return true;
            }
            values.extend(map.values());
        } else if let Some(value) = values.pop() {
            match value {
                Value::String(s) if s.contains('\0') => return true,
                Value::Array(items) => values.extend(items),
                Value::Object(inner) => maps.push(inner),
                _ => {}
            }
        } else {
            return false;
        }
    }
}
