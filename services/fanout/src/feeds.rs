//! The three Redis scripts that maintain the feeds, and the batch handler running them.
//!
//! Why scripts: a post by X and a follow of X by Y may be handled at the same moment
//! (they are keyed by different actors, so they sit on different partitions). Each
//! script runs atomically in Redis, so one of the two fully precedes the other:
//! - post first: Y is not yet a follower, but the post is in `authored(X)`, which the
//!   follow then copies into Y's feed;
//! - follow first: Y is in `followers(X)` when the post fans out.
//!
//! Either way the entry lands once, because a member is the event's deterministic
//! encoding (see `feed_core::feed::member`) and `ZADD` of an existing member is a no-op.
//! The same property makes re-delivered and replayed events harmless.
//!
//! The scripts compute follower feed keys at run time, which a single Redis (or a
//! primary with replicas) allows; Redis Cluster would need the feeds split by slot.

use feed_core::consumer::{BatchHandler, Record};
use feed_core::event::{Event, EventType};
use feed_core::feed::{self, Keys};
use redis::aio::ConnectionManager;
use redis::Script;

/// Adds an entry by X to X's authored set and to every follower's friends feed.
/// KEYS: authored(X), followers(X). ARGV: member, score, max length, friends-key prefix.
const FAN_OUT: &str = r#"
local member, score, maxlen, prefix = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
redis.call('ZADD', KEYS[1], score, member)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(maxlen + 1))
local followers = redis.call('SMEMBERS', KEYS[2])
for _, follower in ipairs(followers) do
    local feed = prefix .. follower
    redis.call('ZADD', feed, score, member)
    redis.call('ZREMRANGEBYRANK', feed, 0, -(maxlen + 1))
end
return #followers
"#;

/// Y follows X: record it and copy X's recent entries into Y's feed.
/// KEYS: followers(X), authored(X), friends(Y). ARGV: Y's id, max length.
const FOLLOW: &str = r#"
redis.call('SADD', KEYS[1], ARGV[1])
local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
    redis.call('ZADD', KEYS[3], entries[i + 1], entries[i])
end
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[2]) + 1))
return #entries / 2
"#;

/// Y unfollows X: forget it and remove every entry by X from Y's feed (members are
/// `event_id|actor_id|json`, so X's are exactly those with `|X|` after the event id).
/// KEYS: followers(X), friends(Y). ARGV: Y's id, X's id.
const UNFOLLOW: &str = r#"
redis.call('SREM', KEYS[1], ARGV[1])
local marker = '|' .. ARGV[2] .. '|'
local removed = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local bar = string.find(member, '|', 1, true)
    if bar and string.sub(member, bar, bar + #marker - 1) == marker then
        redis.call('ZREM', KEYS[2], member)
        removed = removed + 1
    end
end
return removed
"#;

/// Applies batches of events to the Redis feeds.
pub struct FeedStore {
    redis: ConnectionManager,
    keys: Keys,
    max_len: usize,
    fan_out: Script,
    follow: Script,
    unfollow: Script,
}

impl FeedStore {
    /// A store writing under `keys`, keeping at most `max_len` entries per feed.
    pub fn new(redis: ConnectionManager, keys: Keys, max_len: usize) -> Self {
        Self {
            redis,
            keys,
            max_len,
            fan_out: Script::new(FAN_OUT),
            follow: Script::new(FOLLOW),
            unfollow: Script::new(UNFOLLOW),
        }
    }

    /// Adds the script invocation for one event to `pipe`; events that change no feed
    /// add nothing. Returns whether a script was added, and whether its result counts
    /// feed entries written (fan-out and follow) rather than removed.
    fn push_event(&self, pipe: &mut redis::Pipeline, record: &Record<Event>) -> Option<bool> {
        let event = &record.event;
        let actor = event.actor.id;
        match (event.kind, &event.target) {
            (kind, _) if kind.fans_out() => {
                let member = feed::member(event)?;
                pipe.invoke_script(
                    self.fan_out
                        .key(self.keys.authored(actor))
                        .key(self.keys.followers(actor))
                        .arg(member)
                        .arg(feed::score(event.time))
                        .arg(self.max_len)
                        .arg(self.keys.friends_prefix()),
                );
                Some(true)
            }
            (EventType::Follow, Some(target)) => {
                pipe.invoke_script(
                    self.follow
                        .key(self.keys.followers(target.id))
                        .key(self.keys.authored(target.id))
                        .key(self.keys.friends(actor))
                        .arg(actor)
                        .arg(self.max_len),
                );
                Some(true)
            }
            (EventType::Unfollow, Some(target)) => {
                pipe.invoke_script(
                    self.unfollow
                        .key(self.keys.followers(target.id))
                        .key(self.keys.friends(actor))
                        .arg(actor)
                        .arg(target.id),
                );
                Some(false)
            }
            _ => None,
        }
    }
}

impl BatchHandler<Event> for FeedStore {
    /// Runs the batch as one pipeline on one connection, so Redis applies the scripts
    /// in offset order.
    async fn apply(&mut self, records: &[Record<Event>]) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        // Loading is cheap and makes the batch survive a Redis restart (NOSCRIPT).
        for script in [&self.fan_out, &self.follow, &self.unfollow] {
            pipe.load_script(script).ignore();
        }
        let writes: Vec<bool> = records.iter().filter_map(|r| self.push_event(&mut pipe, r)).collect();
        let results: Vec<i64> = pipe.query_async(&mut self.redis).await?;
        let written: i64 = results.iter().zip(&writes).filter(|(_, adds)| **adds).map(|(n, _)| n).sum();
        metrics::counter!("feed_fanout_entries_written_total").increment(written.max(0) as u64);
        Ok(())
    }
}
