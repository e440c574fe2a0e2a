//! The friends feed as `/feed/friends` and feed-me's `/feed/<username>/friends` read
//! it: from Redis where Redis can be trusted (`feed_core::friends`), caught up first for
//! a reader the fan-out skipped while it was inactive, and continued from PostgreSQL past
//! what Redis holds, in the same order and with the same cursors.

use crate::error::ApiError;
use crate::routes::page::Cursor;
use crate::AppState;
use feed_core::activities::{self, Range};
use feed_core::feed::feeds_complete;
use feed_core::friends::{self, Place};
use std::time::Duration;

/// How long a returning reader's first read waits for the writer to be past what the
/// fan-out skipped for it; past that the read is answered from what PostgreSQL has,
/// marked as rebuilding, and the next read tries again.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// One entry of a page: where it is, and its JSON.
pub struct Entry {
    /// Its place, for the next page's cursor.
    pub cursor: Cursor,
    /// The entry as the feeds return it.
    pub json: feed_core::friends::Body,
}

/// A page of a friends feed.
pub struct Page {
    /// Newest first.
    pub entries: Vec<Entry>,
    /// Whether the page may be incomplete: Redis lost the feeds and they are being
    /// rebuilt, or the reader's catch-up could not finish yet.
    pub rebuilding: bool,
}

/// Where the range starts: strictly after a cursor, or after skipping whole entries
/// (feed-me's page numbers).
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// Strictly after this entry (the newest entries when `None`).
    After(Option<Cursor>),
    /// After the newest `n` entries.
    Skip(usize),
}

/// Up to `count` entries of `reader`'s friends feed from `start`.
pub async fn page(state: &AppState, reader: i64, start: Start, count: usize) -> Result<Page, ApiError> {
    let (after, skip) = match start {
        Start::After(cursor) => (cursor, 0),
        Start::Skip(n) => (None, n),
    };
    let place = after.map(|c| Place { micros: c.micros, event_id: c.id });
    let wanted = skip + count;
    let mut read = friends::read(&state.redis, &state.keys, &state.bodies, reader, place, wanted).await?;
    let complete_feeds = feeds_complete(read.generation.as_deref());
    let mut caught_up = read.stale.is_empty();
    if !caught_up && complete_feeds {
        caught_up = catch_up(state, reader, &read.stale).await?;
        if caught_up {
            read = friends::read(&state.redis, &state.keys, &state.bodies, reader, place, wanted).await?;
        }
    }
    let rebuilding = !complete_feeds || !caught_up;
    // A reader not caught up may lack entries anywhere: its page comes from PostgreSQL.
    let mut entries: Vec<Entry> = if caught_up {
        read.entries
            .into_iter()
            .filter_map(|e| Some(Entry { cursor: Cursor { micros: e.place.micros, id: e.place.event_id }, json: e.body? }))
            .collect()
    } else {
        Vec::new()
    };
    if !caught_up || (entries.len() < wanted && !read.complete) {
        // Past what Redis holds (or while it cannot be trusted): from PostgreSQL.
        let mut db = state.db.acquire().await?;
        let range = match start {
            Start::After(_) => {
                let from = entries.last().map(|e| e.cursor).or(after).and_then(Cursor::position);
                Range::after(from, (wanted - entries.len()) as i64)
            }
            Start::Skip(_) => {
                entries.clear();
                Range::skipping(skip as i64, count as i64)
            }
        };
        let rows = activities::friends(&mut db, reader, range).await?;
        metrics::counter!("feed_friends_pages_from_db_total").increment(1);
        for row in rows {
            let json = serde_json::to_vec(&row.entry()).map_err(|e| ApiError::internal(&e, "api"))?;
            entries.push(Entry { cursor: Cursor::at(row.time, row.event_id), json: json.into() });
        }
    } else if skip > 0 {
        entries.drain(..skip.min(entries.len()));
    }
    entries.truncate(count);
    Ok(Page { entries, rebuilding })
}

/// Catches a reader up after the fan-out skipped it (see `feed_core::friends::catch_up`):
/// waits until the writer and the fan-out are past every stale mark, then merges the
/// reader's newest entries from PostgreSQL into its feed. `false` if the wait expired.
async fn catch_up(state: &AppState, reader: i64, stale: &[(i32, i64)]) -> Result<bool, ApiError> {
    let started = std::time::Instant::now();
    let waits = stale.iter().map(|(partition, next)| state.feed.wait_applied(*partition, *next, CATCH_UP_WAIT));
    if !futures::future::join_all(waits).await.into_iter().all(|applied| applied) {
        metrics::counter!("feed_catch_ups_total", "outcome" => "waiting").increment(1);
        return Ok(false);
    }
    let max_len = state.feed_settings.max_len;
    let mut db = state.db.acquire().await?;
    let rows = activities::friends(&mut db, reader, Range::newest(max_len as i64)).await?;
    drop(db);
    friends::catch_up(&state.redis, &state.keys, reader, max_len, stale, &rows).await?;
    metrics::counter!("feed_catch_ups_total", "outcome" => "done").increment(1);
    metrics::histogram!("feed_catch_up_duration_seconds").record(started.elapsed().as_secs_f64());
    Ok(true)
}
