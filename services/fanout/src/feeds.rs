//! The fan-out's [`Sink`]: applies a batch of feed events to the Redis feeds in a few
//! phases of small, single-slot scripts ([`crate::scripts`]), then stores the batch's
//! offsets and announces them.
//!
//! # What is where
//! Per user (one hash slot each): its friends feed (compact refs), its authored set
//! and the bodies of its entries, its followers (with the version of the follow each
//! reflects), its own record of whom it follows (`following`), the hot authors it
//! follows, and a reader hash (last activity, trim mark, stale marks). Per object: the
//! refs referring to it, and its tombstone. See `feed_core::keys`.
//!
//! # One batch
//! 1. Check that the feeds' generation is the one this consumer resumed under and that
//!    no other consumer applied these partitions further ([`scripts::BATCH_CHECK`]).
//! 2. Per event, on the actor's (or the follower's, or the object's) slot: add the
//!    entry to the author's set with its body ([`scripts::AUTHOR_ADD`]), record a follow
//!    or unfollow on the follower's side ([`scripts::FOLLOWING_SET`]), tombstone a
//!    deleted object ([`scripts::OBJECT_DELETE`]).
//! 3. Push each entry to its author's followers ([`scripts::PUSH`], up to [`CHUNK`]
//!    followers read at a time), reflect follows on the followee's side
//!    ([`scripts::FOLLOWERS_SYNC`]), take deleted entries out of their authors' sets.
//! 4. Copy or remove the followee's entries in the follower's feed ([`scripts::FEED_ADD`],
//!    [`scripts::FEED_REMOVE`]), register entries under their objects
//!    ([`scripts::OBJECT_REGISTER`]), take deleted entries out of the feeds.
//! 5. Take out again entries whose object turned out deleted; move authors across the
//!    hot line ([`crate::hot`]).
//! 6. Store the offsets, if the generation and the offsets are still those of step 1,
//!    and announce them ([`scripts::BATCH_FINISH`]).
//!
//! Every step is idempotent, so a batch cut short by a crash, or applied twice by two
//! consumers that both think they own a partition, ends the same: what is stored is
//! always a state some order of the same events produces. Within a step, events of one
//! batch run concurrently: follows carry versions, tombstones and registrations are
//! checked after the fact, so the order between them does not matter.
//!
//! # Why no entry goes missing or stays behind
//! A post by X racing a follow of X by Y (different actors, so different partitions,
//! maybe different consumers). The post adds its entry to `authored(X)` and then reads
//! `followers(X)`; the follow records the follow in `following(Y)`, then adds Y to
//! `followers(X)` and reads `authored(X)` in one script ([`scripts::FOLLOWERS_SYNC`]).
//! Both scripts run on X's slot, so one runs first:
//! - the post's first: the follow's read of `authored(X)` holds the entry and copies
//!   it to Y's feed;
//! - the follow's first: Y is among the followers the post reads (a follower present
//!   for a whole `SSCAN` is returned by it), and the push finds Y following X by
//!   Y's own record, written before.
//!
//! The same post racing an unfollow of X by Y: the unfollow records it in
//! `following(Y)` first, then removes Y from `followers(X)` and reads `authored(X)`,
//! then removes those entries from Y's feed. A push decides on Y's own record, in one
//! script on Y's slot: if it runs after the unfollow's record it pushes nothing; if
//! before, its entry was in `authored(X)` before the unfollow read it (the post adds to
//! `authored(X)` before it reads the followers), so the unfollow's removal, which runs
//! after the record and so after the push, takes it out.
//!
//! A like of an object racing the object's delete: the like is registered under the
//! object ([`scripts::OBJECT_REGISTER`]) only after its pushes, and the registration
//! reports the tombstone. If it runs before the tombstone, the delete's sweep (which
//! starts after its tombstone) finds it and takes it out of every feed after the
//! pushes; if after, the like takes itself out again.
//!
//! # Hot authors and inactive readers
//! An author with at least `HOT_AUTHOR_FOLLOWERS` followers is hot: its entries go to
//! its own set only and readers merge them in when they read ([`crate::hot`] has the
//! transitions and why they lose nothing). A reader who has neither read its feed nor
//! followed anyone for `FEED_ACTIVE_HOURS` gets no pushes; the push records, per
//! partition, the offset below which the feed now lacks events, and the reader's next
//! read rebuilds its feed from PostgreSQL once the writer is past those offsets.

use crate::rebuild::Rebuilder;
use crate::scripts;
use feed_core::config::FeedSettings;
use feed_core::consumer::{first_offset, Record, Sink, Stored};
use feed_core::event::{Event, EventType};
use feed_core::feed::{self, EntryRef, Scored};
use feed_core::keys::Keys;
use feed_core::redis_client::Redis;
use redis::{ScriptInvocation, Value};
use std::collections::HashMap;

/// Most followers read, or members handled, by one command: what bounds the work of
/// each (an `SSCAN` page, the members a script returns or takes).
pub const CHUNK: usize = 1000;

/// Most commands in flight at once; they are pipelined on each connection. Redis runs
/// what one connection has pipelined back to back before it turns to other clients, so
/// this also bounds how long a big push makes other readers wait: with 256, readers'
/// p99 during a 100,000-follower push was 1.9 times their p99 alone.
const IN_FLIGHT: usize = 32;

/// Runs `invocations` concurrently, [`IN_FLIGHT`] at a time (pipelined on each
/// connection); the results in their order.
pub(crate) async fn run_all<T: redis::FromRedisValue + Send>(
    redis: &Redis,
    invocations: Vec<ScriptInvocation<'static>>,
) -> redis::RedisResult<Vec<T>> {
    let mut out = Vec::with_capacity(invocations.len());
    let mut invocations = invocations.into_iter().peekable();
    while invocations.peek().is_some() {
        let mut wave = Vec::with_capacity(IN_FLIGHT);
        for invocation in invocations.by_ref().take(IN_FLIGHT) {
            wave.push(invoke(invocation, redis.clone()));
        }
        out.extend(futures::future::try_join_all(wave).await?);
    }
    Ok(out)
}

async fn invoke<T: redis::FromRedisValue>(invocation: ScriptInvocation<'static>, mut redis: Redis) -> redis::RedisResult<T> {
    invocation.invoke_async(&mut redis).await
}

/// Runs `commands` like [`run_all`].
pub(crate) async fn run_commands<T: redis::FromRedisValue + Send>(redis: &Redis, commands: Vec<redis::Cmd>) -> redis::RedisResult<Vec<T>> {
    let mut out = Vec::with_capacity(commands.len());
    let mut commands = commands.into_iter().peekable();
    while commands.peek().is_some() {
        let mut wave = Vec::with_capacity(IN_FLIGHT);
        for command in commands.by_ref().take(IN_FLIGHT) {
            wave.push(query(command, redis.clone()));
        }
        out.extend(futures::future::try_join_all(wave).await?);
    }
    Ok(out)
}

async fn query<T: redis::FromRedisValue>(command: redis::Cmd, mut redis: Redis) -> redis::RedisResult<T> {
    command.query_async(&mut redis).await
}

/// The followers of `author` to act on: `inline` when the script returned them all,
/// else read `CHUNK` at a time, each page handed to `each` before the next is read.
pub(crate) async fn for_followers<F, Fut>(
    redis: &Redis,
    keys: &Keys,
    author: i64,
    inline: Option<Vec<i64>>,
    mut each: F,
) -> anyhow::Result<()>
where
    F: FnMut(Vec<i64>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if let Some(followers) = inline {
        return each(followers).await;
    }
    let key = keys.followers(author);
    let mut cursor: u64 = 0;
    loop {
        let (next, page): (u64, Vec<i64>) =
            redis::cmd("SSCAN").arg(&key).arg(cursor).arg("COUNT").arg(CHUNK).query_async(&mut redis.clone()).await?;
        if !page.is_empty() {
            each(page).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An entry event, as step 2 left it.
struct Added<'a> {
    record: &'a Record<Event>,
    entry: EntryRef,
    object: Option<String>,
    state: String,
    count: u64,
    inline: Option<Vec<i64>>,
}

/// A follow or unfollow, as step 2 left it: the pair's current value.
struct Pair<'a> {
    record: &'a Record<Event>,
    followee: i64,
    version: String,
    follows: bool,
}

/// What step 3 read of a followee for step 4.
struct Synced {
    state: String,
    count: u64,
    entries: Scored,
    trimmed: String,
}

/// Applies batches of feed events to the Redis feeds, for one fan-out consumer.
pub struct FeedSink {
    redis: Redis,
    keys: Keys,
    settings: FeedSettings,
    progress_key: String,
    /// The generation this consumer resumed under; `None` until it resumed.
    generation: Option<String>,
    rebuilder: Rebuilder,
}

impl FeedSink {
    /// A sink writing under `keys` for the consumer whose progress key is
    /// `progress_key`, keeping feeds as `settings` say, and rebuilding with `rebuilder`
    /// when Redis lost the feeds.
    pub fn new(redis: Redis, keys: Keys, settings: FeedSettings, progress_key: String, rebuilder: Rebuilder) -> Self {
        Self { redis, keys, settings, progress_key, generation: None, rebuilder }
    }

    /// Step 2: one script per event on its own slot.
    async fn record_events<'a>(
        &self,
        records: &'a [Record<Event>],
    ) -> anyhow::Result<(Vec<Added<'a>>, Vec<Pair<'a>>, Vec<(String, Vec<Vec<u8>>)>)> {
        let (k, maxlen) = (&self.keys, self.settings.max_len);
        let mut adds = Vec::new();
        let mut add_calls = Vec::new();
        let mut pairs = Vec::new();
        let mut pair_calls = Vec::new();
        let mut deletes = Vec::new();
        let mut delete_calls = Vec::new();
        for record in records {
            let event = &record.event;
            let actor = event.actor.id;
            match (event.kind, &event.target) {
                (kind, _) if kind.fans_out() => {
                    let (Some(entry), Some(body)) = (EntryRef::of(event), feed::body(event)) else { continue };
                    let mut call = scripts::AUTHOR_ADD.prepare_invoke();
                    call.key(k.authored(actor)).key(k.bodies(actor)).key(k.author(actor)).key(k.followers(actor));
                    call.arg(entry.to_bytes().as_slice()).arg(feed::score(event.time)).arg(body).arg(maxlen).arg(CHUNK);
                    add_calls.push(call);
                    adds.push((record, entry, event.object.map(|o| o.to_string())));
                }
                (EventType::Follow | EventType::Unfollow, Some(target)) => {
                    let follows = event.kind == EventType::Follow;
                    let mut call = scripts::FOLLOWING_SET.prepare_invoke();
                    call.key(k.following(actor)).key(k.reader(actor));
                    call.arg(target.id)
                        .arg(feed::follow_version(event.time, &event.event_id))
                        .arg(u8::from(follows))
                        .arg(event.time.timestamp_millis());
                    pair_calls.push(call);
                    pairs.push((record, target.id));
                }
                (EventType::Deleted, _) => {
                    let Some(object) = event.object.map(|o| o.to_string()) else { continue };
                    let mut call = scripts::OBJECT_DELETE.prepare_invoke();
                    call.key(k.deleted(&object)).key(k.object_entries(&object));
                    delete_calls.push(call);
                    deletes.push(object);
                }
                _ => {}
            }
        }
        let (added, paired, deleted) = tokio::try_join!(
            run_all::<(String, u64, Vec<i64>, Vec<Vec<u8>>)>(&self.redis, add_calls),
            run_all::<String>(&self.redis, pair_calls),
            run_all::<Vec<Vec<u8>>>(&self.redis, delete_calls),
        )?;
        let mut out = Vec::with_capacity(adds.len());
        let mut trimmed = Vec::new();
        for ((record, entry, object), (state, count, inline, gone)) in adds.into_iter().zip(added) {
            // The authored set's trimmed entries: no longer registered under their objects.
            for pair in gone.chunks(2) {
                if let [entry, body] = pair {
                    if let Some(object) = feed::body_object(body) {
                        trimmed.push((object, vec![entry.clone()]));
                    }
                }
            }
            let inline = (count as usize <= CHUNK).then_some(inline);
            out.push(Added { record, entry, object, state, count, inline });
        }
        self.unregister(trimmed).await?;
        let pairs = pairs
            .into_iter()
            .zip(paired)
            .filter_map(|((record, followee), value)| {
                let (version, state) = value.rsplit_once('|')?;
                Some(Pair { record, followee, version: version.to_string(), follows: state == "1" })
            })
            .collect();
        Ok((out, pairs, deletes.into_iter().zip(deleted).collect()))
    }

    /// Takes refs out of their objects' registrations.
    async fn unregister(&self, refs: Vec<(String, Vec<Vec<u8>>)>) -> anyhow::Result<()> {
        let commands = refs
            .into_iter()
            .map(|(object, refs)| {
                let mut cmd = redis::cmd("SREM");
                cmd.arg(self.keys.object_entries(&object)).arg(refs);
                cmd
            })
            .collect();
        run_commands::<Value>(&self.redis, commands).await?;
        Ok(())
    }

    /// Pushes `entry` (by `actor`, from `record`) to `followers`.
    async fn push(&self, record: &Record<Event>, entry: EntryRef, followers: &[i64]) -> anyhow::Result<()> {
        let cutoff = now_ms() - self.settings.active_for.as_millis() as i64;
        let (bytes, score) = (entry.to_bytes(), feed::score(record.event.time));
        let calls = followers
            .iter()
            .map(|follower| {
                let mut call = scripts::PUSH.prepare_invoke();
                call.key(self.keys.friends(*follower)).key(self.keys.following(*follower)).key(self.keys.reader(*follower));
                call.arg(bytes.as_slice())
                    .arg(score)
                    .arg(entry.actor_id)
                    .arg(cutoff)
                    .arg(record.partition)
                    .arg(record.offset + 1)
                    .arg(self.settings.max_len);
                call
            })
            .collect();
        let pushed: Vec<i64> = run_all(&self.redis, calls).await?;
        metrics::counter!("feed_fanout_entries_written_total").increment(pushed.iter().filter(|p| **p == 1).count() as u64);
        metrics::counter!("feed_fanout_inactive_skipped_total").increment(pushed.iter().filter(|p| **p == 2).count() as u64);
        Ok(())
    }

    /// Takes `entry` out of its author's set and every follower's feed.
    pub(crate) async fn take_out(&self, entry: EntryRef) -> anyhow::Result<()> {
        let actor = entry.actor_id;
        let bytes = entry.to_bytes();
        let mut call = scripts::AUTHORED_REMOVE.prepare_invoke();
        call.key(self.keys.authored(actor)).key(self.keys.bodies(actor)).key(self.keys.followers(actor)).key(self.keys.author(actor));
        call.arg(bytes.as_slice()).arg(CHUNK);
        let (count, inline): (u64, Vec<i64>) = call.invoke_async(&mut self.redis.clone()).await?;
        let inline = (count as usize <= CHUNK).then_some(inline);
        let bytes = &bytes;
        for_followers(&self.redis, &self.keys, actor, inline, |followers| async move {
            let commands = followers
                .iter()
                .map(|f| {
                    let mut cmd = redis::cmd("ZREM");
                    cmd.arg(self.keys.friends(*f)).arg(bytes.as_slice());
                    cmd
                })
                .collect();
            run_commands::<Value>(&self.redis, commands).await?;
            Ok(())
        })
        .await
    }

    /// Step 3 for entries: pushes to the followers of authors that are not hot.
    async fn push_all(&self, added: &[Added<'_>]) -> anyhow::Result<()> {
        let pushed: Vec<&Added<'_>> = added.iter().filter(|a| a.state != "hot").collect();
        for wave in pushed.chunks(16) {
            futures::future::try_join_all(wave.iter().map(|a| self.push_to_followers(a))).await?;
        }
        Ok(())
    }

    async fn push_to_followers(&self, added: &Added<'_>) -> anyhow::Result<()> {
        let (record, entry) = (added.record, added.entry);
        for_followers(
            &self.redis,
            &self.keys,
            entry.actor_id,
            added.inline.clone(),
            |page| async move { self.push(record, entry, &page).await },
        )
        .await
    }

    /// Step 3 for follows: the followee's side, returning what step 4 needs.
    async fn sync_followers(&self, pairs: &[Pair<'_>]) -> anyhow::Result<Vec<Synced>> {
        let calls = pairs
            .iter()
            .map(|pair| {
                let (k, x) = (&self.keys, pair.followee);
                let mut call = scripts::FOLLOWERS_SYNC.prepare_invoke();
                call.key(k.followers(x)).key(k.follower_versions(x)).key(k.author(x)).key(k.authored(x));
                call.arg(pair.record.event.actor.id).arg(&pair.version).arg(u8::from(pair.follows)).arg(1);
                call
            })
            .collect();
        let synced: Vec<(String, u64, Scored, String)> = run_all(&self.redis, calls).await?;
        Ok(synced.into_iter().map(|(state, count, entries, trimmed)| Synced { state, count, entries, trimmed }).collect())
    }

    /// Step 4 for follows: copy the followee's entries (or note it hot), or remove them.
    async fn apply_pairs(&self, pairs: &[Pair<'_>], synced: &[Synced]) -> anyhow::Result<()> {
        let mut calls = Vec::new();
        for (pair, synced) in pairs.iter().zip(synced) {
            let (k, y, x) = (&self.keys, pair.record.event.actor.id, pair.followee);
            if pair.follows {
                if synced.state != "hot" {
                    calls.extend(feed_add_calls(k, y, x, &synced.entries, &synced.trimmed, self.settings.max_len, false));
                }
                if !synced.state.is_empty() && synced.state != "becoming-normal" {
                    calls.push(feed_add_hot(k, y, x, self.settings.max_len));
                }
            } else {
                for chunk in synced.entries.chunks(CHUNK).map(<[(Vec<u8>, i64)]>::to_vec).chain(synced.entries.is_empty().then(Vec::new)) {
                    let mut call = scripts::FEED_REMOVE.prepare_invoke();
                    call.key(k.friends(y)).key(k.following(y)).key(k.hot_following(y));
                    call.arg(x);
                    for (entry, _) in &chunk {
                        call.arg(entry.as_slice());
                    }
                    calls.push(call);
                }
            }
        }
        run_all::<i64>(&self.redis, calls).await?;
        Ok(())
    }

    /// Step 4 for entries: register under their objects; the ones whose object was
    /// deleted meanwhile.
    async fn register(&self, added: &[Added<'_>]) -> anyhow::Result<Vec<EntryRef>> {
        let with_object: Vec<&Added<'_>> = added.iter().filter(|a| a.object.is_some()).collect();
        let calls = with_object
            .iter()
            .filter_map(|a| {
                let object = a.object.as_deref()?;
                let mut call = scripts::OBJECT_REGISTER.prepare_invoke();
                call.key(self.keys.object_entries(object)).key(self.keys.deleted(object)).arg(a.entry.to_bytes().as_slice());
                Some(call)
            })
            .collect();
        let deleted: Vec<i64> = run_all(&self.redis, calls).await?;
        Ok(with_object.iter().zip(deleted).filter(|(_, d)| *d == 1).map(|(a, _)| a.entry).collect())
    }

    /// Steps 3 and 4 for deletes: every registered entry out of every feed, then the
    /// registrations.
    async fn sweep(&self, deletes: &[(String, Vec<Vec<u8>>)]) -> anyhow::Result<()> {
        for (object, refs) in deletes {
            for entry in refs.iter().filter_map(|r| EntryRef::parse(r)) {
                self.take_out(entry).await?;
            }
            let _: () = redis::cmd("DEL").arg(self.keys.object_entries(object)).query_async(&mut self.redis.clone()).await?;
        }
        Ok(())
    }
}

/// `FEED_ADD` calls copying `entries` of `author` into `reader`'s feed, [`CHUNK`] at a
/// time (oldest first, so trimming keeps the newest); the last chunk takes the author
/// out of the reader's hot set when `leaving_hot`.
pub(crate) fn feed_add_calls(
    keys: &Keys,
    reader: i64,
    author: i64,
    entries: &[(Vec<u8>, i64)],
    trimmed: &str,
    maxlen: usize,
    leaving_hot: bool,
) -> Vec<ScriptInvocation<'static>> {
    // A reader's feed keeps at most `maxlen`: older entries would be trimmed at once.
    let newest = &entries[entries.len().saturating_sub(maxlen)..];
    let chunks: Vec<&[(Vec<u8>, i64)]> = if newest.is_empty() { vec![&[]] } else { newest.chunks(CHUNK / 10).collect() };
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut call = scripts::FEED_ADD.prepare_invoke();
            call.key(keys.friends(reader)).key(keys.following(reader)).key(keys.reader(reader)).key(keys.hot_following(reader));
            call.arg(author).arg(if leaving_hot && i == last { "copy-last" } else { "copy" }).arg(maxlen).arg(trimmed);
            for (entry, score) in chunk {
                call.arg(*score).arg(entry.as_slice());
            }
            call
        })
        .collect()
}

/// The `FEED_ADD` call noting `author` hot in `reader`'s hot set.
pub(crate) fn feed_add_hot(keys: &Keys, reader: i64, author: i64, maxlen: usize) -> ScriptInvocation<'static> {
    let mut call = scripts::FEED_ADD.prepare_invoke();
    call.key(keys.friends(reader)).key(keys.following(reader)).key(keys.reader(reader)).key(keys.hot_following(reader));
    call.arg(author).arg("hot").arg(maxlen).arg("");
    call
}

impl Sink<Event> for FeedSink {
    /// Waits until the feeds are complete (rebuilding them if Redis lost them), then
    /// reads this consumer's offsets.
    async fn resume_from(&mut self, partitions: &[i32]) -> anyhow::Result<HashMap<i32, i64>> {
        let generation = self.rebuilder.complete_generation().await?;
        let marks = feed_core::progress::read(&mut self.redis, &self.progress_key).await?;
        self.generation = Some(generation);
        Ok(marks.into_iter().filter(|(p, _)| partitions.contains(p)).collect())
    }

    async fn apply(&mut self, records: &[Record<Event>], next: &[(i32, i64)]) -> anyhow::Result<Stored> {
        let Some(generation) = self.generation.clone() else { return Ok(Stored::Moved) };
        let firsts: Vec<(i32, i64)> = next.iter().map(|(p, n)| (*p, first_offset(records, *p, *n))).collect();
        let mut check = scripts::BATCH_CHECK.prepare_invoke();
        check.key(self.keys.generation()).key(&self.progress_key).arg(&generation);
        for (partition, first) in &firsts {
            check.arg(*partition).arg(*first);
        }
        if let Some(moved) = self.moved(check.invoke_async(&mut self.redis.clone()).await?) {
            return Ok(moved);
        }

        let (added, pairs, deletes) = self.record_events(records).await?;
        let (_, synced, _) = tokio::try_join!(self.push_all(&added), self.sync_followers(&pairs), self.sweep(&deletes))?;
        let (_, deleted_meanwhile) = tokio::try_join!(self.apply_pairs(&pairs, &synced), self.register(&added))?;
        for entry in deleted_meanwhile {
            self.take_out(entry).await?;
        }
        let crossing = pairs.iter().zip(&synced).map(|(p, s)| (p.followee, s.state.as_str(), s.count));
        let authors = added.iter().map(|a| (a.entry.actor_id, a.state.as_str(), a.count));
        crate::hot::move_across(&self.redis, &self.keys, &self.settings, crossing.chain(authors)).await?;

        let mut finish = scripts::BATCH_FINISH.prepare_invoke();
        finish.key(self.keys.generation()).key(&self.progress_key).arg(&generation).arg(self.keys.progress_channel());
        for ((partition, first), (_, next)) in firsts.iter().zip(next) {
            finish.arg(*partition).arg(*first).arg(*next);
        }
        Ok(self.moved(finish.invoke_async(&mut self.redis.clone()).await?).unwrap_or(Stored::Applied))
    }

    /// Redis unreachable, restarting, loading its data or failing over (see
    /// `feed_core::redis_client::is_unavailable`); a script error (`WRONGTYPE` on a key,
    /// say) is about the records.
    fn is_unavailable(&self, error: &anyhow::Error) -> bool {
        error.downcast_ref::<redis::RedisError>().is_some_and(feed_core::redis_client::is_unavailable)
    }

    async fn offsets_moved(&mut self) -> bool {
        let current: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(self.keys.generation()).query_async(&mut self.redis).await;
        // A Redis that cannot be reached says nothing; the next batch will tell.
        current.is_ok_and(|current| self.generation.is_none() || current != self.generation)
    }
}

impl FeedSink {
    /// What a check's or finish's answer means: `None` to go on.
    fn moved(&mut self, answer: i64) -> Option<Stored> {
        match answer {
            -1 => {
                tracing::warn!("the feeds' generation changed (rebuilt, or Redis lost its data)");
                self.generation = None;
                Some(Stored::Moved)
            }
            -2 => Some(Stored::Moved),
            _ => None,
        }
    }
}
