//! Reading a friends feed from Redis: the refs the fan-out pushed into the reader's
//! feed, merged with the authored sets of the hot authors it follows, hydrated from the
//! actors' bodies; and how far down that can be trusted, past which the caller goes on
//! from PostgreSQL (`crate::activities::friends`), in the same order.
//!
//! Refs first: on a single Redis one script reads the reader's page of refs, its hot
//! followees' pages and the feeds' generation (it names the hot authors' keys as it
//! learns them, which only a single Redis allows); on a Redis Cluster that is two round
//! trips (the reader's slot, then the hot authors' pages). Then bodies: a body never
//! changes once written (a deleted entry's ref leaves the feeds, so its body is not asked
//! for again), so each reading process keeps the recent ones ([`Bodies`]) and asks Redis
//! only for the others, one `HMGET` per actor. Either way the read counts as the
//! reader's activity.
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
use std::sync::{Arc, LazyLock};
use uuid::Uuid;

/// A place in a feed: the next page holds the entries strictly older than it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// Microseconds since the epoch (the entry's score).
    pub micros: i64,
    /// The entry's event id, which orders entries of the same time.
    pub event_id: Uuid,
}

/// An entry's JSON, shared between the pages that show it.
pub type Body = Arc<[u8]>;

/// The bodies a process read recently, by event id, so a page costs Redis only the refs
/// and the bodies it has not seen (see the module documentation for why that is exact).
#[derive(Clone)]
pub struct Bodies(moka::sync::Cache<Uuid, Body>);

impl Bodies {
    /// Keeps up to `capacity` bodies (about 200 bytes each).
    pub fn new(capacity: u64) -> Self {
        Self(moka::sync::Cache::new(capacity))
    }
}

/// Lua: records the read as the reader's activity (at most once a minute: activity is
/// judged in hours).
const TOUCH: &str = r#"
local function touch(reader, now)
    if tonumber(now) - tonumber(redis.call('HGET', reader, 'active') or '0') > 60000 then
        redis.call('HSET', reader, 'active', now)
    end
end
"#;

/// The refs of a read on a single Redis. KEYS: feed, hot-following, reader, generation.
/// ARGV: max score (`+inf` or the cursor's), the cursor's event id (16 bytes, or ''),
/// count, now (ms), then what comes before and after the user id in the names of the
/// `authored` and `author` keys. Returns `{pushed refs and scores (flat, newest first,
/// strictly after the cursor), the reader's meta (flat), the generation or '', {hot
/// author, its page, its trim mark or ''} per hot followee}`.
///
/// Each hot author's page holds only refs at or above the floor: the `count`-th best
/// score among the distinct refs read so far (see [`FLOOR_FN`]). Nothing below it can
/// make the merged page, and reading a sorted set costs Redis about a microsecond per
/// ref returned, so a reader of 20 hot authors reads about `count` refs in all, not
/// 21 × `count`.
static READ_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{TOUCH}local page = {PAGE_FN}local floor_after = {FLOOR_FN}{}",
        r#"
touch(KEYS[3], ARGV[4])
local count = tonumber(ARGV[3])
local best, seen = {}, {}
local pushed = page(KEYS[1], ARGV[1], ARGV[2], count, '-inf')
local floor = floor_after(best, seen, pushed, count)
local pages = {}
for _, author in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    local refs = page(ARGV[5] .. author .. ARGV[6], ARGV[1], ARGV[2], count, floor)
    pages[#pages + 1] = {author, refs, redis.call('HGET', ARGV[7] .. author .. ARGV[8], 'trimmed') or ''}
    floor = floor_after(best, seen, refs, count)
end
return {pushed, redis.call('HGETALL', KEYS[3]), redis.call('GET', KEYS[4]) or '', pages}
"#
    ))
});

/// Lua: adds the distinct refs of a flat member/score list to `best` (the scores of the
/// best distinct refs so far, ascending, kept to `count`; `seen` holds the refs) and returns the
/// floor below which no ref can make a page of `count`: the `count`-th best score, or
/// `-inf` while fewer are known. A ref seen twice (pushed and merged while an author
/// becomes hot) counts once, or the floor would rise above a ref the page needs.
const FLOOR_FN: &str = r#"function(best, seen, refs, count)
    local added = false
    for i = 1, #refs, 2 do
        if not seen[refs[i]] then
            seen[refs[i]] = true
            best[#best + 1] = tonumber(refs[i + 1])
            added = true
        end
    end
    if #best < count then return '-inf' end
    if added then
        -- Numbers, ascending, with Lua's own comparison: a comparator function calling
        -- tonumber cost a millisecond per read.
        table.sort(best)
        local extra = #best - count
        for i = 1, count do best[i] = best[i + extra] end
        for i = #best, count + 1, -1 do best[i] = nil end
    end
    -- Scores are whole microseconds, below 2^53: '%.0f' writes them exactly.
    return string.format('%.0f', best[1])
end
"#;

/// On a cluster, the reader's own slot: its page of pushed refs, its hot followees and
/// its meta. KEYS: feed, hot-following, reader. ARGV: as [`READ_ALL`]'s first four.
/// Returns `{refs and scores, hot followees, the meta hash (flat)}`.
static READ_START: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{TOUCH}local page = {PAGE_FN}{}",
        r#"
touch(KEYS[3], ARGV[4])
return {page(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), '-inf'), redis.call('SMEMBERS', KEYS[2]), redis.call('HGETALL', KEYS[3])}
"#
    ))
});

/// On a cluster, a hot author's page. KEYS: authored, author. ARGV: the floor (the
/// pushed page's last score when it is full, else `-inf`: see [`READ_ALL`]), then as [`READ_ALL`]'s
/// first three. Returns `{refs and scores, the trim mark or ''}`.
static AUTHORED_PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "local page = {PAGE_FN}{}",
        r#"
return {page(KEYS[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[1]), redis.call('HGET', KEYS[2], 'trimmed') or ''}
"#
    ))
});

/// Lua: up to `count` members of a sorted set strictly after (`max`, `id`) and scored
/// at least `min`, newest first, as a flat member/score list.
const PAGE_FN: &str = r#"function(key, max, id, count, min)
    local out, offset = {}, 0
    while true do
        local got = redis.call('ZREVRANGEBYSCORE', key, max, min, 'WITHSCORES', 'LIMIT', offset, count)
        for i = 1, #got, 2 do
            if #out < 2 * count and (id == '' or got[i + 1] ~= max or string.sub(got[i], 1, 16) < id) then
                out[#out + 1] = got[i]
                out[#out + 1] = got[i + 1]
            end
        end
        if #out >= 2 * count or #got < 2 * count then return out end
        offset = offset + count
    end
end
"#;

/// One entry read from Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it is in the feed.
    pub place: Place,
    /// Its ref.
    pub entry: EntryRef,
    /// Its JSON, as reads return it; `None` when its body is gone.
    pub body: Option<Body>,
}

/// What one sorted set contributed to a page: its refs after the cursor, newest first.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// Its refs and where they are.
    pub entries: Vec<(Place, EntryRef)>,
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
    /// The feeds' generation (see `crate::feed::feeds_complete`).
    pub generation: Option<String>,
}

/// The candidates of a page: the union of `sources` (a ref seen twice counts once),
/// newest first, cut above the highest trim mark, at most `count`; and whether nothing
/// was trimmed (then a short page means there is nothing more anywhere: each source
/// returned everything it has after the cursor, or the page would be full).
pub fn candidates(sources: Vec<Source>, count: usize) -> (Vec<(Place, EntryRef)>, bool) {
    let horizon = sources.iter().filter_map(|s| s.trimmed).max();
    let mut seen = HashSet::new();
    let mut all: Vec<(Place, EntryRef)> = sources.into_iter().flat_map(|s| s.entries).filter(|(_, e)| seen.insert(e.event_id)).collect();
    all.sort_by_key(|(place, _)| std::cmp::Reverse(*place));
    let reliable = all.iter().take_while(|(place, _)| horizon.is_none_or(|h| place.micros > h)).count();
    let complete = horizon.is_none();
    all.truncate(reliable.min(count));
    (all, complete)
}

/// The page from the candidates and their bodies: up to the first whose body is gone.
pub fn page(candidates: Vec<(Place, EntryRef)>, complete: bool, bodies: &HashMap<Uuid, Body>) -> Page {
    let mut entries = Vec::with_capacity(candidates.len());
    let mut complete = complete;
    for (place, entry) in candidates {
        let Some(body) = bodies.get(&entry.event_id) else {
            complete = false;
            break;
        };
        entries.push(Entry { place, entry, body: Some(body.clone()) });
    }
    Page { entries, complete, stale: Vec::new(), generation: None }
}

/// A sorted set's page as a [`Source`].
fn source(refs: Scored, trimmed: Option<&str>) -> Source {
    let entries = refs
        .into_iter()
        .filter_map(|(member, micros)| {
            let entry = EntryRef::parse(&member)?;
            Some((Place { micros, event_id: entry.event_id }, entry))
        })
        .collect();
    Source { entries, trimmed: trimmed.and_then(|m| m.parse::<f64>().ok()).map(|m| m as i64) }
}

/// Reads `count` entries of `reader`'s friends feed strictly after `after` (the newest
/// when `None`), and counts the read as the reader's activity.
pub async fn read(
    redis: &Redis,
    keys: &Keys,
    bodies: &Bodies,
    reader: i64,
    after: Option<Place>,
    count: usize,
) -> redis::RedisResult<Page> {
    let (max, id) = match after {
        Some(p) => (p.micros.to_string(), p.event_id.as_bytes().to_vec()),
        None => ("+inf".to_string(), Vec::new()),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let (sources, meta, generation) = if redis.is_cluster() {
        refs_by_slot(redis, keys, reader, (&max, &id), count, now).await?
    } else {
        let mut call = READ_ALL.prepare_invoke();
        call.key(keys.friends(reader)).key(keys.hot_following(reader)).key(keys.reader(reader)).key(keys.generation());
        call.arg(&max).arg(id.as_slice()).arg(count).arg(now);
        for kind in ["authored", "author"] {
            let (before, after) = keys.user_key_parts(kind);
            call.arg(before).arg(after);
        }
        type HotPages = Vec<(i64, Scored, String)>;
        let (pushed, meta, generation, hot): (Scored, HashMap<String, String>, String, HotPages) =
            call.invoke_async(&mut redis.clone()).await?;
        let mut sources = vec![source(pushed, meta.get("trimmed").map(String::as_str))];
        sources.extend(hot.into_iter().map(|(_, refs, trimmed)| source(refs, Some(&trimmed))));
        (sources, meta, (!generation.is_empty()).then_some(generation))
    };
    let (candidates, complete) = candidates(sources, count);
    let found = hydrate(redis, keys, bodies, candidates.iter().map(|(_, entry)| *entry)).await?;
    let mut page = page(candidates, complete, &found);
    page.stale =
        meta.iter().filter_map(|(field, value)| Some((field.strip_prefix("stale:")?.parse().ok()?, value.parse().ok()?))).collect();
    page.generation = generation;
    Ok(page)
}

/// The bodies of `entries`: from `bodies` where it has them, the rest with one `HMGET`
/// per actor (sent at once); absent where Redis has none.
async fn hydrate(
    redis: &Redis,
    keys: &Keys,
    bodies: &Bodies,
    entries: impl Iterator<Item = EntryRef>,
) -> redis::RedisResult<HashMap<Uuid, Body>> {
    let mut found = HashMap::new();
    let mut missing: HashMap<i64, Vec<Uuid>> = HashMap::new();
    for entry in entries {
        match bodies.0.get(&entry.event_id) {
            Some(body) => {
                found.insert(entry.event_id, body);
            }
            None => missing.entry(entry.actor_id).or_default().push(entry.event_id),
        }
    }
    let asked = missing.iter().map(|(actor, ids)| {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(keys.bodies(*actor));
        for id in ids {
            cmd.arg(id.as_bytes().as_slice());
        }
        let mut redis = redis.clone();
        async move { cmd.query_async::<Vec<Option<Vec<u8>>>>(&mut redis).await }
    });
    for (ids, answers) in missing.values().zip(futures::future::try_join_all(asked).await?) {
        for (id, body) in ids.iter().zip(answers) {
            if let Some(body) = body {
                let body: Body = body.into();
                bodies.0.insert(*id, body.clone());
                found.insert(*id, body);
            }
        }
    }
    Ok(found)
}

/// The refs of a read on a cluster: the reader's slot (and the generation's), then the
/// hot authors' pages, each round trip's commands sent at once.
async fn refs_by_slot(
    redis: &Redis,
    keys: &Keys,
    reader: i64,
    (max, id): (&str, &[u8]),
    count: usize,
    now: i64,
) -> redis::RedisResult<(Vec<Source>, HashMap<String, String>, Option<String>)> {
    let mut start = READ_START.prepare_invoke();
    start.key(keys.friends(reader)).key(keys.hot_following(reader)).key(keys.reader(reader));
    start.arg(max).arg(id).arg(count).arg(now);
    let generation_key = keys.generation();
    let (started, generation) =
        tokio::try_join!(async { start.invoke_async::<(Scored, Vec<i64>, HashMap<String, String>)>(&mut redis.clone()).await }, async {
            redis::cmd("GET").arg(&generation_key).query_async::<Option<String>>(&mut redis.clone()).await
        },)?;
    let (pushed, hot, meta) = started;
    // The authors' pages are read at once, so only the pushed page sets their floor.
    let floor = match pushed.last() {
        Some((_, score)) if pushed.len() >= count => score.to_string(),
        _ => "-inf".to_string(),
    };
    let hot_pages = hot.iter().map(|author| {
        let mut page = AUTHORED_PAGE.prepare_invoke();
        page.key(keys.authored(*author)).key(keys.author(*author)).arg(&floor).arg(max).arg(id).arg(count);
        let mut redis = redis.clone();
        async move { page.invoke_async::<(Scored, String)>(&mut redis).await }
    });
    let mut sources = vec![source(pushed, meta.get("trimmed").map(String::as_str))];
    for (refs, trimmed) in futures::future::try_join_all(hot_pages).await? {
        sources.push(source(refs, Some(&trimmed)));
    }
    Ok((sources, meta, generation))
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

    fn at(micros: i64, id: u128) -> (Place, EntryRef) {
        let entry = EntryRef { event_id: Uuid::from_u128(id), actor_id: 1 };
        (Place { micros, event_id: entry.event_id }, entry)
    }

    fn bodies(ids: &[u128]) -> HashMap<Uuid, Body> {
        ids.iter().map(|id| (Uuid::from_u128(*id), Body::from(&b"{}"[..]))).collect()
    }

    #[test]
    fn sources_merge_newest_first_once_each() {
        let pushed = Source { entries: vec![at(50, 5), at(30, 3)], trimmed: None };
        let hot = Source { entries: vec![at(40, 4), at(30, 3), at(10, 1)], trimmed: None };
        let (found, complete) = candidates(vec![pushed, hot], 10);
        assert_eq!(found.iter().map(|(p, _)| p.micros).collect::<Vec<_>>(), vec![50, 40, 30, 10]);
        assert!(complete);
        let ties = Source { entries: vec![at(50, 5), at(50, 6)], trimmed: None };
        assert_eq!(
            candidates(vec![ties], 1).0[0].0.event_id,
            Uuid::from_u128(6),
            "equal scores: the greater id first, as in Redis and PostgreSQL"
        );
    }

    #[test]
    fn the_page_stops_above_the_highest_trim_mark_and_at_a_missing_body() {
        let pushed = Source { entries: vec![at(50, 5), at(20, 2)], trimmed: Some(15) };
        let hot = Source { entries: vec![at(40, 4), at(10, 1)], trimmed: Some(30) };
        let (found, complete) = candidates(vec![pushed, hot], 10);
        assert_eq!(found.iter().map(|(p, _)| p.micros).collect::<Vec<_>>(), vec![50, 40], "below 30 the hot author's set may lack entries");
        assert!(!complete);
        let (found, complete) = candidates(vec![Source { entries: vec![at(50, 5), at(40, 4), at(30, 3)], trimmed: None }], 10);
        let read = page(found, complete, &bodies(&[5, 3]));
        assert_eq!(read.entries.len(), 1);
        assert!(!read.complete, "the rest comes from PostgreSQL");
        let (found, complete) = candidates(vec![Source { entries: vec![at(50, 5), at(40, 4)], trimmed: None }], 1);
        assert_eq!((found.len(), complete), (1, true), "cut by the count alone");
    }
}
