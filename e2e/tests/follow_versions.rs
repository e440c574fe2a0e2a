//! Follows and unfollows end in the state of the newest event of each pair, whatever
//! order the writer applies them in (a replay from an older offset, a rewind): the
//! `follows` projection in PostgreSQL is guarded by `follow_versions`.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::Stack;
use feed_core::event::{Event, EventType, UserRef};
use rdkafka::producer::FutureProducer;
use std::time::Duration;

async fn publish(stack: &Stack, event: &Event) {
    let producer: FutureProducer = stack.common.kafka.client().create().expect("producer");
    feed_core::kafka::send(&producer, &stack.common.feed_topic, event, Duration::from_secs(5)).await.expect("published");
}

async fn follows(stack: &Stack) -> Vec<(i64, i64)> {
    sqlx::query_as("SELECT follower_id, followee_id FROM follows ORDER BY 1, 2").fetch_all(&stack.db).await.expect("follows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_follow_applied_after_a_newer_unfollow_changes_nothing() {
    let stack = Stack::start().await;
    let (ivan, nico) = (UserRef { id: 1, name: "ivan".into() }, UserRef { id: 2, name: "nico".into() });
    let follow = Event::new(EventType::Follow, ivan.clone(), None, Some(nico.clone()), serde_json::Value::Null);
    let mut unfollow = Event::new(EventType::Unfollow, ivan.clone(), None, Some(nico.clone()), serde_json::Value::Null);
    unfollow.time = follow.time + chrono::TimeDelta::seconds(1);

    // The newer unfollow is applied first, the older follow after it.
    publish(&stack, &unfollow).await;
    stack.wait_applied(&stack.common.writer_group).await;
    publish(&stack, &follow).await;
    stack.wait_applied(&stack.common.writer_group).await;
    assert!(follows(&stack).await.is_empty(), "ivan unfollowed nico last");

    // A newer follow does apply.
    let mut refollow = Event::new(EventType::Follow, ivan, None, Some(nico), serde_json::Value::Null);
    refollow.time = unfollow.time + chrono::TimeDelta::seconds(1);
    publish(&stack, &refollow).await;
    stack.wait_applied(&stack.common.writer_group).await;
    assert_eq!(follows(&stack).await, vec![(1, 2)]);
    stack.stop().await;
}
