//! Rebuilding the Redis feeds from PostgreSQL (the `activities` hypertable and the
//! `follows` projection), for when Redis lost its data. The result is what the fan-out
//! produces: the same members (see `feed_core::feed::encode_member`), the same scores,
//! the same trimming (the newest `max_len` by time, then event id).

use chrono::{DateTime, Utc};
use feed_core::event::ObjectKind;
use feed_core::feed::{encode_member, format_time, score, FeedEntry, Keys};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;

/// Rebuilds feeds.
pub struct Rebuilder {
    db: PgPool,
    redis: ConnectionManager,
    keys: Keys,
    max_len: usize,
}

#[derive(sqlx::FromRow)]
struct Row {
    time: DateTime<Utc>,
    event_id: Uuid,
    actor_id: i64,
    actor_name: String,
    verb: String,
    object_type: Option<String>,
    object_id: Option<i64>,
    target_name: Option<String>,
}

const COLUMNS: &str = "a.time, a.event_id, a.actor_id, a.actor_name, a.verb, a.object_type, a.object_id, a.target_name";
const FANNED_OUT: &str = "a.verb IN ('post', 'like', 'share')";

impl Rebuilder {
    /// A rebuilder writing under `keys`, keeping `max_len` entries per feed.
    pub fn new(db: PgPool, redis: ConnectionManager, keys: Keys, max_len: usize) -> Self {
        Self { db, redis, keys, max_len }
    }

    /// Every user id, for driving [`Rebuilder::rebuild_user`] with progress.
    pub async fn user_ids(&self) -> anyhow::Result<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM users ORDER BY id").fetch_all(&self.db).await?)
    }

    /// Rebuilds everything the fan-out keeps for `user`: its followers set, its
    /// authored entries and its friends feed. Each key is replaced atomically.
    pub async fn rebuild_user(&mut self, user: i64) -> anyhow::Result<()> {
        let followers: Vec<i64> = sqlx::query_scalar("SELECT follower_id FROM follows WHERE followee_id = $1")
            .bind(user)
            .fetch_all(&self.db)
            .await?;
        let authored: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM activities a WHERE a.actor_id = $1 AND {FANNED_OUT}
             ORDER BY a.time DESC, a.event_id DESC LIMIT $2"
        ))
        .bind(user)
        .bind(self.max_len as i64)
        .fetch_all(&self.db)
        .await?;
        // Each followee's newest entries (index range scans), then the newest overall.
        let friends: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM follows f
             CROSS JOIN LATERAL (
                 SELECT {COLUMNS} FROM activities a
                 WHERE a.actor_id = f.followee_id AND {FANNED_OUT}
                 ORDER BY a.time DESC, a.event_id DESC LIMIT $2
             ) a
             WHERE f.follower_id = $1
             ORDER BY a.time DESC, a.event_id DESC LIMIT $2"
        ))
        .bind(user)
        .bind(self.max_len as i64)
        .fetch_all(&self.db)
        .await?;

        let mut pipe = redis::pipe();
        pipe.atomic();
        let followers_key = self.keys.followers(user);
        pipe.del(&followers_key).ignore();
        if !followers.is_empty() {
            pipe.sadd(&followers_key, followers).ignore();
        }
        for (key, rows) in [(self.keys.authored(user), authored), (self.keys.friends(user), friends)] {
            pipe.del(&key).ignore();
            let members: Vec<(i64, String)> = rows.iter().filter_map(|r| Some((score(r.time), member(r)?))).collect();
            if !members.is_empty() {
                pipe.zadd_multiple(&key, &members).ignore();
            }
        }
        pipe.query_async::<()>(&mut self.redis).await?;
        Ok(())
    }
}

fn member(row: &Row) -> Option<String> {
    let entry = FeedEntry {
        actor_name: row.actor_name.clone(),
        verb: row.verb.clone(),
        object_id: row.object_id,
        object_type: row.object_type.as_deref().and_then(ObjectKind::parse),
        target_name: row.target_name.clone(),
        time: format_time(row.time),
    };
    encode_member(&row.event_id, row.actor_id, &entry)
}
