//! Reading a friends feed from Redis: the refs the fan-out pushed into the reader's
//! feed, merged with the authored sets of the hot authors it follows, hydrated from the
//! actors' bodies; and how far down that can be trusted, past which the caller goes on
//! from PostgreSQL (`crate::activities::friends`), in the same order.
//!
//! Two round trips, each a handful of commands sent at once: the reader's own slot
//! (its page of refs, its hot followees, its meta — and it counts as active), then the
//! bodies of those refs and the hot authors' pages with theirs.
//!
//! How far it can be trusted: each sorted set involved may lack entries older than its
//! trim mark (the score of the newest entry trimmed from it, or inherited from an author
//! set copied into it). The merged page stops above the highest mark, and at the first
//! ref whose body is gone (trimmed or deleted meanwhile); if it stops short, the caller
//! continues from PostgreSQL strictly after its last entry.
//!
//! Also here: how a reader that was skipped while inactive catches up ([`catch_up`]).

use crate::activities::ActivityRow;
use crate::feed::{score, EntryRef, Scored};
use crate::keys::Keys;
use crate::redis_client::Redis;
use redis::Script;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use uuid::Uuid;

/// A place in a feed: the next page holds the entries strictly older than it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// Microseconds since the epoch (the entry's score).
    pub micros: i64,
    /// The entry's event id, which orders entries of the same time.
    pub event_id: Uuid,
}

/// The reader's page of pushed refs, its hot followees and its meta hash; touches its
/// activity. KEYS: feed, hot-following, reader. ARGV: max score (`+inf` or the
/// cursor's), the cursor's event id (16 bytes, or ''), count, now (ms). Returns `{refs
/// and scores (flat, newest first, strictly after the cursor), hot followees, the meta
/// hash (flat)}`.
static READ_START: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local active = tonumber(redis.call('HGET', KEYS[3], 'active') or '0')
if tonumber(ARGV[4]) > active then redis.call('HSET', KEYS[3], 'active', ARGV[4]) end
return {PAGE(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])), redis.call('SMEMBERS', KEYS[2]), redis.call('HGETALL', KEYS[3])}
"#
        .replace("PAGE", PAGE_FN)
        .as_str(),
    )
});

/// A hot author's page with its bodies. KEYS: authored, bodies, author. ARGV: as
/// [`READ_START`] but now. Returns `{refs and scores (flat), their bodies ('' when
/// gone), the trim mark or ''}`.
static AUTHORED_PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local page = PAGE(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]))
local bodies = {}
for i = 1, #page, 2 do bodies[#bodies + 1] = redis.call('HGET', KEYS[2], string.sub(page[i], 1, 16)) or '' end
return {page, bodies, redis.call('HGET', KEYS[3], 'trimmed') or ''}
"#
        .replace("PAGE", PAGE_FN)
        .as_str(),
    )
});

/// Lua: up to `count` members of a sorted set strictly after (`max`, `id`), newest
/// first, as a flat member/score list.
const PAGE_FN: &str = r#"(function(key, max, id, count)
    local out, offset = {}, 0
    while true do
        local got = redis.call('ZREVRANGEBYSCORE', key, max, '-inf', 'WITHSCORES', 'LIMIT', offset, count)
        for i = 1, #got, 2 do
            if #out < 2 * count and (id == '' or got[i + 1] ~= max or string.sub(got[i], 1, 16) < id) then
                out[#out + 1] = got[i]
                out[#out + 1] = got[i + 1]
            end
        end
        if #out >= 2 * count or #got < 2 * count then return out end
        offset = offset + count
    end
end)"#;

/// One entry read from Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it is in the feed.
    pub place: Place,
    /// Its ref.
    pub entry: EntryRef,
    /// Its JSON, as reads return it; `None` when its body is gone.
    pub body: Option<Vec<u8>>,
}

/// What one sorted set contributed to a page.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// Its entries after the cursor, newest first.
    pub entries: Vec<Entry>,
    /// Its trim mark: it may lack entries at or below this score.
    pub trimmed: Option<i64>,
}

/// A page read from Redis.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// Newest first, at most the count asked for.
    pub entries: Vec<Entry>,
    /// Whether Redis holds everything older than the last entry too (nothing trimmed,
    /// no body missing): if the page is short, there is nothing more anywhere.
    pub complete: bool,
    /// Stale marks: partition → offset below which pushes to this reader were skipped
    /// while it was inactive. Non-empty means the feed must catch up first.
    pub stale: Vec<(i32, i64)>,
}

/// The merge: the union of `sources` (a ref seen twice counts once), newest first,
/// cut above the highest trim mark and at the first entry without a body, at most
/// `count`.
pub fn merge(sources: Vec<Source>, count: usize) -> Page {
    let horizon = sources.iter().filter_map(|s| s.trimmed).max();
    let mut seen = HashSet::new();
    let mut all: Vec<Entry> = sources.into_iter().flat_map(|s| s.entries).filter(|e| seen.insert(e.entry.event_id)).collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.place));
    let mut entries = Vec::with_capacity(count.min(all.len()));
    let mut complete = horizon.is_none();
    for entry in all {
        if entries.len() == count {
            break;
        }
        if horizon.is_some_and(|h| entry.place.micros <= h) || entry.body.is_none() {
            complete = false;
            break;
        }
        entries.push(entry);
    }
    Page { entries, complete, stale: Vec::new() }
}

/// Parses a flat member/score list.
fn refs(flat: Scored) -> Vec<(EntryRef, i64)> {
    flat.into_iter().filter_map(|(member, micros)| Some((EntryRef::parse(&member)?, micros))).collect()
}

fn place(entry: EntryRef, micros: i64) -> Place {
    Place { micros, event_id: entry.event_id }
}

/// Reads `count` entries of `reader`'s friends feed strictly after `after` (the newest
/// when `None`), and counts the read as the reader's activity.
pub async fn read(redis: &Redis, keys: &Keys, reader: i64, after: Option<Place>, count: usize) -> redis::RedisResult<Page> {
    let (max, id) = match after {
        Some(p) => (p.micros.to_string(), p.event_id.as_bytes().to_vec()),
        None => ("+inf".to_string(), Vec::new()),
    };
    let mut start = READ_START.prepare_invoke();
    start.key(keys.friends(reader)).key(keys.hot_following(reader)).key(keys.reader(reader));
    start.arg(&max).arg(id.as_slice()).arg(count).arg(chrono::Utc::now().timestamp_millis());
    let (pushed, hot, meta): (Scored, Vec<i64>, HashMap<String, String>) = start.invoke_async(&mut redis.clone()).await?;
    let pushed = refs(pushed);

    // Bodies of the pushed refs, per actor; the hot authors' pages.
    let mut by_actor: HashMap<i64, Vec<EntryRef>> = HashMap::new();
    for (entry, _) in &pushed {
        by_actor.entry(entry.actor_id).or_default().push(*entry);
    }
    let bodies = by_actor.iter().map(|(actor, entries)| {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(keys.bodies(*actor));
        for entry in entries {
            cmd.arg(entry.body_field().as_slice());
        }
        let mut redis = redis.clone();
        async move { cmd.query_async::<Vec<Option<Vec<u8>>>>(&mut redis).await }
    });
    let hot_pages = hot.iter().map(|author| {
        let mut page = AUTHORED_PAGE.prepare_invoke();
        page.key(keys.authored(*author)).key(keys.bodies(*author)).key(keys.author(*author));
        page.arg(&max).arg(id.as_slice()).arg(count);
        let mut redis = redis.clone();
        async move { page.invoke_async::<(Scored, Vec<Vec<u8>>, String)>(&mut redis).await }
    });
    let (bodies, hot_pages) = tokio::try_join!(futures::future::try_join_all(bodies), futures::future::try_join_all(hot_pages))?;

    let mut found: HashMap<Uuid, Vec<u8>> = HashMap::new();
    for ((_, entries), bodies) in by_actor.iter().zip(bodies) {
        for (entry, body) in entries.iter().zip(bodies) {
            if let Some(body) = body {
                found.insert(entry.event_id, body);
            }
        }
    }
    let parse_mark = |raw: Option<&String>| raw.and_then(|m| m.parse::<f64>().ok()).map(|m| m as i64);
    let mut sources = vec![Source {
        entries: pushed
            .into_iter()
            .map(|(entry, micros)| Entry { place: place(entry, micros), entry, body: found.remove(&entry.event_id) })
            .collect(),
        trimmed: parse_mark(meta.get("trimmed")),
    }];
    for (page, bodies, trimmed) in hot_pages {
        let entries = refs(page)
            .into_iter()
            .zip(bodies)
            .map(|((entry, micros), body)| Entry { place: place(entry, micros), entry, body: (!body.is_empty()).then_some(body) })
            .collect();
        sources.push(Source { entries, trimmed: parse_mark(Some(&trimmed)) });
    }
    let mut page = merge(sources, count);
    page.stale =
        meta.iter().filter_map(|(field, value)| Some((field.strip_prefix("stale:")?.parse().ok()?, value.parse().ok()?))).collect();
    Ok(page)
}

/// Adds rows read from PostgreSQL to a reader's feed, for those of its followees it
/// still follows by its own record, and clears the stale marks it caught up on (if no
/// push was skipped meanwhile). KEYS: feed, following, reader. ARGV: maxlen, the rows'
/// trim mark (or ''), the number n of stale marks, n × (field, value), then
/// score/ref/actor triples.
static CATCH_UP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local maxlen = tonumber(ARGV[1])
local n = tonumber(ARGV[3])
local first = 4 + 2 * n
for i = first, #ARGV, 3 do
    local current = redis.call('HGET', KEYS[2], ARGV[i + 2])
    if current and string.sub(current, -2) == '|1' then redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
local extra = redis.call('ZCARD', KEYS[1]) - maxlen
local mark = ARGV[2]
if extra > 0 then
    local gone = redis.call('ZRANGE', KEYS[1], extra - 1, extra - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
    if mark == '' or tonumber(gone[2]) > tonumber(mark) then mark = gone[2] end
end
if mark ~= '' then
    local current = redis.call('HGET', KEYS[3], 'trimmed')
    if (not current) or tonumber(current) < tonumber(mark) then redis.call('HSET', KEYS[3], 'trimmed', mark) end
end
for i = 4, first - 1, 2 do
    if redis.call('HGET', KEYS[3], ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[3], ARGV[i]) end
end
return 0
"#,
    )
});

/// Brings a reader's feed up to date after pushes were skipped while it was inactive:
/// `rows` are its newest `maxlen` friends entries from PostgreSQL, read once the writer
/// was past every `stale` mark (the caller waits for that). They are added for the
/// followees it still follows (an unfollow applied meanwhile wins), the feed is trimmed,
/// and the marks caught up on are cleared. Entries of objects deleted meanwhile are
/// taken out again afterwards (a delete's sweep that ran before the add did not see
/// them).
pub async fn catch_up(
    redis: &Redis,
    keys: &Keys,
    reader: i64,
    maxlen: usize,
    stale: &[(i32, i64)],
    rows: &[ActivityRow],
) -> redis::RedisResult<()> {
    let mut call = CATCH_UP.prepare_invoke();
    call.key(keys.friends(reader)).key(keys.following(reader)).key(keys.reader(reader));
    let mark = match rows.last() {
        Some(oldest) if rows.len() >= maxlen => score(oldest.time).to_string(),
        _ => String::new(),
    };
    call.arg(maxlen).arg(mark).arg(stale.len());
    for (partition, offset) in stale {
        call.arg(format!("stale:{partition}")).arg(offset.to_string());
    }
    for row in rows {
        call.arg(score(row.time)).arg(row.entry_ref().to_bytes().as_slice()).arg(row.actor_id);
    }
    call.invoke_async::<()>(&mut redis.clone()).await?;
    let objects: HashSet<String> = rows.iter().filter_map(|r| Some(format!("{}:{}", r.object_type.as_deref()?, r.object_id?))).collect();
    let objects: Vec<String> = objects.into_iter().collect();
    let checks = objects.iter().map(|object| {
        let mut redis = redis.clone();
        let key = keys.deleted(object);
        async move { redis::cmd("EXISTS").arg(key).query_async::<bool>(&mut redis).await }
    });
    let deleted = futures::future::try_join_all(checks).await?;
    let gone: HashSet<&String> = objects.iter().zip(deleted).filter(|(_, d)| *d).map(|(o, _)| o).collect();
    let refs: Vec<Vec<u8>> = rows
        .iter()
        .filter(|r| r.object_type.as_deref().zip(r.object_id).is_some_and(|(kind, id)| gone.contains(&format!("{kind}:{id}"))))
        .map(|r| r.entry_ref().to_bytes().to_vec())
        .collect();
    if !refs.is_empty() {
        redis::cmd("ZREM").arg(keys.friends(reader)).arg(refs).query_async::<()>(&mut redis.clone()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(micros: i64, id: u128, body: bool) -> Entry {
        let entry = EntryRef { event_id: Uuid::from_u128(id), actor_id: 1 };
        Entry { place: Place { micros, event_id: entry.event_id }, entry, body: body.then(|| b"{}".to_vec()) }
    }

    #[test]
    fn sources_merge_newest_first_once_each() {
        let pushed = Source { entries: vec![entry(50, 5, true), entry(30, 3, true)], trimmed: None };
        let hot = Source { entries: vec![entry(40, 4, true), entry(30, 3, true), entry(10, 1, true)], trimmed: None };
        let page = merge(vec![pushed, hot], 10);
        assert_eq!(page.entries.iter().map(|e| e.place.micros).collect::<Vec<_>>(), vec![50, 40, 30, 10]);
        assert!(page.complete);
        assert_eq!(
            merge(vec![Source { entries: vec![entry(50, 5, true), entry(50, 6, true)], trimmed: None }], 1).entries[0].place.event_id,
            Uuid::from_u128(6),
            "equal scores: the greater id first, as in Redis and PostgreSQL"
        );
    }

    #[test]
    fn the_page_stops_above_the_highest_trim_mark_and_at_a_missing_body() {
        let pushed = Source { entries: vec![entry(50, 5, true), entry(20, 2, true)], trimmed: Some(15) };
        let hot = Source { entries: vec![entry(40, 4, true), entry(10, 1, true)], trimmed: Some(30) };
        let page = merge(vec![pushed, hot], 10);
        assert_eq!(
            page.entries.iter().map(|e| e.place.micros).collect::<Vec<_>>(),
            vec![50, 40],
            "below 30 the hot author's set may lack entries"
        );
        assert!(!page.complete);
        let page = merge(vec![Source { entries: vec![entry(50, 5, true), entry(40, 4, false), entry(30, 3, true)], trimmed: None }], 10);
        assert_eq!(page.entries.len(), 1);
        assert!(!page.complete, "the rest comes from PostgreSQL");
        let full = merge(vec![Source { entries: vec![entry(50, 5, true), entry(40, 4, true)], trimmed: None }], 1);
        assert_eq!(full.entries.len(), 1);
    }
}
