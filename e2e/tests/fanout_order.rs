//! The fan-out's scripts against real Redis, with the order of events forced: whichever
//! of a post by X and a follow of X is applied first, the follower ends with the post
//! exactly once; an unfollow removes exactly X's entries.

use fanout::FeedStore;
use feed_core::consumer::{BatchHandler, Record};
use feed_core::event::{Event, EventType, ObjectKind, ObjectRef, UserRef};
use feed_core::feed::Keys;

fn user(id: i64) -> UserRef {
    UserRef { id, name: format!("u{id}") }
}

fn record(event: Event) -> Record<Event> {
    Record { partition: 0, offset: 0, event }
}

/// A post by `author`; its time grows with `id`, so scores never tie.
fn post(author: i64, id: i64) -> Record<Event> {
    let object = ObjectRef { kind: ObjectKind::Post, id };
    let mut event = Event::new(EventType::Post, user(author), Some(object), None, serde_json::json!({"content": "x"}));
    event.time = chrono::DateTime::from_timestamp(1_700_000_000 + id, 0).expect("valid time");
    record(event)
}

fn follow(kind: EventType, follower: i64, followee: i64) -> Record<Event> {
    record(Event::new(kind, user(follower), None, Some(user(followee)), serde_json::Value::Null))
}

async fn store() -> (FeedStore, Keys, redis::aio::ConnectionManager) {
    let redis = feed_core::redis_pool::manager(&e2e::infra().redis_url).await.expect("Redis");
    let keys = Keys::new(format!("test:{}:", uuid::Uuid::new_v4().simple()));
    (FeedStore::new(redis.clone(), keys.clone(), 800), keys, redis)
}

async fn feed(redis: &mut redis::aio::ConnectionManager, key: &str) -> Vec<String> {
    redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).query_async(redis).await.expect("ZRANGE")
}

#[tokio::test]
async fn post_then_follow_and_follow_then_post_both_land_once() {
    for post_first in [true, false] {
        let (mut store, keys, mut redis) = store().await;
        let (p, f) = (post(1, 1), follow(EventType::Follow, 2, 1));
        let order = if post_first { [p.clone(), f.clone()] } else { [f.clone(), p.clone()] };
        for r in &order {
            store.apply(std::slice::from_ref(r)).await.expect("apply");
        }
        // Re-delivery of both, in the other order, changes nothing.
        store.apply(&[order[1].clone(), order[0].clone()]).await.expect("re-apply");
        let entries = feed(&mut redis, &keys.friends(2)).await;
        assert_eq!(entries, vec![feed_core::feed::member(&p.event).unwrap()], "post_first={post_first}");
    }
}

#[tokio::test]
async fn unfollow_removes_exactly_that_authors_entries() {
    let (mut store, keys, mut redis) = store().await;
    let batch = [
        follow(EventType::Follow, 9, 1),
        follow(EventType::Follow, 9, 11),
        post(1, 1),
        post(11, 2),
        post(1, 3),
    ];
    store.apply(&batch).await.expect("apply");
    assert_eq!(feed(&mut redis, &keys.friends(9)).await.len(), 3);
    store.apply(&[follow(EventType::Unfollow, 9, 1)]).await.expect("unfollow");
    let left = feed(&mut redis, &keys.friends(9)).await;
    assert_eq!(left, vec![feed_core::feed::member(&batch[3].event).unwrap()], "only user 11's post stays");
    // Posts by 1 after the unfollow no longer reach 9.
    store.apply(&[post(1, 4)]).await.expect("apply");
    assert_eq!(feed(&mut redis, &keys.friends(9)).await.len(), 1);
}

#[tokio::test]
async fn feeds_are_trimmed_to_the_newest_entries() {
    let redis = feed_core::redis_pool::manager(&e2e::infra().redis_url).await.expect("Redis");
    let keys = Keys::new(format!("test:{}:", uuid::Uuid::new_v4().simple()));
    let mut store = FeedStore::new(redis.clone(), keys.clone(), 5);
    let mut batch = vec![follow(EventType::Follow, 2, 1)];
    let posts: Vec<Record<Event>> = (1..=8).map(|i| post(1, i)).collect();
    batch.extend(posts.iter().cloned());
    store.apply(&batch).await.expect("apply");
    let mut redis = redis;
    let kept = feed(&mut redis, &keys.friends(2)).await;
    let newest: Vec<String> = posts[3..].iter().map(|r| feed_core::feed::member(&r.event).unwrap()).collect();
    assert_eq!(kept, newest);
}
