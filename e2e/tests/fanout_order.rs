//! The fan-out against real Redis (a single server, or the cluster the test command
//! starts), with the order of operations forced.
//!
//! The race arguments of `services/fanout/src/feeds.rs`, step by step: for a post racing
//! a follow, a post racing an unfollow and a like racing its object's delete, every
//! interleaving of the two sides' steps (each step one script, as the sink runs them)
//! ends with the entry in the feed exactly once, or nowhere. Then whole batches through
//! the sink: either order, redelivery, trimming, generations, inactive readers, large
//! follower sets and hot authors crossing the line both ways.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use fanout::rebuild::Rebuilder;
use fanout::{scripts, FeedSink};
use feed_core::config::{CommonConfig, FeedSettings};
use feed_core::consumer::{Record, Sink, Stored};
use feed_core::event::{Event, EventType, ObjectKind, ObjectRef, UserRef};
use feed_core::feed::{self, EntryRef};
use feed_core::keys::Keys;
use feed_core::redis_client::Redis;
use std::collections::HashMap;

fn user(id: i64) -> UserRef {
    UserRef { id, name: format!("u{id}") }
}

/// A post by `author`; its time grows with `id`, so scores never tie.
fn post(author: i64, id: i64) -> Event {
    let object = ObjectRef { kind: ObjectKind::Post, id };
    let mut event = Event::new(EventType::Post, user(author), Some(object), None, serde_json::json!({"content": "x"}));
    event.time = chrono::DateTime::from_timestamp(1_700_000_000 + id, 0).expect("valid time");
    event
}

/// A like by `liker` of post `id` by `owner`.
fn like(liker: i64, owner: i64, id: i64) -> Event {
    let object = ObjectRef { kind: ObjectKind::Post, id };
    Event::new(EventType::Like, user(liker), Some(object), Some(user(owner)), serde_json::Value::Null)
}

fn follow(kind: EventType, follower: i64, followee: i64) -> Event {
    Event::new(kind, user(follower), None, Some(user(followee)), serde_json::Value::Null)
}

fn common(prefix: &str) -> CommonConfig {
    let infra = e2e::infra();
    CommonConfig {
        database_url: infra.postgres_url.clone(),
        redis_url: infra.redis_url.clone(),
        redis_cluster: infra.redis_cluster,
        redis_ca_file: None,
        redis_key_prefix: prefix.to_string(),
        kafka: feed_core::kafka::Kafka::plaintext(infra.brokers.clone()),
        feed_topic: "feed".into(),
        events_topic: "events".into(),
        analytics_topic: "analytics".into(),
        writer_group: "writer".into(),
        fanout_group: "fanout".into(),
        run_migrations: false,
        topics: feed_core::config::TopicSettings::local(3),
        analytics_window: feed_core::config::TimeWindow {
            max_age: chrono::TimeDelta::hours(168),
            max_ahead: chrono::TimeDelta::minutes(60),
        },
    }
}

/// A fan-out sink on its own key prefix, with complete feeds (a generation is set, so
/// no rebuild is needed), that numbers records per partition as a topic would.
struct Feeds {
    sink: FeedSink,
    keys: Keys,
    redis: Redis,
    settings: FeedSettings,
    next: HashMap<i32, i64>,
}

impl Feeds {
    async fn new(settings: FeedSettings) -> Self {
        let common = common(&format!("test:{}:", uuid::Uuid::new_v4().simple()));
        let redis = common.redis().await.expect("Redis");
        let keys = Keys::new(&common.redis_key_prefix);
        redis::cmd("SET").arg(keys.generation()).arg("g1").query_async::<()>(&mut redis.clone()).await.expect("SET");
        // Never used: the feeds are complete.
        let db = sqlx::postgres::PgPoolOptions::new().connect_lazy(&common.database_url).expect("lazy pool");
        let rebuilder = Rebuilder::new(db, redis.clone(), &common, settings);
        let mut sink = FeedSink::new(redis.clone(), keys.clone(), settings, keys.progress("fanout", "feed"), rebuilder);
        let next = sink.resume_from(&[0, 1, 2]).await.expect("resume");
        assert!(next.is_empty(), "a fresh consumer has applied nothing");
        Self { sink, keys, redis, settings, next }
    }

    /// Applies `events` as the next records of their partitions, in this order.
    async fn apply(&mut self, events: &[(i32, &Event)]) -> Stored {
        let records: Vec<Record<Event>> = events
            .iter()
            .map(|(partition, event)| {
                let offset = self.next.entry(*partition).or_insert(0);
                *offset += 1;
                Record { partition: *partition, offset: *offset - 1, event: (*event).clone() }
            })
            .collect();
        let mut next: Vec<(i32, i64)> = events.iter().map(|(p, _)| (*p, self.next[p])).collect();
        next.sort_unstable();
        next.dedup();
        self.sink.apply(&records, &next).await.expect("apply")
    }

    /// The refs in `user`'s pushed feed, oldest first.
    async fn feed(&self, user: i64) -> Vec<EntryRef> {
        let members: Vec<Vec<u8>> =
            redis::cmd("ZRANGE").arg(self.keys.friends(user)).arg(0).arg(-1).query_async(&mut self.redis.clone()).await.expect("ZRANGE");
        members.iter().map(|m| EntryRef::parse(m).expect("a ref")).collect()
    }

    /// `user`'s friends feed as a read sees it (pushed entries merged with hot authors'),
    /// event ids newest first.
    async fn read(&self, user: i64) -> Vec<uuid::Uuid> {
        let page =
            feed_core::friends::read(&self.redis, &self.keys, &feed_core::friends::Bodies::new(100), user, None, 1000).await.expect("read");
        page.entries.iter().map(|e| e.entry.event_id).collect()
    }

    /// Marks `users` as readers active now.
    async fn activate(&self, users: &[i64]) {
        for user in users {
            let now = chrono::Utc::now().timestamp_millis();
            redis::cmd("HSET")
                .arg(self.keys.reader(*user))
                .arg("active")
                .arg(now)
                .query_async::<()>(&mut self.redis.clone())
                .await
                .unwrap();
        }
    }

    async fn invoke<T: redis::FromRedisValue>(&self, call: redis::ScriptInvocation<'_>) -> T {
        call.invoke_async(&mut self.redis.clone()).await.expect("script")
    }
}

fn ref_of(event: &Event) -> EntryRef {
    EntryRef::of(event).expect("fans out")
}

/// One side's steps, as the sink runs them (see `services/fanout/src/feeds.rs`).
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The entry into its author's set; the followers read.
    AuthorAdd,
    /// Pushes to the followers read.
    Push,
    /// Registration under its object; takes itself out if the object was deleted.
    Register,
    /// The follower's side of a follow or unfollow.
    FollowingSet,
    /// The followee's side; its entries read.
    FollowersSync,
    /// Copy (follow) or removal (unfollow) of the entries read.
    FeedChange,
    /// A delete's tombstone; the registered entries read.
    Tombstone,
    /// The delete's sweep of what was read.
    Sweep,
}

/// What the steps read, for the steps after them.
#[derive(Default)]
struct Scratch {
    followers: Vec<i64>,
    pair: String,
    entries: Vec<(Vec<u8>, i64)>,
    registered: Vec<Vec<u8>>,
}

impl Feeds {
    /// Runs one step of `event`'s side.
    async fn step(&self, step: Step, event: &Event, scratch: &mut Scratch) {
        let k = &self.keys;
        let maxlen = self.settings.max_len;
        match step {
            Step::AuthorAdd => {
                let (entry, a) = (ref_of(event), event.actor.id);
                let mut call = scripts::AUTHOR_ADD.prepare_invoke();
                call.key(k.authored(a)).key(k.bodies(a)).key(k.author(a)).key(k.followers(a));
                call.arg(entry.to_bytes().as_slice()).arg(feed::score(event.time)).arg(feed::body(event).unwrap()).arg(maxlen).arg(1000);
                let (_, _, followers, _): (String, u64, Vec<i64>, Vec<Vec<u8>>) = self.invoke(call).await;
                scratch.followers = followers;
            }
            Step::Push => {
                for follower in scratch.followers.clone() {
                    let mut call = scripts::PUSH.prepare_invoke();
                    call.key(k.friends(follower)).key(k.following(follower)).key(k.reader(follower));
                    call.arg(ref_of(event).to_bytes().as_slice())
                        .arg(feed::score(event.time))
                        .arg(event.actor.id)
                        .arg(0)
                        .arg(0)
                        .arg(1)
                        .arg(maxlen);
                    let _: i64 = self.invoke(call).await;
                }
            }
            Step::Register => {
                let object = event.object.unwrap().to_string();
                let mut call = scripts::OBJECT_REGISTER.prepare_invoke();
                call.key(k.object_entries(&object)).key(k.deleted(&object)).arg(ref_of(event).to_bytes().as_slice());
                if self.invoke::<i64>(call).await == 1 {
                    self.take_out(ref_of(event)).await;
                }
            }
            Step::FollowingSet => {
                let (y, x) = (event.actor.id, event.target.as_ref().unwrap().id);
                let mut call = scripts::FOLLOWING_SET.prepare_invoke();
                call.key(k.following(y)).key(k.reader(y));
                let follows = u8::from(event.kind == EventType::Follow);
                call.arg(x).arg(feed::follow_version(event.time, &event.event_id)).arg(follows).arg(event.time.timestamp_millis());
                scratch.pair = self.invoke(call).await;
            }
            Step::FollowersSync => {
                let (y, x) = (event.actor.id, event.target.as_ref().unwrap().id);
                let (version, state) = scratch.pair.rsplit_once('|').unwrap();
                let mut call = scripts::FOLLOWERS_SYNC.prepare_invoke();
                call.key(k.followers(x)).key(k.follower_versions(x)).key(k.author(x)).key(k.authored(x));
                call.arg(y).arg(version).arg(state).arg(1);
                let (_, _, entries, _): (String, u64, Vec<(Vec<u8>, i64)>, String) = self.invoke(call).await;
                scratch.entries = entries;
            }
            Step::FeedChange => {
                let (y, x) = (event.actor.id, event.target.as_ref().unwrap().id);
                if event.kind == EventType::Follow {
                    let mut call = scripts::FEED_ADD.prepare_invoke();
                    call.key(k.friends(y)).key(k.following(y)).key(k.reader(y)).key(k.hot_following(y));
                    call.arg(x).arg("copy").arg(maxlen).arg("");
                    for (entry, score) in &scratch.entries {
                        call.arg(*score).arg(entry.as_slice());
                    }
                    let _: i64 = self.invoke(call).await;
                } else {
                    let mut call = scripts::FEED_REMOVE.prepare_invoke();
                    call.key(k.friends(y)).key(k.following(y)).key(k.hot_following(y)).arg(x);
                    for (entry, _) in &scratch.entries {
                        call.arg(entry.as_slice());
                    }
                    let _: i64 = self.invoke(call).await;
                }
            }
            Step::Tombstone => {
                let object = event.object.unwrap().to_string();
                let mut call = scripts::OBJECT_DELETE.prepare_invoke();
                call.key(k.deleted(&object)).key(k.object_entries(&object));
                scratch.registered = self.invoke(call).await;
            }
            Step::Sweep => {
                for entry in scratch.registered.clone() {
                    self.take_out(EntryRef::parse(&entry).unwrap()).await;
                }
            }
        }
    }

    /// Out of its author's set and its followers' feeds.
    async fn take_out(&self, entry: EntryRef) {
        let (k, a) = (&self.keys, entry.actor_id);
        let mut call = scripts::AUTHORED_REMOVE.prepare_invoke();
        call.key(k.authored(a)).key(k.bodies(a)).key(k.followers(a)).key(k.author(a)).arg(entry.to_bytes().as_slice()).arg(1000);
        let (_, followers): (u64, Vec<i64>) = self.invoke(call).await;
        for follower in followers {
            redis::cmd("ZREM")
                .arg(k.friends(follower))
                .arg(entry.to_bytes().as_slice())
                .query_async::<()>(&mut self.redis.clone())
                .await
                .unwrap();
        }
    }
}

/// Every way of interleaving `a` and `b`, each kept in its own order: which side each
/// step comes from.
fn interleavings(a: usize, b: usize) -> Vec<Vec<bool>> {
    if a == 0 || b == 0 {
        return vec![vec![true; a].into_iter().chain(vec![false; b]).collect()];
    }
    let mut out = Vec::new();
    for mut rest in interleavings(a - 1, b) {
        rest.insert(0, true);
        out.push(rest);
    }
    for mut rest in interleavings(a, b - 1) {
        rest.insert(0, false);
        out.push(rest);
    }
    out
}

/// Runs `first` (steps of `one`) and `second` (steps of `other`) in every interleaving,
/// each on fresh keys prepared by `setup`, and checks the outcome with `check`.
async fn every_interleaving<S, C>(one: (&Event, &[Step]), other: (&Event, &[Step]), setup: S, check: C)
where
    S: AsyncFn(&Feeds),
    C: AsyncFn(&Feeds, &str),
{
    for order in interleavings(one.1.len(), other.1.len()) {
        let feeds = Feeds::new(FeedSettings::default()).await;
        setup(&feeds).await;
        let (mut a, mut b) = (one.1.iter(), other.1.iter());
        let (mut scratch_a, mut scratch_b) = (Scratch::default(), Scratch::default());
        for from_one in &order {
            if *from_one {
                feeds.step(*a.next().unwrap(), one.0, &mut scratch_a).await;
            } else {
                feeds.step(*b.next().unwrap(), other.0, &mut scratch_b).await;
            }
        }
        let label: String = order.iter().map(|o| if *o { 'P' } else { 'F' }).collect();
        check(&feeds, &label).await;
    }
}

#[tokio::test]
async fn every_interleaving_of_a_post_and_a_follow_lands_the_post_once() {
    let (p, f) = (post(1, 1), follow(EventType::Follow, 2, 1));
    let posting = [Step::AuthorAdd, Step::Push];
    let following = [Step::FollowingSet, Step::FollowersSync, Step::FeedChange];
    every_interleaving(
        (&p, &posting),
        (&f, &following),
        async |feeds: &Feeds| feeds.activate(&[2]).await,
        async |feeds: &Feeds, order: &str| assert_eq!(feeds.feed(2).await, vec![ref_of(&p)], "order {order}"),
    )
    .await;
}

#[tokio::test]
async fn every_interleaving_of_a_post_and_an_unfollow_leaves_it_out() {
    let (p, earlier, unfollow) = (post(1, 1), follow(EventType::Follow, 2, 1), follow(EventType::Unfollow, 2, 1));
    let posting = [Step::AuthorAdd, Step::Push];
    let unfollowing = [Step::FollowingSet, Step::FollowersSync, Step::FeedChange];
    every_interleaving(
        (&p, &posting),
        (&unfollow, &unfollowing),
        async |feeds: &Feeds| {
            feeds.activate(&[2]).await;
            let mut scratch = Scratch::default();
            for step in [Step::FollowingSet, Step::FollowersSync, Step::FeedChange] {
                feeds.step(step, &earlier, &mut scratch).await;
            }
        },
        async |feeds: &Feeds, order: &str| assert!(feeds.feed(2).await.is_empty(), "order {order}"),
    )
    .await;
}

#[tokio::test]
async fn every_interleaving_of_a_like_and_its_objects_delete_leaves_it_nowhere() {
    let (original, earlier, liked) = (post(1, 7), follow(EventType::Follow, 3, 2), like(2, 1, 7));
    let liking = [Step::AuthorAdd, Step::Push, Step::Register];
    let delete = Event::new(EventType::Deleted, user(1), original.object, None, serde_json::Value::Null);
    let deleting = [Step::Tombstone, Step::Sweep];
    every_interleaving(
        (&liked, &liking),
        (&delete, &deleting),
        async |feeds: &Feeds| {
            // User 3 follows the liker.
            feeds.activate(&[3]).await;
            let mut scratch = Scratch::default();
            for step in [Step::FollowingSet, Step::FollowersSync, Step::FeedChange] {
                feeds.step(step, &earlier, &mut scratch).await;
            }
        },
        async |feeds: &Feeds, order: &str| {
            assert!(feeds.feed(3).await.is_empty(), "order {order}: the like stayed in a follower's feed");
            let authored: Vec<Vec<u8>> =
                redis::cmd("ZRANGE").arg(feeds.keys.authored(2)).arg(0).arg(-1).query_async(&mut feeds.redis.clone()).await.unwrap();
            assert!(authored.is_empty(), "order {order}: the like stayed in its author's set");
        },
    )
    .await;
}

#[tokio::test]
async fn post_then_follow_and_follow_then_post_both_land_once() {
    for order in ["post first", "follow first", "one batch"] {
        let mut feeds = Feeds::new(FeedSettings::default()).await;
        // Different actors, different partitions, as on the topic.
        let (p, f) = (post(1, 1), follow(EventType::Follow, 2, 1));
        match order {
            "post first" => {
                assert_eq!(feeds.apply(&[(0, &p)]).await, Stored::Applied);
                assert_eq!(feeds.apply(&[(1, &f)]).await, Stored::Applied);
            }
            "follow first" => {
                assert_eq!(feeds.apply(&[(1, &f)]).await, Stored::Applied);
                assert_eq!(feeds.apply(&[(0, &p)]).await, Stored::Applied);
            }
            _ => assert_eq!(feeds.apply(&[(0, &p), (1, &f)]).await, Stored::Applied),
        }
        assert_eq!(feeds.feed(2).await, vec![ref_of(&p)], "{order}");
        assert_eq!(feeds.read(2).await, vec![p.event_id], "{order}: the body is there");

        // The same records again (a stale consumer) are refused and change nothing.
        let record = Record { partition: 0, offset: 0, event: p.clone() };
        assert_eq!(feeds.sink.apply(&[record], &[(0, 1)]).await.expect("apply"), Stored::Moved);
        assert_eq!(feeds.feed(2).await.len(), 1);
    }
}

#[tokio::test]
async fn unfollow_removes_exactly_that_authors_entries() {
    let mut feeds = Feeds::new(FeedSettings::default()).await;
    let (f1, f11) = (follow(EventType::Follow, 9, 1), follow(EventType::Follow, 9, 11));
    let (p1, p2, p3) = (post(1, 1), post(11, 2), post(1, 3));
    assert_eq!(feeds.apply(&[(0, &f1), (0, &f11)]).await, Stored::Applied);
    assert_eq!(feeds.apply(&[(1, &p1), (2, &p2), (1, &p3)]).await, Stored::Applied);
    assert_eq!(feeds.feed(9).await.len(), 3);
    assert_eq!(feeds.apply(&[(0, &follow(EventType::Unfollow, 9, 1))]).await, Stored::Applied);
    assert_eq!(feeds.feed(9).await, vec![ref_of(&p2)], "only user 11's post stays");
    // Posts by 1 after the unfollow no longer reach 9.
    assert_eq!(feeds.apply(&[(1, &post(1, 4))]).await, Stored::Applied);
    assert_eq!(feeds.feed(9).await.len(), 1);
}

#[tokio::test]
async fn an_older_follow_applied_after_a_newer_unfollow_changes_nothing() {
    let mut feeds = Feeds::new(FeedSettings::default()).await;
    let older_follow = follow(EventType::Follow, 9, 1);
    let mut newer_unfollow = follow(EventType::Unfollow, 9, 1);
    newer_unfollow.time = older_follow.time + chrono::Duration::seconds(1);
    assert_eq!(feeds.apply(&[(1, &post(1, 1)), (0, &newer_unfollow)]).await, Stored::Applied);
    // The follow arrives late (a replay from an older offset, say).
    assert_eq!(feeds.apply(&[(0, &older_follow)]).await, Stored::Applied);
    assert!(feeds.feed(9).await.is_empty(), "9 unfollowed 1 last");
    let followers: Vec<i64> =
        redis::cmd("SMEMBERS").arg(feeds.keys.followers(1)).query_async(&mut feeds.redis.clone()).await.expect("SMEMBERS");
    assert!(followers.is_empty());
}

#[tokio::test]
async fn feeds_are_trimmed_to_the_newest_entries_and_say_so() {
    let mut feeds = Feeds::new(FeedSettings { max_len: 5, ..FeedSettings::default() }).await;
    let posts: Vec<Event> = (1..=8).map(|i| post(1, i)).collect();
    let f = follow(EventType::Follow, 2, 1);
    assert_eq!(feeds.apply(&[(0, &f)]).await, Stored::Applied);
    let batch: Vec<(i32, &Event)> = posts.iter().map(|p| (1, p)).collect();
    assert_eq!(feeds.apply(&batch).await, Stored::Applied);
    let newest: Vec<EntryRef> = posts[3..].iter().map(ref_of).collect();
    assert_eq!(feeds.feed(2).await, newest);
    let trimmed: String = redis::cmd("HGET").arg(feeds.keys.reader(2)).arg("trimmed").query_async(&mut feeds.redis.clone()).await.unwrap();
    assert_eq!(trimmed.parse::<i64>().unwrap(), feed::score(posts[2].time), "the newest entry trimmed");
    let page = feed_core::friends::read(&feeds.redis, &feeds.keys, &feed_core::friends::Bodies::new(100), 2, None, 10).await.unwrap();
    assert_eq!(page.entries.len(), 5);
    assert!(!page.complete, "older entries are only in PostgreSQL");
    // The author's own set is trimmed too, and the trimmed entries' bodies are gone.
    let bodies: i64 = redis::cmd("HLEN").arg(feeds.keys.bodies(1)).query_async(&mut feeds.redis.clone()).await.unwrap();
    assert_eq!(bodies, 5);
}

#[tokio::test]
async fn a_changed_generation_refuses_the_batch() {
    let mut feeds = Feeds::new(FeedSettings::default()).await;
    assert_eq!(feeds.apply(&[(0, &follow(EventType::Follow, 2, 1))]).await, Stored::Applied);
    // Redis lost everything (or a rebuild ran): nothing is written until it resumes.
    redis::cmd("DEL").arg(feeds.keys.generation()).query_async::<()>(&mut feeds.redis.clone()).await.expect("DEL");
    assert_eq!(feeds.apply(&[(1, &post(1, 1))]).await, Stored::Moved);
    assert!(feeds.feed(2).await.is_empty());
    assert!(feeds.sink.offsets_moved().await);
}

#[tokio::test]
async fn inactive_readers_are_skipped_and_told_what_they_lack() {
    let settings = FeedSettings { active_for: std::time::Duration::from_secs(3600), ..FeedSettings::default() };
    let mut feeds = Feeds::new(settings).await;
    assert_eq!(feeds.apply(&[(0, &follow(EventType::Follow, 2, 1)), (0, &follow(EventType::Follow, 3, 1))]).await, Stored::Applied);
    // 3 last read two hours ago; following counted as activity only at the follow's time.
    let long_ago = chrono::Utc::now().timestamp_millis() - 2 * 3600 * 1000;
    redis::cmd("HSET").arg(feeds.keys.reader(3)).arg("active").arg(long_ago).query_async::<()>(&mut feeds.redis.clone()).await.unwrap();
    let p = post(1, 1);
    assert_eq!(feeds.apply(&[(1, &p)]).await, Stored::Applied);
    assert_eq!(feeds.feed(2).await, vec![ref_of(&p)]);
    assert!(feeds.feed(3).await.is_empty(), "inactive: not pushed");
    let page = feed_core::friends::read(&feeds.redis, &feeds.keys, &feed_core::friends::Bodies::new(100), 3, None, 10).await.unwrap();
    assert_eq!(page.stale, vec![(1, 1)], "its feed lacks events of partition 1 below offset 1");
}

#[tokio::test]
async fn a_large_follower_set_is_read_and_pushed_in_bounded_pieces() {
    let mut feeds = Feeds::new(FeedSettings::default()).await;
    let followers: Vec<i64> = (1000..3500).collect();
    let batch: Vec<Event> = followers.iter().map(|f| follow(EventType::Follow, *f, 1)).collect();
    let records: Vec<(i32, &Event)> = batch.iter().map(|e| (0, e)).collect();
    for chunk in records.chunks(500) {
        assert_eq!(feeds.apply(chunk).await, Stored::Applied);
    }
    let p = post(1, 1);
    assert_eq!(feeds.apply(&[(1, &p)]).await, Stored::Applied);
    for follower in [1000, 2222, 3499] {
        assert_eq!(feeds.feed(follower).await, vec![ref_of(&p)], "follower {follower}");
    }
}

#[tokio::test]
async fn hot_authors_cross_the_line_both_ways_with_nothing_missing_or_doubled() {
    let settings = FeedSettings { hot_followers: 3, ..FeedSettings::default() };
    let mut feeds = Feeds::new(settings).await;
    let before = post(1, 1);
    assert_eq!(feeds.apply(&[(0, &follow(EventType::Follow, 10, 1)), (1, &before)]).await, Stored::Applied);
    // Two more followers make 1 hot (3 ≥ 3).
    assert_eq!(feeds.apply(&[(0, &follow(EventType::Follow, 11, 1)), (0, &follow(EventType::Follow, 12, 1))]).await, Stored::Applied);
    let state: Option<String> =
        redis::cmd("HGET").arg(feeds.keys.author(1)).arg("state").query_async(&mut feeds.redis.clone()).await.unwrap();
    assert_eq!(state.as_deref(), Some("hot"));
    let during = post(1, 2);
    assert_eq!(feeds.apply(&[(1, &during)]).await, Stored::Applied);
    assert!(!feeds.feed(10).await.contains(&ref_of(&during)), "hot: not pushed");
    for reader in [10, 11, 12] {
        assert_eq!(
            feeds.read(reader).await,
            vec![during.event_id, before.event_id],
            "reader {reader} merges the hot author's entries, once each"
        );
    }
    // Two unfollows bring it below 80% of the line (1 < 2.4): normal again, pushed.
    assert_eq!(feeds.apply(&[(0, &follow(EventType::Unfollow, 11, 1)), (0, &follow(EventType::Unfollow, 12, 1))]).await, Stored::Applied);
    let state: Option<String> =
        redis::cmd("HGET").arg(feeds.keys.author(1)).arg("state").query_async(&mut feeds.redis.clone()).await.unwrap();
    assert_eq!(state, None);
    let after = post(1, 3);
    assert_eq!(feeds.apply(&[(1, &after)]).await, Stored::Applied);
    assert_eq!(feeds.feed(10).await, vec![ref_of(&before), ref_of(&during), ref_of(&after)], "the hot entries were copied back");
    assert_eq!(feeds.read(10).await, vec![after.event_id, during.event_id, before.event_id]);
    assert!(feeds.read(11).await.is_empty(), "unfollowed");
}
