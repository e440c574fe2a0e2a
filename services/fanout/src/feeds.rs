//! The fan-out's [`Sink`]: one Redis script per batch applies every event to the feeds
//! and raises the group's offsets (its progress marks) in the same atomic step.
//!
//! Why one script: Redis runs it atomically, so the feeds and the offsets never
//! disagree, whatever dies when; and a post by X racing a follow of X by Y (different
//! actors, so different partitions) is ordered one way or the other:
//! - post first: Y is not yet a follower, but the post is in `authored(X)`, which the
//!   follow then copies into Y's feed;
//! - follow first: Y is in `followers(X)` when the post fans out.
//!
//! Either way the entry lands once, because a member is the event's deterministic
//! encoding (see `feed_core::feed::member`) and `ZADD` of an existing member is a no-op.
//! Follows and unfollows of a pair apply only if newer than the last one applied (see
//! `feed_core::feed::follow_version`), so replays and rewinds cannot resurrect a pair.
//!
//! The script first checks the generation key (see [`crate::rebuild`]): if Redis lost
//! its data or a rebuild ran since this consumer resumed, it writes nothing and the
//! consumer resumes from the offsets the rebuild left.
//!
//! The script computes follower feed keys at run time, which a single Redis (or a
//! primary with replicas) allows; Redis Cluster would need the feeds split by slot.

use crate::rebuild::Rebuilder;
use feed_core::consumer::{first_offset, Record, Sink, Stored};
use feed_core::event::{Event, EventType};
use feed_core::feed;
use feed_core::keys::Keys;
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::HashMap;

/// Applies one batch. KEYS: generation, the group's progress hash, the deleted-objects
/// set. ARGV: generation, max length, prefixes of friends / authored / followers /
/// follow-version / object-entries keys, the number n of partitions, n × (partition,
/// first offset in the batch, next offset), then the events, seven values each:
/// `E partition offset actor member score object` (an entry by actor; object is
/// `post:21`, or empty for a free-verb activity),
/// `F|U partition offset follower followee version -` (follow / unfollow), or
/// `D partition offset owner object - -` (delete).
/// Returns -1 if the generation changed, -2 if a partition's stored offset is past the
/// batch's first (another consumer applied it), else the feed entries written.
///
/// Deletes: every member referring to an object is in `object-entries:<object>` while
/// it is in its actor's authored set; a delete removes each from the authored set and
/// from every follower's feed (an entry can only be in a follower's feed while it is
/// among its actor's newest, i.e. in the authored set), and tombstones the object so
/// entries applied later (a like from another partition, a replay) are not added.
const APPLY_BATCH: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local deleted = KEYS[3]
local maxlen = tonumber(ARGV[2])
local friends, authored, followers, versions, entries_of = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local n = tonumber(ARGV[8])
local nexts, stored = {}, {}
local i = 9
for _ = 1, n do
    local p = ARGV[i]
    stored[p] = tonumber(redis.call('HGET', KEYS[2], p) or '0')
    if stored[p] > tonumber(ARGV[i + 1]) then return -2 end
    nexts[p] = tonumber(ARGV[i + 2])
    i = i + 3
end
local function trim(key) redis.call('ZREMRANGEBYRANK', key, 0, -(maxlen + 1)) end
-- `post:21` for a member whose entry has an object (the entry's JSON field order is
-- fixed: `"object_id":21,"object_type":"post"`), else nil.
local function object_of(member)
    local id, kind = string.match(member, '"object_id":(%d+),"object_type":"(%a+)"')
    if id then return kind .. ':' .. id end
end
local function trim_authored(actor)
    local key = authored .. actor
    local extra = redis.call('ZCARD', key) - maxlen
    if extra > 0 then
        for _, member in ipairs(redis.call('ZRANGE', key, 0, extra - 1)) do
            local object = object_of(member)
            if object then redis.call('SREM', entries_of .. object, member) end
        end
        redis.call('ZREMRANGEBYRANK', key, 0, extra - 1)
    end
end
local written = 0
while i <= #ARGV do
    local kind, a, b, c, d = ARGV[i], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
    if kind == 'E' then
        if d == '' or redis.call('SISMEMBER', deleted, d) == 0 then
            if d ~= '' then redis.call('SADD', entries_of .. d, b) end
            redis.call('ZADD', authored .. a, c, b)
            trim_authored(a)
            for _, follower in ipairs(redis.call('SMEMBERS', followers .. a)) do
                redis.call('ZADD', friends .. follower, c, b)
                trim(friends .. follower)
                written = written + 1
            end
        end
    elseif kind == 'D' then
        redis.call('SADD', deleted, b)
        for _, member in ipairs(redis.call('SMEMBERS', entries_of .. b)) do
            local actor = string.match(member, '^[^|]*|(%d+)|')
            redis.call('ZREM', authored .. actor, member)
            for _, follower in ipairs(redis.call('SMEMBERS', followers .. actor)) do
                redis.call('ZREM', friends .. follower, member)
            end
        end
        redis.call('DEL', entries_of .. b)
    else
        local current = redis.call('HGET', versions .. b, a)
        if (not current) or current < c then
            redis.call('HSET', versions .. b, a, c)
            if kind == 'F' then
                redis.call('SADD', followers .. b, a)
                local entries = redis.call('ZRANGE', authored .. b, 0, -1, 'WITHSCORES')
                for j = 1, #entries, 2 do
                    redis.call('ZADD', friends .. a, entries[j + 1], entries[j])
                end
                trim(friends .. a)
                written = written + #entries / 2
            else
                redis.call('SREM', followers .. b, a)
                -- members are `event_id|actor_id|json`: the followee's have `|b|` after the id
                local marker = '|' .. b .. '|'
                for _, member in ipairs(redis.call('ZRANGE', friends .. a, 0, -1)) do
                    local bar = string.find(member, '|', 1, true)
                    if bar and string.sub(member, bar, bar + #marker - 1) == marker then
                        redis.call('ZREM', friends .. a, member)
                    end
                end
            end
        end
    end
    i = i + 7
end
for p, next in pairs(nexts) do
    if next > stored[p] then redis.call('HSET', KEYS[2], p, next) end
end
return written
"#;

/// Applies batches of feed events to the Redis feeds, for one fan-out group.
pub struct FeedSink {
    redis: ConnectionManager,
    keys: Keys,
    max_len: usize,
    progress_key: String,
    script: Script,
    /// The generation this consumer resumed under; `None` until it resumed.
    generation: Option<String>,
    rebuilder: Rebuilder,
}

impl FeedSink {
    /// A sink writing under `keys` for the group whose progress key is `progress_key`,
    /// keeping at most `max_len` entries per feed, and rebuilding with `rebuilder` when
    /// Redis lost the feeds.
    pub fn new(redis: ConnectionManager, keys: Keys, max_len: usize, progress_key: String, rebuilder: Rebuilder) -> Self {
        Self { redis, keys, max_len, progress_key, script: Script::new(APPLY_BATCH), generation: None, rebuilder }
    }

    /// The script arguments for one event; events that change no feed add nothing.
    fn push_event(args: &mut Vec<String>, record: &Record<Event>) {
        let event = &record.event;
        let (partition, offset) = (record.partition.to_string(), record.offset.to_string());
        match (event.kind, &event.target) {
            (kind, _) if kind.fans_out() => {
                if let Some(member) = feed::member(event) {
                    let score = feed::score(event.time).to_string();
                    let object = event.object.map(|o| o.to_string()).unwrap_or_default();
                    args.extend(["E".into(), partition, offset, event.actor.id.to_string(), member, score, object]);
                }
            }
            (EventType::Follow | EventType::Unfollow, Some(target)) => {
                let kind = if event.kind == EventType::Follow { "F" } else { "U" };
                let version = feed::follow_version(event.time, &event.event_id);
                args.extend([kind.into(), partition, offset, event.actor.id.to_string(), target.id.to_string(), version, "-".into()]);
            }
            (EventType::Deleted, _) => {
                if let Some(object) = event.object {
                    args.extend(["D".into(), partition, offset, event.actor.id.to_string(), object.to_string(), "-".into(), "-".into()]);
                }
            }
            _ => {}
        }
    }
}

impl Sink<Event> for FeedSink {
    /// Waits until the feeds are complete (rebuilding them if Redis lost them), then
    /// reads this group's offsets.
    async fn resume_from(&mut self, partitions: &[i32]) -> anyhow::Result<HashMap<i32, i64>> {
        let generation = self.rebuilder.complete_generation().await?;
        let marks = feed_core::progress::read(&mut self.redis, &self.progress_key).await?;
        self.generation = Some(generation);
        Ok(marks.into_iter().filter(|(p, _)| partitions.contains(p)).collect())
    }

    async fn apply(&mut self, records: &[Record<Event>], next: &[(i32, i64)]) -> anyhow::Result<Stored> {
        let Some(generation) = &self.generation else { return Ok(Stored::Moved) };
        let mut invocation = self.script.prepare_invoke();
        invocation.key(self.keys.generation()).key(&self.progress_key).key(self.keys.deleted_objects());
        let mut args: Vec<String> = vec![
            generation.clone(),
            self.max_len.to_string(),
            self.keys.friends_prefix(),
            self.keys.authored_prefix(),
            self.keys.followers_prefix(),
            self.keys.follow_versions_prefix(),
            self.keys.object_entries_prefix(),
            next.len().to_string(),
        ];
        for (partition, next) in next {
            let first = first_offset(records, *partition, *next);
            args.extend([partition.to_string(), first.to_string(), next.to_string()]);
        }
        for record in records {
            Self::push_event(&mut args, record);
        }
        invocation.arg(args);
        let written: i64 = invocation.invoke_async(&mut self.redis).await?;
        match written {
            -1 => {
                tracing::warn!("the feeds' generation changed (rebuilt, or Redis lost its data)");
                self.generation = None;
                Ok(Stored::Moved)
            }
            -2 => Ok(Stored::Moved),
            n => {
                metrics::counter!("feed_fanout_entries_written_total").increment(n.max(0) as u64);
                Ok(Stored::Applied)
            }
        }
    }

    /// Redis unreachable, restarting, loading its data or failing over (see
    /// `feed_core::redis_pool::is_unavailable`); a script error (`WRONGTYPE` on a key,
    /// say) is about the records.
    fn is_unavailable(&self, error: &anyhow::Error) -> bool {
        error.downcast_ref::<redis::RedisError>().is_some_and(feed_core::redis_pool::is_unavailable)
    }

    async fn offsets_moved(&mut self) -> bool {
        let current: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(self.keys.generation()).query_async(&mut self.redis).await;
        // A Redis that cannot be reached says nothing; the next batch will tell.
        current.is_ok_and(|current| self.generation.is_none() || current != self.generation)
    }
}
