//! The operator's tools (feedctl's functions) against the real stack.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use admin::{ReplayStart, Role, Stores};
use e2e::Stack;
use fanout::rebuild::{Rebuilder, Scope};
use reqwest::StatusCode;
use serde_json::json;

const KEYS: [&str; 3] = ["abc123", "abc124", "abc125"];

/// What the fan-out keeps for the demo users: feeds and authored sets (refs and
/// scores), bodies, followers with their versions, and whom each follows.
async fn snapshot(stack: &Stack) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut redis = stack.redis.clone();
    let mut out = Vec::new();
    for id in 1..=3 {
        let k = &stack.keys;
        for key in [k.friends(id), k.authored(id)] {
            let members: Vec<Vec<u8>> =
                redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut redis).await.unwrap();
            out.push((key, members));
        }
        for key in [k.bodies(id), k.follower_versions(id), k.following(id)] {
            let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(&key).query_async(&mut redis).await.unwrap();
            pairs.sort();
            out.push((key, pairs.into_iter().flat_map(|(f, v)| [f, v]).collect()));
        }
        let key = k.followers(id);
        let mut members: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(&key).query_async(&mut redis).await.unwrap();
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
    for pattern in ["feed:*", "authored:*", "bodies:*", "followers:*", "follower-versions:*", "following:*"] {
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}{pattern}", stack.common.redis_key_prefix)).query_async(&mut redis).await.unwrap();
        if !keys.is_empty() {
            wiped += keys.len();
            let _: () = redis::cmd("DEL").arg(keys).query_async(&mut redis).await.unwrap();
        }
    }
    assert!(wiped > 0);
    assert!(snapshot(&stack).await.iter().all(|(_, m)| m.is_empty()));

    let mut rebuilder = Rebuilder::new(stack.db.clone(), stack.redis.clone(), &stack.common, stack.feed);
    let mut reported = (0, 0);
    let generation = rebuilder.rebuild(Scope::All, |done, total| reported = (done, total)).await.unwrap();
    assert!(generation.is_some(), "no other rebuild was running");
    assert_eq!(reported, (3, 3));
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
    let (topic, group) = (stack.common.feed_topic.clone(), stack.common.writer_group.clone());
    let stores = Stores::connect(&stack.common).await.unwrap();

    // The writer stores its offsets with its rows: once applied, the lag is zero.
    let lags = admin::lag(&stores, Role::Writer, &group, &topic).await.unwrap();
    assert_eq!(lags.len(), 3);
    assert_eq!(lags.iter().map(|l| l.high).sum::<i64>(), stack.published().await);
    assert!(lags.iter().all(|l| l.lag == 0 && l.applied.unwrap_or(0) == l.high), "{lags:?}");
    let fanout_lags = admin::lag(&stores, Role::Fanout, &stack.common.fanout_group, &topic).await.unwrap();
    assert!(fanout_lags.iter().all(|l| l.lag == 0), "{fanout_lags:?}");
    // A consumer that never ran lags by everything.
    let (never_ran, replay_time, replay_far, replay_all) =
        (stack.group("never-ran"), stack.group("replay-time"), stack.group("replay-far"), stack.group("replay-all"));
    let never = admin::lag(&stores, Role::Writer, &never_ran, &topic).await.unwrap();
    assert_eq!(never.iter().map(|l| l.lag).sum::<i64>(), stack.published().await);

    // From a time before everything: each partition's first offset. (For a time after
    // the last record Kafka answers "end"; tansu answers 0, so that case is not tested.)
    let before = chrono::Utc::now() - chrono::Duration::hours(1);
    let from_time = admin::prepare_replay(&stores, Role::Writer, &replay_time, &topic, ReplayStart::Time(before)).await.unwrap();
    assert!(from_time.iter().all(|(_, o)| *o == 0), "{from_time:?}");
    assert_eq!(stores.applied(Role::Writer, &replay_time, &topic).await.unwrap(), from_time.iter().copied().collect());
    // An offset past a partition's end is clamped to it.
    let high = stack.high_watermarks().await;
    let clamped = admin::prepare_replay(&stores, Role::Fanout, &replay_far, &topic, ReplayStart::Offset(1_000)).await.unwrap();
    assert!(clamped.iter().all(|(p, o)| high[p] == *o), "{clamped:?} vs {high:?}");
    assert_eq!(stores.applied(Role::Fanout, &replay_far, &topic).await.unwrap(), clamped.iter().copied().collect());

    let from_start = admin::prepare_replay(&stores, Role::Writer, &replay_all, &topic, ReplayStart::Offset(0)).await.unwrap();
    assert!(from_start.iter().all(|(_, o)| *o == 0));
    let rows_before: i64 = sqlx::query_scalar("SELECT count(*) FROM activities").fetch_one(&stack.db).await.unwrap();
    let replay = stack.spawn_writer(&replay_all).await;
    stack.wait_applied(&replay_all).await;
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

    let (user, second, recorded) = api::users::rotate_key(&stack.api_state.db, &stack.api_state.feed, "dora").await.unwrap();
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

    let (_, third, _) = api::users::rotate_key(&stack.api_state.db, &stack.api_state.feed, "dora").await.unwrap();
    let published = stack.published().await;
    let missing = api::users::rotate_key(&stack.api_state.db, &stack.api_state.feed, "nobody").await.unwrap_err();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(stack.published().await, published, "nothing published for an unknown user");

    // Replaying every rotation (older ones included) leaves the newest key in place.
    let stores = Stores::connect(&stack.common).await.unwrap();
    let replay_keys = stack.group("replay-keys");
    admin::prepare_replay(&stores, Role::Writer, &replay_keys, &stack.common.feed_topic, ReplayStart::Offset(0)).await.unwrap();
    let replay = stack.spawn_writer(&replay_keys).await;
    stack.wait_applied(&replay_keys).await;
    replay.stop().await;
    stack.api_state.auth_cache.invalidate_all();
    assert_eq!(stack.get("/me", Some(&third)).await.0, StatusCode::OK);
    for old in [&first, &second] {
        assert_eq!(stack.get("/me", Some(old)).await.0, StatusCode::UNAUTHORIZED);
    }
    stack.stop().await;
}

/// Kubernetes' readiness probe: `/readyz` answers 503 from the moment the API is told to
/// stop, while it goes on serving for its shutdown delay (load balancers stop sending
/// traffic first), then it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_api_fails_readiness_and_serves_until_its_delay_ends() {
    let options = e2e::StackOptions { shutdown_delay: std::time::Duration::from_secs(3), ..Default::default() };
    let mut stack = Stack::start_with(options).await;
    assert_eq!(stack.send_text(reqwest::Method::GET, "/readyz").await, (StatusCode::OK, "ok".to_string()));
    stack.signal_api();
    let mut draining = false;
    for _ in 0..100 {
        if stack.send_text(reqwest::Method::GET, "/readyz").await == (StatusCode::SERVICE_UNAVAILABLE, "draining".to_string()) {
            draining = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(draining, "/readyz still answers ok after the stop signal");
    // Still serving: liveness, and a read that needs PostgreSQL.
    assert_eq!(stack.send_text(reqwest::Method::GET, "/livez").await.0, StatusCode::OK);
    assert_eq!(stack.get("/feed/my", Some(KEYS[0])).await.0, StatusCode::OK);
    assert!(stack.api_stopped(std::time::Duration::from_secs(20)).await, "the API did not stop cleanly after its delay");
    let refused = reqwest::get(format!("{}/livez", stack.api_url)).await;
    assert!(refused.is_err(), "a stopped API still answers: {refused:?}");
    stack.stop().await;
}

/// The sum of `feed_pipeline_lag` over the partitions of `group` in a Prometheus text page.
fn pipeline_lag(metrics: &str, group: &str) -> Option<f64> {
    let prefix = format!("feed_pipeline_lag{{group=\"{group}\",");
    let values: Vec<f64> =
        metrics.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok())).collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The API's `/metrics` reports each consumer's lag from the broker's high watermarks and
/// the consumer's own progress marks, so a consumer that is gone still shows its lag
/// (its own `feed_consumer_lag` went with it) — what the lag alerts are built on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_of_a_consumer_that_is_gone_shows_in_the_apis_metrics() {
    let options = e2e::StackOptions { read_your_writes_timeout: std::time::Duration::from_millis(200), ..Default::default() };
    let mut stack = Stack::start_with(options).await;
    assert_eq!(stack.post("/post", KEYS[0], json!({"type": "post", "content": "before"})).await.0, StatusCode::OK);
    stack.wait_applied(&stack.common.fanout_group).await;
    let (fanout, writer) = (stack.common.fanout_group.clone(), stack.common.writer_group.clone());
    let (_, metrics) = stack.send_text(reqwest::Method::GET, "/metrics").await;
    assert_eq!(pipeline_lag(&metrics, &fanout), Some(0.0), "{metrics}");

    stack.fanout.take().unwrap().stop().await;
    for i in 0..3 {
        assert_eq!(stack.post("/post", KEYS[1], json!({"type": "post", "content": format!("{i}")})).await.0, StatusCode::OK);
    }
    stack.wait_applied(&writer).await;
    let (_, metrics) = stack.send_text(reqwest::Method::GET, "/metrics").await;
    assert_eq!(pipeline_lag(&metrics, &fanout), Some(3.0), "the fan-out is gone and 3 posts wait: {metrics}");
    assert_eq!(pipeline_lag(&metrics, &writer), Some(0.0), "the writer applied them");
    assert!(metrics.contains("feed_pipeline_watermarks_up{topic="), "{metrics}");
    stack.stop().await;
}
