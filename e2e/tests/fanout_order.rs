//! The fan-out's batch script against real Redis, with the order of events forced:
//! whichever of a post by X and a follow of X is applied first, the follower ends with
//! the post exactly once; an unfollow removes exactly X's entries; an older follow
//! applied after a newer unfollow changes nothing; a redelivered batch is refused.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use fanout::rebuild::Rebuilder;
use fanout::FeedSink;
use feed_core::config::CommonConfig;
use feed_core::consumer::{Record, Sink, Stored};
use feed_core::event::{Event, EventType, ObjectKind, ObjectRef, UserRef};
use feed_core::keys::Keys;
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

fn follow(kind: EventType, follower: i64, followee: i64) -> Event {
    Event::new(kind, user(follower), None, Some(user(followee)), serde_json::Value::Null)
}

/// A fan-out sink on its own key prefix, with complete feeds (a generation is set, so
/// no rebuild is needed), that numbers records per partition as a topic would.
struct Feeds {
    sink: FeedSink,
    keys: Keys,
    redis: redis::aio::ConnectionManager,
    next: HashMap<i32, i64>,
}

impl Feeds {
    async fn new(max_len: usize) -> Self {
        let infra = e2e::infra();
        let redis = feed_core::redis_pool::multiplexed(&infra.redis_url).await.expect("Redis");
        let common = CommonConfig {
            database_url: infra.postgres_url.clone(),
            redis_url: infra.redis_url.clone(),
            redis_key_prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
            kafka_brokers: infra.brokers.clone(),
            feed_topic: "feed".into(),
            events_topic: "events".into(),
            analytics_topic: "analytics".into(),
            writer_group: "writer".into(),
            fanout_group: "fanout".into(),
            run_migrations: false,
            topic_partitions: 3,
            topic_replication: 1,
            analytics_window: feed_core::config::TimeWindow {
                max_age: chrono::TimeDelta::hours(168),
                max_ahead: chrono::TimeDelta::minutes(60),
            },
        };
        let keys = Keys::new(&common.redis_key_prefix);
        redis::cmd("SET").arg(keys.generation()).arg("g1").query_async::<()>(&mut redis.clone()).await.expect("SET");
        // Never used: the feeds are complete.
        let db = sqlx::postgres::PgPoolOptions::new().connect_lazy(&common.database_url).expect("lazy pool");
        let rebuilder = Rebuilder::new(db, redis.clone(), &common, max_len);
        let mut sink = FeedSink::new(redis.clone(), keys.clone(), max_len, keys.progress("fanout", "feed"), rebuilder);
        let next = sink.resume_from(&[0, 1, 2]).await.expect("resume");
        assert!(next.is_empty(), "a fresh group has applied nothing");
        Self { sink, keys, redis, next }
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

    async fn feed(&mut self, user: i64) -> Vec<String> {
        redis::cmd("ZRANGE").arg(self.keys.friends(user)).arg(0).arg(-1).query_async(&mut self.redis).await.expect("ZRANGE")
    }
}

#[tokio::test]
async fn post_then_follow_and_follow_then_post_both_land_once() {
    for post_first in [true, false] {
        let mut feeds = Feeds::new(800).await;
        // Different actors, different partitions, as on the topic.
        let (p, f) = (post(1, 1), follow(EventType::Follow, 2, 1));
        let order = if post_first { [(0, &p), (1, &f)] } else { [(1, &f), (0, &p)] };
        for one in order {
            assert_eq!(feeds.apply(&[one]).await, Stored::Applied);
        }
        assert_eq!(feeds.feed(2).await, vec![feed_core::feed::member(&p).unwrap()], "post_first={post_first}");

        // The same records again (a stale consumer) are refused and change nothing.
        let record = Record { partition: 0, offset: 0, event: p.clone() };
        assert_eq!(feeds.sink.apply(&[record], &[(0, 1)]).await.expect("apply"), Stored::Moved);
        assert_eq!(feeds.feed(2).await.len(), 1);
    }
}

#[tokio::test]
async fn unfollow_removes_exactly_that_authors_entries() {
    let mut feeds = Feeds::new(800).await;
    let (f1, f11) = (follow(EventType::Follow, 9, 1), follow(EventType::Follow, 9, 11));
    let (p1, p2, p3) = (post(1, 1), post(11, 2), post(1, 3));
    assert_eq!(feeds.apply(&[(0, &f1), (0, &f11), (1, &p1), (2, &p2), (1, &p3)]).await, Stored::Applied);
    assert_eq!(feeds.feed(9).await.len(), 3);
    assert_eq!(feeds.apply(&[(0, &follow(EventType::Unfollow, 9, 1))]).await, Stored::Applied);
    assert_eq!(feeds.feed(9).await, vec![feed_core::feed::member(&p2).unwrap()], "only user 11's post stays");
    // Posts by 1 after the unfollow no longer reach 9.
    assert_eq!(feeds.apply(&[(1, &post(1, 4))]).await, Stored::Applied);
    assert_eq!(feeds.feed(9).await.len(), 1);
}

#[tokio::test]
async fn an_older_follow_applied_after_a_newer_unfollow_changes_nothing() {
    let mut feeds = Feeds::new(800).await;
    let older_follow = follow(EventType::Follow, 9, 1);
    let mut newer_unfollow = follow(EventType::Unfollow, 9, 1);
    newer_unfollow.time = older_follow.time + chrono::Duration::seconds(1);
    assert_eq!(feeds.apply(&[(1, &post(1, 1)), (0, &newer_unfollow)]).await, Stored::Applied);
    // The follow arrives late (a replay from an older offset, say).
    assert_eq!(feeds.apply(&[(0, &older_follow)]).await, Stored::Applied);
    assert!(feeds.feed(9).await.is_empty(), "9 unfollowed 1 last");
    let followers: Vec<String> = redis::cmd("SMEMBERS").arg(feeds.keys.followers(1)).query_async(&mut feeds.redis).await.expect("SMEMBERS");
    assert!(followers.is_empty());
}

#[tokio::test]
async fn feeds_are_trimmed_to_the_newest_entries() {
    let mut feeds = Feeds::new(5).await;
    let posts: Vec<Event> = (1..=8).map(|i| post(1, i)).collect();
    let f = follow(EventType::Follow, 2, 1);
    let mut batch = vec![(0, &f)];
    batch.extend(posts.iter().map(|p| (1, p)));
    assert_eq!(feeds.apply(&batch).await, Stored::Applied);
    let newest: Vec<String> = posts[3..].iter().map(|e| feed_core::feed::member(e).unwrap()).collect();
    assert_eq!(feeds.feed(2).await, newest);
}

#[tokio::test]
async fn a_changed_generation_refuses_the_batch() {
    let mut feeds = Feeds::new(800).await;
    assert_eq!(feeds.apply(&[(0, &follow(EventType::Follow, 2, 1))]).await, Stored::Applied);
    // Redis lost everything (or a rebuild ran): nothing is written until it resumes.
    redis::cmd("DEL").arg(feeds.keys.generation()).query_async::<()>(&mut feeds.redis).await.expect("DEL");
    assert_eq!(feeds.apply(&[(1, &post(1, 1))]).await, Stored::Moved);
    assert!(feeds.feed(2).await.is_empty());
    assert!(feeds.sink.offsets_moved().await);
}
