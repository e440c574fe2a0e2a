//! The operator's tools (feedctl's functions) against the real stack.

use e2e::Stack;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const KEYS: [&str; 3] = ["abc123", "abc124", "abc125"];

async fn snapshot(stack: &Stack) -> Vec<(String, Vec<String>)> {
    let mut redis = stack.redis.clone();
    let mut out = Vec::new();
    for id in 1..=3 {
        for key in [stack.keys.friends(id), stack.keys.authored(id)] {
            let members: Vec<String> = redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut redis).await.unwrap();
            out.push((key, members));
        }
        let key = stack.keys.followers(id);
        let mut members: Vec<String> = redis::cmd("SMEMBERS").arg(&key).query_async(&mut redis).await.unwrap();
        members.sort();
        out.push((key, members));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilding_wiped_feeds_from_the_hypertable_gives_what_fan_out_produced() {
    let stack = Stack::start().await;
    for (i, key) in KEYS.iter().enumerate() {
        for j in 0..4 {
            let kind = if j % 2 == 0 { "post" } else { "photo" };
            assert_eq!(stack.post("/post", key, json!({"type": kind, "content": format!("{i}{j}")})).await.0, StatusCode::OK);
        }
    }
    for (key, other) in [("abc123", "nico"), ("abc123", "eric"), ("abc124", "ivan"), ("abc125", "nico")] {
        assert_eq!(stack.post("/follow", key, json!({"follow": other})).await.0, StatusCode::OK);
    }
    assert_eq!(stack.post("/activity", "abc124", json!({"verb": "like", "object": "post:1"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/activity", "abc125", json!({"verb": "share", "object": "photo:2"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/unfollow", "abc123", json!({"unfollow": "eric"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/post", "abc125", json!({"type": "post", "content": "after"})).await.0, StatusCode::OK);
    stack.wait_applied(&stack.common.fanout_group).await;
    let before = snapshot(&stack).await;
    assert!(before.iter().any(|(_, m)| m.len() >= 8), "feeds are not empty: {before:?}");

    let mut redis = stack.redis.clone();
    let mut wiped = 0;
    for pattern in ["feed:friends:*", "authored:*", "followers:*"] {
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}{pattern}", stack.common.redis_key_prefix)).query_async(&mut redis).await.unwrap();
        if !keys.is_empty() {
            wiped += keys.len();
            let _: () = redis::cmd("DEL").arg(keys).query_async(&mut redis).await.unwrap();
        }
    }
    assert!(wiped > 0);
    assert!(snapshot(&stack).await.iter().all(|(_, m)| m.is_empty()));

    let mut rebuilder = fanout::rebuild::Rebuilder::new(stack.db.clone(), stack.redis.clone(), stack.keys.clone(), 800);
    for id in rebuilder.user_ids().await.unwrap() {
        rebuilder.rebuild_user(id).await.unwrap();
    }
    assert_eq!(snapshot(&stack).await, before);
    // And the API serves the rebuilt feed.
    let feed = stack.whole_feed("/feed/friends", "abc123").await;
    assert_eq!(feed.len(), 5, "nico's 4 posts and like: {feed:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_and_replay_from_an_offset_or_a_time() {
    let stack = Stack::start().await;
    for j in 0..6 {
        assert_eq!(stack.post("/post", "abc123", json!({"type": "post", "content": format!("{j}")})).await.0, StatusCode::OK);
    }
    stack.wait_applied(&stack.common.writer_group).await;
    let (brokers, topic, group) =
        (stack.common.kafka_brokers.clone(), stack.common.feed_topic.clone(), stack.common.writer_group.clone());

    // Offsets are auto-committed every second; the lag reaches zero.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (b, t, g) = (brokers.clone(), topic.clone(), group.clone());
        let lags = tokio::task::spawn_blocking(move || admin::lag(&b, &g, &t)).await.unwrap().unwrap();
        assert_eq!(lags.len(), 3);
        assert_eq!(lags.iter().map(|l| l.high).sum::<i64>(), stack.published().await);
        if lags.iter().all(|l| l.lag == 0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "lag never reached zero: {lags:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // From a time before everything: each partition's first offset. (For a time after
    // the last record Kafka answers "end"; tansu answers 0, so that case is not tested.)
    let (b, t) = (brokers.clone(), topic.clone());
    let before = chrono::Utc::now() - chrono::Duration::hours(1);
    let from_time = tokio::task::spawn_blocking(move || admin::prepare_replay(&b, "replay-time", &t, admin::From::Time(before)))
        .await
        .unwrap()
        .unwrap();
    assert!(from_time.iter().all(|(_, o)| *o == 0), "{from_time:?}");
    // An offset past a partition's end is clamped to it.
    let high = stack.high_watermarks().await;
    let (b, t) = (brokers.clone(), topic.clone());
    let clamped = tokio::task::spawn_blocking(move || admin::prepare_replay(&b, "replay-far", &t, admin::From::Offset(1_000)))
        .await
        .unwrap()
        .unwrap();
    assert!(clamped.iter().all(|(p, o)| high[p] == *o), "{clamped:?} vs {high:?}");

    let (b, t) = (brokers.clone(), topic.clone());
    let from_start = tokio::task::spawn_blocking(move || admin::prepare_replay(&b, "replay-all", &t, admin::From::Offset(0)))
        .await
        .unwrap()
        .unwrap();
    assert!(from_start.iter().all(|(_, o)| *o == 0));
    let rows_before: i64 = sqlx::query_scalar("SELECT count(*) FROM activities").fetch_one(&stack.db).await.unwrap();
    let replay = stack.spawn_writer("replay-all").await;
    stack.wait_applied("replay-all").await;
    let rows_after: i64 = sqlx::query_scalar("SELECT count(*) FROM activities").fetch_one(&stack.db).await.unwrap();
    assert_eq!(rows_after, rows_before, "the replay re-applied everything idempotently");
    replay.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_key_replaces_it_and_survives_replay() {
    let stack = Stack::start().await;
    let (dora, first) = stack.create_user("dora").await;
    assert_eq!(stack.get("/me", Some(&first)).await.0, StatusCode::OK);

    let (user, second, recorded) = api::users::rotate_key(&stack.api_state, "dora").await.unwrap();
    assert_eq!(user, dora);
    assert!(recorded.applied);
    let (status, me) = stack.get("/me", Some(&second)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!((me["id"].as_i64(), me["name"].as_str()), (Some(dora.id), Some("dora")));
    // An API instance that has not cached the old key (or after AUTH_CACHE_TTL) refuses it.
    stack.api_state.auth_cache.invalidate_all();
    let (status, body) = stack.get("/me", Some(&first)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Key is not valid");

    let (_, third, _) = api::users::rotate_key(&stack.api_state, "dora").await.unwrap();
    let published = stack.published().await;
    let missing = api::users::rotate_key(&stack.api_state, "nobody").await.unwrap_err();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(stack.published().await, published, "nothing published for an unknown user");

    // Replaying every rotation (older ones included) leaves the newest key in place.
    let (b, t) = (stack.common.kafka_brokers.clone(), stack.common.feed_topic.clone());
    tokio::task::spawn_blocking(move || admin::prepare_replay(&b, "replay-keys", &t, admin::From::Offset(0)))
        .await
        .unwrap()
        .unwrap();
    let replay = stack.spawn_writer("replay-keys").await;
    stack.wait_applied("replay-keys").await;
    replay.stop().await;
    stack.api_state.auth_cache.invalidate_all();
    assert_eq!(stack.get("/me", Some(&third)).await.0, StatusCode::OK);
    for old in [&first, &second] {
        assert_eq!(stack.get("/me", Some(old)).await.0, StatusCode::UNAUTHORIZED);
    }
    stack.stop().await;
}
