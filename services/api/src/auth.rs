//! `X-App-Key` authentication as an extractor: a handler that takes [`AuthUser`] only
//! runs for a known key.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// The header carrying the app key.
pub const KEY_HEADER: &str = "x-app-key";

/// Known keys (by hash) for a short while, so a feed read costs one Redis call and no
/// PostgreSQL query. Only hits are cached: a key created a moment ago is found at once.
/// A rotated or revoked key stays valid for at most [`AUTH_CACHE_TTL`].
pub type AuthCache = moka::sync::Cache<String, AuthUser>;

/// How long a known key is trusted without asking PostgreSQL again.
pub const AUTH_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// An empty cache for up to 100,000 keys.
pub fn auth_cache() -> AuthCache {
    moka::sync::Cache::builder().max_capacity(100_000).time_to_live(AUTH_CACHE_TTL).build()
}

/// SHA-256 of a key, hex-encoded: what the database stores instead of the key. Keys are
/// random tokens (or the operator's demo keys), so a fast hash suffices for lookups.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The authenticated caller.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// User name.
    pub name: String,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// Last change to the account.
    pub updated_at: DateTime<Utc>,
    /// The key the caller presented (`/me` echoes it as `auth_token`).
    #[sqlx(skip)]
    pub key: String,
}

impl AuthUser {
    /// The user as events name them.
    pub fn user_ref(&self) -> feed_core::event::UserRef {
        feed_core::event::UserRef { id: self.id, name: self.name.clone() }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let mut keys = parts.headers.get_all(KEY_HEADER).iter();
        let key = keys.next().ok_or_else(|| ApiError::bad_request("Key is missing"))?;
        if keys.next().is_some() {
            return Err(ApiError::bad_request("Only one X-App-Key header is allowed"));
        }
        let key = key.to_str().map_err(|_| ApiError::Unauthorized("Key is not valid".into()))?.trim();
        if key.is_empty() {
            return Err(ApiError::Unauthorized("Key is not valid".into()));
        }
        let hash = hash_key(key);
        if let Some(user) = state.auth_cache.get(&hash) {
            return Ok(AuthUser { key: key.to_string(), ..user });
        }
        let user: Option<AuthUser> = sqlx::query_as("SELECT id, name, created_at, updated_at FROM users WHERE key_hash = $1")
            .bind(&hash)
            .fetch_optional(&state.db)
            .await?;
        let user = user.ok_or_else(|| ApiError::Unauthorized("Key is not valid".into()))?;
        state.auth_cache.insert(hash, user.clone());
        Ok(AuthUser { key: key.to_string(), ..user })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(super::hash_key("abc123"), "6ca13d52ca70c883e0f0bb101e425a89e8624de51db2d2392593af6a84118090");
    }
}
