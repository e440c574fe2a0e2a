//! Rebuilding the Redis feeds from PostgreSQL (the `activities` hypertable and the
//! follow projections), for when Redis lost its data or an operator asks
//! (`feedctl rebuild-feeds`). The result is what the fan-out produces: the same members
//! (see `feed_core::feed::encode_member`), the same scores, the same trimming.
//!
//! How a rebuild stays exact while fan-out consumers keep running:
//! 1. it takes a lease (`Keys::rebuild_lock`), so one process rebuilds at a time, and
//!    sets the generation to `rebuilding:<id>`: every fan-out batch from then on is
//!    refused by its script (see [`crate::feeds`]), and reads say the feeds are partial;
//! 2. it reads everything from one PostgreSQL snapshot, together with the writer's
//!    offsets on the feed topic (W): the snapshot is exactly "every event below W";
//! 3. it replaces each user's keys atomically (they share a hash slot), and writes the
//!    objects' tombstones and registrations;
//! 4. in one script it lowers the fan-out group's offsets to at most W (anything the
//!    fan-out applied past W is applied again, which changes nothing) and sets a new
//!    generation. Consumers notice the new generation and resume from those offsets.

use chrono::{DateTime, Utc};
use feed_core::activities::{self, Range, Verbs};
use feed_core::config::{CommonConfig, FeedSettings};
use feed_core::feed::{feeds_complete, follow_version, score, REBUILDING};
use feed_core::keys::Keys;
use feed_core::redis_client::Redis;
use redis::Script;
use sqlx::PgPool;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long the rebuild lease lasts unless renewed; a rebuilder that died is replaced
/// after at most this long.
const LEASE: Duration = Duration::from_secs(10);

/// Which feeds a rebuild covers.
#[derive(Clone, Debug)]
pub enum Scope {
    /// Every user's.
    All,
    /// These users' only.
    Users(Vec<i64>),
}

/// Renews the lease if this process still holds it. KEYS: lock. ARGV: token, lease ms.
const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

/// Gives the lease up if this process holds it. KEYS: lock. ARGV: token.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Ends a rebuild: lowers the group's offsets to the snapshot's, sets the generation,
/// drops the lease, and announces the offsets (the API's read-your-writes waits must see
/// them go down). KEYS: generation, the group's progress hash, lock. ARGV: token,
/// whether every feed was rebuilt (1/0), n, n × (partition, snapshot offset), channel.
/// Returns 0 if the lease was lost (nothing changed).
const FINISH: &str = r#"
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
local snapshot = {}
local last = 3 + 2 * tonumber(ARGV[3])
for i = 4, last, 2 do snapshot[ARGV[i]] = tonumber(ARGV[i + 1]) end
local current = redis.call('HGETALL', KEYS[2])
for i = 1, #current, 2 do
    local p = current[i]
    local w = snapshot[p] or 0
    if tonumber(current[i + 1]) > w then redis.call('HSET', KEYS[2], p, w) end
    snapshot[p] = nil
end
-- Partitions the group never applied: every feed already holds them below W.
if ARGV[2] == '1' then
    for p, w in pairs(snapshot) do redis.call('HSET', KEYS[2], p, w) end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
local marks = {}
local stored = redis.call('HGETALL', KEYS[2])
for i = 1, #stored, 2 do marks[#marks + 1] = stored[i] .. ':' .. stored[i + 1] end
redis.call('PUBLISH', ARGV[last + 1], KEYS[2] .. '|' .. table.concat(marks, ','))
return 1
"#;

/// Rebuilds feeds, for one fan-out consumer.
pub struct Rebuilder {
    db: PgPool,
    redis: Redis,
    keys: Keys,
    settings: FeedSettings,
    writer_group: String,
    feed_topic: String,
    progress_key: String,
}

impl Rebuilder {
    /// A rebuilder for the fan-out consumer and stores named in `common`, keeping feeds
    /// as `settings` say.
    pub fn new(db: PgPool, redis: Redis, common: &CommonConfig, settings: FeedSettings) -> Self {
        let keys = Keys::new(&common.redis_key_prefix);
        Self {
            progress_key: keys.progress(&common.fanout_group, &common.feed_topic),
            db,
            redis,
            keys,
            settings,
            writer_group: common.writer_group.clone(),
            feed_topic: common.feed_topic.clone(),
        }
    }

    /// The generation of complete feeds: waits while another process rebuilds them, and
    /// rebuilds them itself when they are missing or their rebuilder died.
    pub async fn complete_generation(&mut self) -> anyhow::Result<String> {
        loop {
            let generation: Option<String> = redis::cmd("GET").arg(self.keys.generation()).query_async(&mut self.redis).await?;
            if feeds_complete(generation.as_deref()) {
                return Ok(generation.unwrap_or_default());
            }
            let locked: bool = redis::cmd("EXISTS").arg(self.keys.rebuild_lock()).query_async(&mut self.redis).await?;
            if !locked {
                if let Some(generation) = self.rebuild(Scope::All, |_, _| {}).await? {
                    return Ok(generation);
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Rebuilds the feeds of `scope`, reporting (done, total) users to `progress`.
    /// Returns the new generation, or `None` if another process is rebuilding.
    pub async fn rebuild(&mut self, scope: Scope, progress: impl FnMut(u64, u64)) -> anyhow::Result<Option<String>> {
        let token = Uuid::new_v4().simple().to_string();
        let locked: Option<String> = redis::cmd("SET")
            .arg(self.keys.rebuild_lock())
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(LEASE.as_millis() as u64)
            .query_async(&mut self.redis)
            .await?;
        if locked.is_none() {
            return Ok(None);
        }
        let started = Instant::now();
        tracing::warn!(?scope, "rebuilding the feeds from PostgreSQL");
        match self.rebuild_locked(&token, scope, progress).await {
            Ok(users) => {
                metrics::counter!("feed_fanout_rebuilds_total").increment(1);
                tracing::warn!(users, took = ?started.elapsed(), generation = %token, "feeds rebuilt");
                Ok(Some(token))
            }
            Err(error) => {
                // Let the next attempt start at once rather than after the lease.
                let _: redis::RedisResult<i64> =
                    Script::new(RELEASE).key(self.keys.rebuild_lock()).arg(&token).invoke_async(&mut self.redis).await;
                Err(error)
            }
        }
    }

    async fn rebuild_locked(&mut self, token: &str, scope: Scope, mut progress: impl FnMut(u64, u64)) -> anyhow::Result<u64> {
        let _: () = redis::cmd("SET").arg(self.keys.generation()).arg(format!("{REBUILDING}{token}")).query_async(&mut self.redis).await?;
        let mut snapshot = self.db.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *snapshot).await?;
        let writer_offsets = writer::offsets::load(&mut *snapshot, &self.writer_group, &self.feed_topic).await?;
        let (users, all) = match scope {
            Scope::All => (sqlx::query_scalar("SELECT id FROM users ORDER BY id").fetch_all(&mut *snapshot).await?, true),
            Scope::Users(users) => (users, false),
        };
        // Tombstones first: events after the snapshot may still refer to deleted objects.
        let deleted: Vec<String> = sqlx::query_scalar("SELECT kind || ':' || id FROM deleted_objects").fetch_all(&mut *snapshot).await?;
        let tombstones = deleted.iter().map(|object| redis::cmd("SET").arg(self.keys.deleted(object)).arg(1).clone()).collect();
        crate::feeds::run_commands::<redis::Value>(&self.redis, tombstones).await?;
        let hot: HashSet<i64> = sqlx::query_scalar("SELECT followee_id FROM follows GROUP BY followee_id HAVING count(*) >= $1")
            .bind(self.settings.hot_followers as i64)
            .fetch_all(&mut *snapshot)
            .await?
            .into_iter()
            .collect();
        let total = users.len() as u64;
        let mut renewed = Instant::now();
        for (done, user) in users.into_iter().enumerate() {
            self.rebuild_user(&mut snapshot, user, &hot).await?;
            if renewed.elapsed() > LEASE / 4 {
                let renewed_ok: i64 = Script::new(RENEW)
                    .key(self.keys.rebuild_lock())
                    .arg(token)
                    .arg(LEASE.as_millis() as u64)
                    .invoke_async(&mut self.redis)
                    .await?;
                anyhow::ensure!(renewed_ok == 1, "lost the rebuild lease");
                renewed = Instant::now();
            }
            progress(done as u64 + 1, total);
        }
        snapshot.commit().await?;

        let script = Script::new(FINISH);
        let mut finish = script.prepare_invoke();
        finish.key(self.keys.generation()).key(&self.progress_key).key(self.keys.rebuild_lock());
        finish.arg(token).arg(if all { 1 } else { 0 }).arg(writer_offsets.len());
        for (partition, offset) in &writer_offsets {
            finish.arg(partition).arg(offset);
        }
        finish.arg(self.keys.progress_channel());
        let finished: i64 = finish.invoke_async(&mut self.redis).await?;
        anyhow::ensure!(finished == 1, "lost the rebuild lease before finishing");
        Ok(total)
    }

    /// Replaces everything the fan-out keeps for `user` — as an author (entries, bodies,
    /// followers, hot state) and as a reader (feed, whom it follows, hot followees) —
    /// with what `snapshot` holds, in one atomic step on the user's slot, and registers
    /// its entries under their objects. Its stale marks go (the feed is complete up to
    /// the snapshot), and it counts as active from now: who read recently is not in
    /// PostgreSQL, and a Redis that lost its data lost that too, so every rebuilt reader
    /// is pushed to for one more `FEED_ACTIVE_HOURS`, as before the loss.
    async fn rebuild_user(&mut self, snapshot: &mut sqlx::PgConnection, user: i64, hot: &HashSet<i64>) -> anyhow::Result<()> {
        let versions: Vec<(i64, i64, bool, DateTime<Utc>, Uuid)> = sqlx::query_as(
            "SELECT follower_id, followee_id, following, time, event_id FROM follow_versions WHERE followee_id = $1 OR follower_id = $1",
        )
        .bind(user)
        .fetch_all(&mut *snapshot)
        .await?;
        let followers: Vec<i64> =
            sqlx::query_scalar("SELECT follower_id FROM follows WHERE followee_id = $1").bind(user).fetch_all(&mut *snapshot).await?;
        let max_len = self.settings.max_len as i64;
        let authored = activities::authored(&mut *snapshot, user, Verbs::FannedOut, Range::newest(max_len)).await?;
        let friends = activities::friends(snapshot, user, Range::newest(max_len)).await?;

        let k = &self.keys;
        let active: Option<i64> = redis::cmd("HGET").arg(k.reader(user)).arg("active").query_async(&mut self.redis).await?;
        let active = active.unwrap_or(0).max(chrono::Utc::now().timestamp_millis());
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in [k.friends(user), k.authored(user), k.bodies(user), k.followers(user), k.follower_versions(user)] {
            pipe.del(key).ignore();
        }
        for key in [k.following(user), k.hot_following(user), k.reader(user), k.author(user)] {
            pipe.del(key).ignore();
        }
        if !followers.is_empty() {
            pipe.sadd(k.followers(user), &followers).ignore();
        }
        for (follower, followee, following, time, id) in &versions {
            let version = follow_version(*time, id);
            if *followee == user {
                pipe.hset(k.follower_versions(user), follower, &version).ignore();
            }
            if *follower == user {
                pipe.hset(k.following(user), followee, format!("{version}|{}", u8::from(*following))).ignore();
                if *following && hot.contains(followee) {
                    pipe.sadd(k.hot_following(user), followee).ignore();
                }
            }
        }
        if hot.contains(&user) {
            pipe.hset(k.author(user), "state", "hot").ignore();
        }
        pipe.hset(k.reader(user), "active", active).ignore();
        let mut registrations = Vec::new();
        for (set, meta, rows) in [(k.authored(user), k.author(user), &authored), (k.friends(user), k.reader(user), &friends)] {
            let refs: Vec<(i64, Vec<u8>)> = rows.iter().map(|r| (score(r.time), r.entry_ref().to_bytes().to_vec())).collect();
            if !refs.is_empty() {
                pipe.zadd_multiple(&set, &refs).ignore();
            }
            // A full set may lack what is older than its oldest entry.
            if let (true, Some(oldest)) = (rows.len() as i64 >= max_len, rows.last()) {
                pipe.hset(meta, "trimmed", score(oldest.time)).ignore();
            }
        }
        for row in &authored {
            pipe.hset(k.bodies(user), row.entry_ref().body_field().as_slice(), serde_json::to_string(&row.entry())?).ignore();
            if let (Some(kind), Some(id)) = (&row.object_type, row.object_id) {
                let mut register = redis::cmd("SADD");
                register.arg(k.object_entries(&format!("{kind}:{id}"))).arg(row.entry_ref().to_bytes().as_slice());
                registrations.push(register);
            }
        }
        pipe.query_async::<()>(&mut self.redis).await?;
        // Stale registrations are harmless: a delete's sweep takes out what is not there.
        crate::feeds::run_commands::<redis::Value>(&self.redis, registrations).await?;
        Ok(())
    }
}
