//! Reading the `activities` hypertable: the row, and the two feed queries the API pages
//! through and the fan-out rebuilds Redis from. Both are newest first on
//! `(time, event_id)`, the order of the Redis feeds (score, then member, which starts
//! with the event id), so a page can start in Redis and continue here without an entry
//! repeated or skipped.

use crate::event::ObjectKind;
use crate::feed::{encode_member, format_time, FeedEntry};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One activity as the feed queries read it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ActivityRow {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Its event.
    pub event_id: Uuid,
    /// Who did it.
    pub actor_id: i64,
    /// See `actor_id`.
    pub actor_name: String,
    /// post, like, share, follow or unfollow.
    pub verb: String,
    /// `post` or `photo`, for posts, likes and shares.
    pub object_type: Option<String>,
    /// See `object_type`.
    pub object_id: Option<i64>,
    /// The followed user, or the owner of a liked or shared object.
    pub target_name: Option<String>,
}

impl ActivityRow {
    /// The entry a feed shows for it.
    pub fn entry(&self) -> FeedEntry {
        FeedEntry {
            actor_name: self.actor_name.clone(),
            verb: self.verb.clone(),
            object_id: self.object_id,
            object_type: self.object_type.as_deref().and_then(ObjectKind::parse),
            target_name: self.target_name.clone(),
            time: format_time(self.time),
        }
    }

    /// Its Redis sorted-set member, byte-identical to the fan-out's for the same event.
    pub fn member(&self) -> Option<String> {
        encode_member(&self.event_id, self.actor_id, &self.entry())
    }

    /// Where a page ending with it continues.
    pub fn position(&self) -> Position {
        Position { time: self.time, event_id: self.event_id }
    }
}

/// A place in a feed: the next page holds the entries strictly older than it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The entry's time.
    pub time: DateTime<Utc>,
    /// The entry's event id, which orders entries of the same time.
    pub event_id: Uuid,
}

const COLUMNS: &str = "a.time, a.event_id, a.actor_id, a.actor_name, a.verb, a.object_type, a.object_id, a.target_name";

/// The verbs pushed into friends feeds (see `EventType::fans_out`).
const FANNED_OUT: &str = "a.verb IN ('post', 'like', 'share')";

/// Which of an actor's activities [`authored`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbs {
    /// Everything (`/feed/my`).
    All,
    /// Only what fans out: posts, likes, shares.
    FannedOut,
}

/// Up to `limit` of `actor`'s activities older than `after` (or the newest), newest first.
pub async fn authored<'e>(
    db: impl sqlx::PgExecutor<'e>,
    actor: i64,
    verbs: Verbs,
    after: Option<Position>,
    limit: i64,
) -> sqlx::Result<Vec<ActivityRow>> {
    let filter = if verbs == Verbs::FannedOut { FANNED_OUT } else { "true" };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM activities a
         WHERE a.actor_id = $1 AND {filter} AND ($2::timestamptz IS NULL OR (a.time, a.event_id) < ($2, $3))
         ORDER BY a.time DESC, a.event_id DESC LIMIT $4"
    ))
    .bind(actor)
    .bind(after.map(|p| p.time))
    .bind(after.map(|p| p.event_id))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Up to `limit` entries of `follower`'s friends feed older than `after` (or the
/// newest): the posts, likes and shares of everyone they follow now, newest first.
pub async fn friends<'e>(
    db: impl sqlx::PgExecutor<'e>,
    follower: i64,
    after: Option<Position>,
    limit: i64,
) -> sqlx::Result<Vec<ActivityRow>> {
    sqlx::query_as(&friends_query())
        .bind(follower)
        .bind(after.map(|p| p.time))
        .bind(after.map(|p| p.event_id))
        .bind(limit)
        .fetch_all(db)
        .await
}

/// The text of [`friends`]' query (`$1` follower, `$2`/`$3` time and event id to start
/// after, or NULL, `$4` limit), for benchmarks to EXPLAIN. Each followee's newest
/// entries come from a range scan of `activities_fanned_out_by_actor` (at most `$4`
/// each), then the newest overall are kept.
pub fn friends_query() -> String {
    format!(
        "SELECT {COLUMNS} FROM follows f
         CROSS JOIN LATERAL (
             SELECT {COLUMNS} FROM activities a
             WHERE a.actor_id = f.followee_id AND {FANNED_OUT}
               AND ($2::timestamptz IS NULL OR (a.time, a.event_id) < ($2, $3))
             ORDER BY a.time DESC, a.event_id DESC LIMIT $4
         ) a
         WHERE f.follower_id = $1
         ORDER BY a.time DESC, a.event_id DESC LIMIT $4"
    )
}
