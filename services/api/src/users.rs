//! User accounts: created through the pipeline like every other change. The functions
//! take only the database and the feed stream, so tools (`feedctl`) call them without
//! the rest of the API.

use crate::auth::hash_key;
use crate::domain::Username;
use crate::error::ApiError;
use crate::pipeline::{Recorded, Stream};
use feed_core::event::{Event, EventType, UserRef};
use rand::distr::{Alphanumeric, SampleString};
use sqlx::PgPool;

/// The demo accounts of the reference, created only when the operator asks.
pub const DEMO_USERS: [(&str, &str); 3] = [("ivan", "abc123"), ("nico", "abc124"), ("eric", "abc125")];

/// Looks a user up by name.
pub async fn find_by_name(db: &PgPool, name: &str) -> Result<Option<UserRef>, ApiError> {
    let row: Option<(i64, String)> = sqlx::query_as("SELECT id, name FROM users WHERE name = $1").bind(name).fetch_optional(db).await?;
    Ok(row.map(|(id, name)| UserRef { id, name }))
}

/// Creates a user with `key` (a fresh random one when `None`) through `feed`, and
/// returns the user and the key. The key is only ever stored hashed; this is the one
/// chance to see it.
pub async fn create_user(db: &PgPool, feed: &Stream, name: &Username, key: Option<&str>) -> Result<(UserRef, String), ApiError> {
    if find_by_name(db, name.as_str()).await?.is_some() {
        return Err(ApiError::Conflict("User already exists".into()));
    }
    let key = key.map(str::to_string).unwrap_or_else(new_key);
    let id: i64 = sqlx::query_scalar("SELECT nextval('user_ids')").fetch_one(db).await?;
    let user = UserRef { id, name: name.as_str().to_string() };
    feed.record(&key_event(EventType::UserCreated, &user, &key), None).await?;
    Ok((user, key))
}

/// A `user_created` or `key_rotated` event: the key travels only as its hash.
fn key_event(kind: EventType, user: &UserRef, key: &str) -> Event {
    Event::new(kind, user.clone(), None, None, serde_json::json!({ "key_hash": hash_key(key) }))
}

/// A fresh random app key.
fn new_key() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// Replaces `name`'s key with a fresh one through `feed` and returns the user, the new
/// key and whether the awaited consumers applied it before returning (so the new key
/// already works). The old key stops working at once for API instances that have not
/// seen it recently, and within [`crate::auth::AUTH_CACHE_TTL`] everywhere.
pub async fn rotate_key(db: &PgPool, feed: &Stream, name: &str) -> Result<(UserRef, String, Recorded), ApiError> {
    let user = find_by_name(db, name).await?.ok_or_else(|| ApiError::NotFound("User not found".into()))?;
    let key = new_key();
    let recorded = feed.record(&key_event(EventType::KeyRotated, &user, &key), None).await?;
    Ok((user, key, recorded))
}

/// Creates the missing demo users (ivan, nico, eric) with their well-known keys.
pub async fn seed_demo_users(db: &PgPool, feed: &Stream) -> anyhow::Result<()> {
    for (name, key) in DEMO_USERS {
        let username = Username::parse(name).ok_or_else(|| anyhow::anyhow!("demo name {name} is not a valid user name"))?;
        if find_by_name(db, name).await?.is_none() {
            create_user(db, feed, &username, Some(key)).await.map_err(|e| anyhow::anyhow!("cannot seed {name}: {e}"))?;
            tracing::info!(name, "demo user created");
        }
    }
    Ok(())
}
