//! Reading the `activities` hypertable: the row, and the two feed queries the API pages
//! through and the fan-out rebuilds Redis from. Both are newest first on
//! `(time, event_id)`, the order of the Redis feeds (score, then member, which starts
//! with the event id), so a page can start in Redis and continue here without an entry
//! repeated or skipped.

use crate::event::ObjectKind;
use crate::feed::{format_time, EntryRef, FeedEntry};
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
    /// post, like, share, follow, unfollow, or a free (feed-me) verb.
    pub verb: String,
    /// `post` or `photo`, for posts, likes and shares.
    pub object_type: Option<String>,
    /// See `object_type`.
    pub object_id: Option<i64>,
    /// The followed user, or the owner of a liked or shared object.
    pub target_name: Option<String>,
    /// The free-text object of a free-verb activity (`payload.object`).
    pub object: Option<String>,
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
            object: self.object.clone(),
            time: format_time(self.time),
        }
    }

    /// Its ref in the Redis feeds, the same as the fan-out's for the same event.
    pub fn entry_ref(&self) -> EntryRef {
        EntryRef { event_id: self.event_id, actor_id: self.actor_id }
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

/// The columns of [`ActivityRow`] from `activities a`.
const COLUMNS: &str =
    "a.time, a.event_id, a.actor_id, a.actor_name, a.verb, a.object_type, a.object_id, a.target_name, a.payload->>'object' AS object";

/// The same, from a subquery `a` that selected [`COLUMNS`].
const SELECTED: &str = "a.time, a.event_id, a.actor_id, a.actor_name, a.verb, a.object_type, a.object_id, a.target_name, a.object";

/// The activities pushed into friends feeds (see `EventType::fans_out`): all but
/// follows. The partial index `activities_fanned_out_by_actor` has the same predicate.
const FANNED_OUT: &str = "a.verb NOT IN ('follow', 'unfollow')";

/// Which of an actor's activities [`authored`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbs {
    /// Everything (`/feed/my`).
    All,
    /// Only what fans out: all but follows and unfollows.
    FannedOut,
}

/// Which entries of a feed a query returns: newest first, after `after` (if any),
/// skipping `skip` of them (page-numbered feeds), at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// Only entries strictly older than this.
    pub after: Option<Position>,
    /// Entries skipped first.
    pub skip: i64,
    /// Entries returned at most.
    pub limit: i64,
}

impl Range {
    /// The newest `limit` entries.
    pub fn newest(limit: i64) -> Self {
        Self { after: None, skip: 0, limit }
    }

    /// Up to `limit` entries older than `after` (or the newest).
    pub fn after(after: Option<Position>, limit: i64) -> Self {
        Self { after, skip: 0, limit }
    }

    /// Entries `skip + 1` to `skip + limit`.
    pub fn skipping(skip: i64, limit: i64) -> Self {
        Self { after: None, skip, limit }
    }
}

/// `actor`'s activities in `range`.
pub async fn authored<'e>(db: impl sqlx::PgExecutor<'e>, actor: i64, verbs: Verbs, range: Range) -> sqlx::Result<Vec<ActivityRow>> {
    sqlx::query_as(&authored_query(verbs, range.after.is_some()))
        .bind(actor)
        .bind(range.after.map(|p| p.time))
        .bind(range.after.map(|p| p.event_id))
        .bind(range.limit)
        .bind(range.skip)
        .fetch_all(db)
        .await
}

/// The text of [`authored`]' query (`$1` actor, `$2`/`$3` time and event id to start
/// after, `$4` limit, `$5` skip), with or without a start (`after`), for tests to EXPLAIN.
pub fn authored_query(verbs: Verbs, after: bool) -> String {
    let filter = if verbs == Verbs::FannedOut { FANNED_OUT } else { "true" };
    let after = older_than_start(after);
    format!(
        "SELECT {COLUMNS} FROM activities a
         WHERE a.actor_id = $1 AND {filter} AND {after}
         ORDER BY a.time DESC, a.event_id DESC LIMIT $4 OFFSET $5"
    )
}

/// The condition "older than the start `($2, $3)`", or none (`$2` is then NULL). The
/// plain `a.time <= $2` beside the row comparison is what lets the planner skip the
/// chunks (or partitions) newer than the start; a `$2 IS NULL OR ...` would not.
fn older_than_start(after: bool) -> &'static str {
    if after {
        "(a.time, a.event_id) < ($2, $3) AND a.time <= $2"
    } else {
        "$2::timestamptz IS NULL"
    }
}

/// The entries of `follower`'s friends feed in `range`: the activities (not follows)
/// of everyone they follow now.
///
/// Searched in growing time windows back from the newest such entry in the range
/// (an hour, then wider by what the last window found: 8× after an empty one, else
/// enough for the entries still wanted, between 2× and 8×; at last without bound):
/// each followee's index range scan then reads only its entries in the window, so a
/// page costs about one index probe per followee and window instead of `range.limit`
/// rows per followee. The first window holding enough entries holds the newest ones,
/// so the answer is the same as without windows.
pub async fn friends(db: &mut sqlx::PgConnection, follower: i64, range: Range) -> sqlx::Result<Vec<ActivityRow>> {
    let newest: Option<DateTime<Utc>> = sqlx::query_scalar(&format!(
        "SELECT max(a.time) FROM follows f
         CROSS JOIN LATERAL (
             SELECT a.time FROM activities a
             WHERE a.actor_id = f.followee_id AND {FANNED_OUT} AND {after}
             ORDER BY a.time DESC, a.event_id DESC LIMIT 1
         ) a
         WHERE f.follower_id = $1",
        after = older_than_start(range.after.is_some())
    ))
    .bind(follower)
    .bind(range.after.map(|p| p.time))
    .bind(range.after.map(|p| p.event_id))
    .fetch_one(&mut *db)
    .await?;
    let Some(newest) = newest else { return Ok(Vec::new()) };
    let (bounded, unbounded) = (friends_query(range.after.is_some(), true), friends_query(range.after.is_some(), false));
    let wanted = (range.limit + range.skip).max(1) as f64;
    let mut window = chrono::TimeDelta::hours(1);
    loop {
        // No lower bound once the window reaches past any plausible activity.
        let lower = newest.checked_sub_signed(window).filter(|_| window < chrono::TimeDelta::days(365 * 50));
        let rows: Vec<ActivityRow> = sqlx::query_as(if lower.is_some() { &bounded } else { &unbounded })
            .bind(follower)
            .bind(range.after.map(|p| p.time))
            .bind(range.after.map(|p| p.event_id))
            .bind(range.limit)
            .bind(range.skip)
            .bind(lower)
            .fetch_all(&mut *db)
            .await?;
        if lower.is_none() || rows.len() as i64 >= range.limit {
            return Ok(rows);
        }
        let found = (rows.len() as i64 + range.skip) as f64;
        let factor = if rows.is_empty() { 8.0 } else { (1.5 * wanted / found).clamp(2.0, 8.0) };
        window = chrono::TimeDelta::milliseconds((window.num_milliseconds() as f64 * factor) as i64);
    }
}

/// The text of [`friends`]' query (`$1` follower, `$2`/`$3` time and event id to start
/// after, `$4` limit, `$5` skip, `$6` the window's lower time bound), with or without a
/// start (`after`) and a lower bound (`bounded`; else `$6` is NULL), for benchmarks and
/// tests to EXPLAIN. Each followee's newest entries in the window come from a range scan
/// of `activities_fanned_out_by_actor` (at most `$4 + $5` each), then the newest overall
/// are kept.
pub fn friends_query(after: bool, bounded: bool) -> String {
    let after = older_than_start(after);
    let lower = if bounded { "a.time >= $6" } else { "$6::timestamptz IS NULL" };
    format!(
        "SELECT {SELECTED} FROM follows f
         CROSS JOIN LATERAL (
             SELECT {COLUMNS} FROM activities a
             WHERE a.actor_id = f.followee_id AND {FANNED_OUT} AND {after} AND {lower}
             ORDER BY a.time DESC, a.event_id DESC LIMIT $4 + $5
         ) a
         WHERE f.follower_id = $1
         ORDER BY a.time DESC, a.event_id DESC LIMIT $4 OFFSET $5"
    )
}
