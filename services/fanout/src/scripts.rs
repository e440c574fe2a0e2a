//! The fan-out's Redis scripts. Each touches the keys of one hash slot only (one
//! user's, one object's, or the pipeline's bookkeeping; see `feed_core::keys`), so they
//! run on a single Redis and on a Redis Cluster alike, and each does a bounded amount
//! of work (at most [`crate::feeds::CHUNK`] members, or one feed's trim), so none holds
//! Redis for long. How they combine into a batch, and why the result is exact, is in
//! [`crate::feeds`].
//!
//! Conventions: a `following` value is `<follow version>|1` (follows) or `|0`
//! (unfollowed); feeds and authored sets keep at most `maxlen` members, and trimming
//! records in the owner's meta hash (`reader` or `author`) the score of the newest
//! member it removed (`trimmed`): below it the set may lack entries.

use redis::Script;
use std::sync::LazyLock;

/// Lua shared by the scripts that add to a sorted set.
const TRIM: &str = r#"
local function trim(set, meta, maxlen)
    local extra = redis.call('ZCARD', set) - maxlen
    if extra <= 0 then return {} end
    local gone = redis.call('ZRANGE', set, 0, extra - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', set, 0, extra - 1)
    local newest = tonumber(gone[#gone])
    local current = redis.call('HGET', meta, 'trimmed')
    if (not current) or tonumber(current) < newest then redis.call('HSET', meta, 'trimmed', gone[#gone]) end
    return gone
end
local function following(value) return value and string.sub(value, -2) == '|1' end
"#;

fn with_trim(body: &str) -> Script {
    Script::new(&format!("{TRIM}{body}"))
}

/// An author's new entry. KEYS: authored, bodies, author, followers (of the actor).
/// ARGV: ref, score, body, maxlen, inline (most followers returned with the answer).
/// Adds the entry and its body, trims the authored set (dropping the trimmed entries'
/// bodies), and returns `{state, follower count, followers (if at most inline and the
/// author is not hot), trimmed refs and bodies (flat pairs)}`.
pub static AUTHOR_ADD: LazyLock<Script> = LazyLock::new(|| {
    with_trim(
        r#"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], string.sub(ARGV[1], 1, 16), ARGV[3])
local gone = trim(KEYS[1], KEYS[3], tonumber(ARGV[4]))
local trimmed = {}
for i = 1, #gone, 2 do
    local field = string.sub(gone[i], 1, 16)
    trimmed[#trimmed + 1] = gone[i]
    trimmed[#trimmed + 1] = redis.call('HGET', KEYS[2], field) or ''
    redis.call('HDEL', KEYS[2], field)
end
local state = redis.call('HGET', KEYS[3], 'state') or ''
local count = redis.call('SCARD', KEYS[4])
local inline = {}
if state ~= 'hot' and count <= tonumber(ARGV[5]) then inline = redis.call('SMEMBERS', KEYS[4]) end
return {state, count, inline, trimmed}
"#,
    )
});

/// Takes an entry out of its author's set (a delete, or an entry whose object was
/// deleted). KEYS: authored, bodies, followers, author. ARGV: ref, inline. Returns
/// `{follower count, followers (if at most inline)}`: whose feeds to take it out of.
pub static AUTHORED_REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], string.sub(ARGV[1], 1, 16))
local count = redis.call('SCARD', KEYS[3])
local inline = {}
if count <= tonumber(ARGV[2]) then inline = redis.call('SMEMBERS', KEYS[3]) end
return {count, inline}
"#,
    )
});

/// A push into one follower's feed. KEYS: feed, following, reader (of the follower).
/// ARGV: ref, score, actor, active cutoff (ms), partition, next offset, maxlen.
/// Pushes only if the follower still follows the actor by its own record (an unfollow
/// racing the push wins), and only if it was active since the cutoff; otherwise it
/// records in `stale:<partition>` that its feed lacks events below `next offset`, for
/// its next read to catch up from PostgreSQL. Returns 1 pushed, 2 skipped as inactive,
/// 0 not following.
pub static PUSH: LazyLock<Script> = LazyLock::new(|| {
    with_trim(
        r#"
if not following(redis.call('HGET', KEYS[2], ARGV[3])) then return 0 end
local active = tonumber(redis.call('HGET', KEYS[3], 'active') or '0')
if active < tonumber(ARGV[4]) then
    local field = 'stale:' .. ARGV[5]
    local current = tonumber(redis.call('HGET', KEYS[3], field) or '0')
    if tonumber(ARGV[6]) > current then redis.call('HSET', KEYS[3], field, ARGV[6]) end
    return 2
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
trim(KEYS[1], KEYS[3], tonumber(ARGV[7]))
return 1
"#,
    )
});

/// The follower's side of a follow or unfollow. KEYS: following, reader (of the
/// follower). ARGV: followee, version, 1 (follow) or 0 (unfollow), event time (ms).
/// Records it if newer than what is recorded for the pair; a follow also counts as
/// activity. Returns the pair's current value (`<version>|<state>`), applied or not:
/// what the followee's side must reflect.
pub static FOLLOWING_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local value = ARGV[2] .. '|' .. ARGV[3]
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (not current) or string.sub(current, 1, -3) < ARGV[2] then
    redis.call('HSET', KEYS[1], ARGV[1], value)
    current = value
end
if ARGV[3] == '1' then
    local active = tonumber(redis.call('HGET', KEYS[2], 'active') or '0')
    if tonumber(ARGV[4]) > active then redis.call('HSET', KEYS[2], 'active', ARGV[4]) end
end
return current
"#,
    )
});

/// The followee's side of a follow or unfollow. KEYS: followers, follower-versions,
/// author, authored (of the followee). ARGV: follower, version, 1 or 0, whether the
/// authored entries are wanted (1/0). Adds or removes the follower if the version is
/// newer than the one reflected. Returns `{state, follower count, authored refs and
/// scores (flat pairs, oldest first) if wanted, the authored set's trim mark or ''}`.
pub static FOLLOWERS_SYNC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local current = redis.call('HGET', KEYS[2], ARGV[1])
if (not current) or current < ARGV[2] then
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
    if ARGV[3] == '1' then redis.call('SADD', KEYS[1], ARGV[1]) else redis.call('SREM', KEYS[1], ARGV[1]) end
end
local entries = {}
if ARGV[4] == '1' then entries = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES') end
return {redis.call('HGET', KEYS[3], 'state') or '', redis.call('SCARD', KEYS[1]), entries, redis.call('HGET', KEYS[3], 'trimmed') or ''}
"#,
    )
});

/// Adds an author's entries to one follower's feed (a follow's copy, or an author
/// leaving the hot set), or records that the author is hot. KEYS: feed, following,
/// reader, hot-following (of the follower). ARGV: author, mode, maxlen, the author's
/// trim mark (or ''), then score/ref pairs. Modes: `hot` (add the author to
/// hot-following), `copy` (add the entries), `copy-last` (add them, then take the
/// author out of hot-following: the last chunk of an author's entries). A copy from a
/// trimmed authored set lacks what is older than its mark, so the feed's mark rises to
/// it. Does nothing unless the follower follows the author by its own record. Returns 1
/// if applied.
pub static FEED_ADD: LazyLock<Script> = LazyLock::new(|| {
    with_trim(
        r#"
if not following(redis.call('HGET', KEYS[2], ARGV[1])) then return 0 end
if ARGV[2] == 'hot' then
    redis.call('SADD', KEYS[4], ARGV[1])
    return 1
end
for i = 5, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
trim(KEYS[1], KEYS[3], tonumber(ARGV[3]))
if ARGV[4] ~= '' then
    local current = redis.call('HGET', KEYS[3], 'trimmed')
    if (not current) or tonumber(current) < tonumber(ARGV[4]) then redis.call('HSET', KEYS[3], 'trimmed', ARGV[4]) end
end
if ARGV[2] == 'copy-last' then redis.call('SREM', KEYS[4], ARGV[1]) end
return 1
"#,
    )
});

/// An unfollow's removal of the author's entries from the follower's feed. KEYS: feed,
/// following, hot-following (of the follower). ARGV: author, then refs. Does nothing if
/// the follower follows the author again by its own record. Returns 1 if applied.
pub static FEED_REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local current = redis.call('HGET', KEYS[2], ARGV[1])
if current and string.sub(current, -2) == '|1' then return 0 end
redis.call('SREM', KEYS[3], ARGV[1])
for i = 2, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
return 1
"#,
    )
});

/// Registers an entry under the object it refers to, after it was pushed. KEYS:
/// object-entries, deleted (of the object). ARGV: ref. Returns 1 if the object was
/// deleted meanwhile (the entry must be taken out again), else 0.
pub static OBJECT_REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('EXISTS', KEYS[2])
"#,
    )
});

/// A delete's tombstone. KEYS: deleted, object-entries (of the object). Returns the
/// refs registered under the object, for the sweep; they are dropped only once the sweep
/// is done, so a sweep cut short by a crash is done again.
pub static OBJECT_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('SET', KEYS[1], '1')
return redis.call('SMEMBERS', KEYS[2])
"#,
    )
});

/// Moves an author's state. KEYS: author. ARGV: expected state (`` for normal), new
/// state (`` for normal). Returns 1 if it was in the expected state (and moved).
pub static AUTHOR_STATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if (redis.call('HGET', KEYS[1], 'state') or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'state') else redis.call('HSET', KEYS[1], 'state', ARGV[2]) end
return 1
"#,
    )
});

/// Checks a batch before it is applied. KEYS: generation, the group's progress. ARGV:
/// generation, then partition/first offset pairs. Returns -1 if the generation changed
/// (Redis lost the feeds, or a rebuild ran), -2 if a partition's stored offset is past
/// the batch's first (another consumer applied it), else 0.
pub static BATCH_CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 2, #ARGV, 2 do
    if tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0') > tonumber(ARGV[i + 1]) then return -2 end
end
return 0
"#,
    )
});

/// Stores a batch's offsets once its effects are all in, and announces them. KEYS:
/// generation, the group's progress. ARGV: generation, channel, then partition/first/
/// next triples. The same refusals as [`BATCH_CHECK`] (then nothing is stored: the
/// effects are idempotent and will be applied again from the offsets stored). Publishes
/// `<progress key>|<partition>:<next>,...` on the channel.
pub static BATCH_FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 3, #ARGV, 3 do
    if tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0') > tonumber(ARGV[i + 1]) then return -2 end
end
local marks = {}
for i = 3, #ARGV, 3 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    marks[#marks + 1] = ARGV[i] .. ':' .. ARGV[i + 2]
end
redis.call('PUBLISH', ARGV[2], KEYS[2] .. '|' .. table.concat(marks, ','))
return 0
"#,
    )
});
