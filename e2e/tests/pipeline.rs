//! The pipeline's guarantees: replays are idempotent, a post racing a follow lands
//! exactly once, an unreachable broker gives 503 rather than a false success, poison
//! records are dead-lettered, a graceful stop loses nothing, the friends feed goes on
//! past what Redis keeps, a delete takes an object out of every feed. (Crashes:
//! `crash.rs`.)

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::{Stack, StackOptions};
use feed_core::config::FeedSettings;
use futures::stream::{self, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const IVAN: &str = "abc123";

async fn counts(stack: &Stack) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM activities").fetch_one(&stack.db).await.expect("count activities")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_topic_from_the_start_changes_nothing() {
    let stack = Stack::start().await;
    let users = ["abc123", "abc124", "abc125"];
    for (i, key) in users.iter().enumerate() {
        for j in 0..5 {
            let (status, _) = stack.post("/post", key, json!({"type": "post", "content": format!("{i}-{j}")})).await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    for (key, other) in [("abc123", "eric"), ("abc123", "nico"), ("abc124", "ivan"), ("abc125", "ivan")] {
        assert_eq!(stack.post("/follow", key, json!({"follow": other})).await.0, StatusCode::OK);
    }
    assert_eq!(stack.post("/activity", "abc124", json!({"verb": "like", "object": "post:1"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/activity", "abc124", json!({"verb": "share", "object": "post:2"})).await.0, StatusCode::OK);
    assert_eq!(stack.delete("/post/post/2", "abc123").await.0, StatusCode::OK, "a delete is replayed too");
    assert_eq!(stack.post("/unfollow", "abc123", json!({"unfollow": "eric"})).await.0, StatusCode::OK);
    for j in 0..3 {
        assert_eq!(stack.post("/post", "abc125", json!({"type": "photo", "content": format!("late{j}")})).await.0, StatusCode::OK);
    }

    let feed_keys: Vec<String> = (1..=3).map(|id| stack.keys.friends(id)).collect();
    let mut before = Vec::new();
    for key in &feed_keys {
        before.push(stack.zset(key).await);
    }
    assert_eq!(before[0].len(), 6, "ivan sees nico's 5 posts and like, none of eric's (nor the deleted share)");
    let rows_before = counts(&stack).await;
    let follows_before: Vec<(i64, i64)> =
        sqlx::query_as("SELECT follower_id, followee_id FROM follows ORDER BY 1, 2").fetch_all(&stack.db).await.unwrap();

    // Replay into the same stores with fresh groups (everything re-applied on top).
    let (writer_group, fanout_group) = (stack.group("replay-writer"), stack.group("replay-fanout"));
    let writer = stack.spawn_writer(&writer_group).await;
    let fanout = stack.spawn_fanout(&fanout_group).await;
    stack.wait_applied(&writer_group).await;
    stack.wait_applied(&fanout_group).await;
    for (key, expected) in feed_keys.iter().zip(&before) {
        assert_eq!(&stack.zset(key).await, expected, "{key} after replay on top");
    }
    assert_eq!(counts(&stack).await, rows_before);
    let follows_after: Vec<(i64, i64)> =
        sqlx::query_as("SELECT follower_id, followee_id FROM follows ORDER BY 1, 2").fetch_all(&stack.db).await.unwrap();
    assert_eq!(follows_after, follows_before);
    writer.stop().await;
    fanout.stop().await;

    // Wipe everything the fan-outs keep (feeds, generation, offsets): a fresh fan-out
    // rebuilds the feeds from PostgreSQL and goes on from the log.
    let mut redis = stack.redis.clone();
    let pattern = format!("{}*", stack.common.redis_key_prefix);
    let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut redis).await.unwrap();
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut redis).await.unwrap();
    let rebuild_group = stack.group("rebuild-fanout");
    let fanout = stack.spawn_fanout(&rebuild_group).await;
    stack.wait_applied(&rebuild_group).await;
    for (key, expected) in feed_keys.iter().zip(&before) {
        assert_eq!(&stack.zset(key).await, expected, "{key} rebuilt from scratch");
    }
    fanout.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_racing_a_follow_lands_exactly_once() {
    let stack = Stack::start().await;
    const PAIRS: usize = 15;
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let author = stack.create_user(&format!("author{i}")).await;
        let reader = stack.create_user(&format!("reader{i}")).await;
        pairs.push((author, reader));
    }
    // Each author posts while its reader follows it, both requests in flight at once.
    let results = futures::future::join_all(pairs.iter().map(|((author, author_key), (_, reader_key))| {
        let stack = &stack;
        async move {
            let post = stack.post("/post", author_key, json!({"type": "post", "content": "race"}));
            let follow = stack.post("/follow", reader_key, json!({"follow": author.name}));
            let ((post_status, post_body), (follow_status, _)) = tokio::join!(post, follow);
            assert_eq!((post_status, follow_status), (StatusCode::OK, StatusCode::OK));
            post_body["object_id"].as_i64().expect("object id")
        }
    }))
    .await;
    stack.wait_applied(&stack.common.fanout_group).await;
    for (((author, _), (reader, reader_key)), object_id) in pairs.iter().zip(results) {
        let entries = stack.zset(&stack.keys.friends(reader.id)).await;
        assert_eq!(entries.len(), 1, "{} sees {}'s post exactly once: {entries:?}", reader.name, author.name);
        let feed = stack.whole_feed("/feed/friends", reader_key).await;
        assert_eq!(feed, vec![feed[0].clone()]);
        assert_eq!(feed[0]["object_id"], object_id);
        assert_eq!(feed[0]["actor_name"], author.name.as_str());
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_gives_503_and_records_nothing() {
    // The API alone points at a closed port; the rest of the stack is healthy.
    let options = StackOptions {
        demo_users: false,
        api_brokers: Some("127.0.0.1:1".to_string()),
        publish_timeout: Duration::from_millis(1500),
        ..StackOptions::default()
    };
    let stack = Stack::start_with(options).await;
    // A user made directly in the projection: creating one needs the broker.
    sqlx::query("INSERT INTO users (id, name, key_hash, created_at, updated_at) VALUES (1, 'ivan', $1, now(), now())")
        .bind(api::auth::hash_key(IVAN))
        .execute(&stack.db)
        .await
        .unwrap();

    let (status, body) = stack.post("/post", IVAN, json!({"type": "post", "content": "lost?"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], true);
    assert_eq!(body["message"], "Event log unavailable, the change was not recorded");
    // Reads that need no broker still work.
    let (status, body) = stack.get("/feed/my", Some(IVAN)).await;
    assert_eq!((status, body["my_feed"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));

    assert_eq!(stack.published().await, 0);
    let objects: i64 = sqlx::query_scalar("SELECT count(*) FROM objects").fetch_one(&stack.db).await.unwrap();
    assert_eq!(objects, 0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_and_the_partition_keeps_flowing() {
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let stack = Stack::start().await;
    assert_eq!(stack.post("/post", IVAN, json!({"type": "post", "content": "before"})).await.0, StatusCode::OK);

    // Two poison records on ivan's partition (key "1", as the API keys his events):
    // bytes that do not decode, and an event no database accepts (NUL in text).
    let producer: FutureProducer = stack.common.kafka.client().create().unwrap();
    let topic = stack.common.feed_topic.clone();
    producer.send(FutureRecord::to(&topic).key("1").payload("not json"), Duration::from_secs(5)).await.unwrap();
    let ivan = feed_core::event::UserRef { id: 1, name: "ivan".into() };
    let object = feed_core::event::ObjectRef { kind: feed_core::event::ObjectKind::Post, id: 999 };
    let bad =
        feed_core::event::Event::new(feed_core::event::EventType::Post, ivan, Some(object), None, json!({"content": "nul \u{0} inside"}));
    feed_core::kafka::send(&producer, &topic, &bad, Duration::from_secs(5)).await.unwrap();

    // The same partition still flows: a later write is applied within the bound.
    let response = stack
        .http
        .post(format!("{}/post", stack.api_url))
        .header("X-App-Key", IVAN)
        .json(&json!({"type": "post", "content": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-read-your-writes"], "applied");
    let feed = stack.whole_feed("/feed/my", IVAN).await;
    assert_eq!(feed.len(), 2, "{feed:?}");

    // Garbage is dead-lettered by both groups, the NUL event by the writer only.
    let letters = stack.dead_letters(&topic, 3).await;
    assert_eq!(letters.len(), 3, "{letters:?}");
    for (_, headers) in &letters {
        assert_eq!(headers["source_topic"], topic);
        assert!(headers["source_partition"].parse::<i32>().is_ok());
        assert!(headers["source_offset"].parse::<i64>().is_ok());
        assert!(!headers["error"].is_empty());
    }
    let groups: Vec<(&str, &str)> =
        letters.iter().map(|(payload, h)| (if payload == b"not json" { "garbage" } else { "nul" }, h["consumer_group"].as_str())).collect();
    let (writer, fanout) = (stack.common.writer_group.as_str(), stack.common.fanout_group.as_str());
    for expected in [("garbage", writer), ("garbage", fanout), ("nul", writer)] {
        assert!(groups.contains(&expected), "{expected:?} missing from {groups:?}");
    }
    // The letter names the event it holds, so it can be followed in the logs.
    let nul = letters.iter().find(|(payload, _)| payload != b"not json").expect("the NUL event's letter");
    assert_eq!(nul.1["event_id"], bad.event_id.to_string());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_loses_and_doubles_nothing() {
    let options = StackOptions { read_your_writes_timeout: Duration::from_millis(300), ..StackOptions::default() };
    let mut stack = Stack::start_with(options).await;
    let acked = Arc::new(AtomicUsize::new(0));
    let attempted = Arc::new(AtomicUsize::new(0));
    let load = {
        let (http, url, acked, attempted) = (stack.http.clone(), stack.api_url.clone(), acked.clone(), attempted.clone());
        tokio::spawn(async move {
            stream::iter(0..400)
                .for_each_concurrent(8, |i| {
                    let (http, url, acked, attempted) = (http.clone(), url.clone(), acked.clone(), attempted.clone());
                    async move {
                        attempted.fetch_add(1, Ordering::SeqCst);
                        let response = http
                            .post(format!("{url}/post"))
                            .header("X-App-Key", IVAN)
                            .json(&json!({"type": "post", "content": format!("g{i}")}))
                            .send()
                            .await;
                        // After the API stops, requests fail to connect: not acknowledged.
                        if response.is_ok_and(|r| r.status() == StatusCode::OK) {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
                .await;
        })
    };
    while acked.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // What SIGTERM does in each process: the API drains in-flight requests, the
    // consumers finish the batch in hand, commit and leave their groups.
    let (api, writer, fanout) = (stack.api.take().unwrap(), stack.writer.take().unwrap(), stack.fanout.take().unwrap());
    tokio::join!(api.stop(), writer.stop(), fanout.stop());
    load.await.unwrap();
    let acked = acked.load(Ordering::SeqCst) as i64;
    assert!(acked < 400, "shutdown came after the whole load");

    // New consumers in the same groups pick up exactly where the old ones committed.
    let (writer_group, fanout_group) = (stack.common.writer_group.clone(), stack.common.fanout_group.clone());
    stack.writer = Some(stack.spawn_writer(&writer_group).await);
    stack.fanout = Some(stack.spawn_fanout(&fanout_group).await);
    stack.wait_applied(&writer_group).await;
    stack.wait_applied(&fanout_group).await;
    let published = stack.published().await - 3; // less the demo users' creation
    let (rows, distinct) = counts(&stack).await;
    assert_eq!(distinct, rows, "no event stored twice");
    assert!(rows >= acked, "every acknowledged post is stored ({rows} rows, {acked} acks)");
    assert_eq!(rows, published, "every published event is stored once");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_database_keeps_refusing_is_dead_lettered_after_a_few_tries() {
    use rdkafka::producer::{FutureProducer, FutureRecord};

    // A component too long for its index (PostgreSQL: "index row size exceeds btree
    // maximum", class 54, not a data-exception class): published past the API, as an
    // older API or another producer could.
    let stack = Stack::start_with(StackOptions { demo_users: false, ..StackOptions::default() }).await;
    let topic = stack.common.events_topic.clone();
    // Random, so compression cannot bring it under the limit.
    let component: String = (0..100).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect();
    let poison = feed_core::streams::GenericEvent {
        schema_version: feed_core::event::SCHEMA_VERSION,
        id: uuid::Uuid::now_v7(),
        component,
        data: json!(null),
        email: "same@example.com".into(),
        environment: "e".into(),
        message: "poison".into(),
        created_at: chrono::Utc::now(),
    };
    let producer: FutureProducer = stack.common.kafka.client().create().unwrap();
    let payload = serde_json::to_vec(&poison).unwrap();
    let headers = feed_core::kafka::headers([("event_id", poison.id.to_string())]);
    let record = FutureRecord::to(&topic).key("same@example.com").payload(&payload).headers(headers);
    producer.send(record, Duration::from_secs(5)).await.unwrap();

    // The same partition (same key) still flows: a valid event after it is applied.
    let event = json!({"component": "c", "data": 1, "email": "same@example.com", "environment": "e", "message": "after"});
    let response = stack.http.post(format!("{}/events", stack.api_url)).json(&event).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-read-your-writes"], "applied");
    let letters = stack.dead_letters(&topic, 1).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].1["event_id"], poison.id.to_string());
    assert!(letters[0].1["error"].contains("index row size"), "{:?}", letters[0].1);
    let stored: Vec<String> = sqlx::query_scalar("SELECT message FROM generic_events").fetch_all(&stack.db).await.unwrap();
    assert_eq!(stored, vec!["after".to_string()]);
    let metrics = stack.get("/metrics", None).await.1;
    let line = format!("feed_consumer_dead_letters_total{{topic=\"{topic}\",group=\"{}\"}} 1", stack.common.events_writer_group());
    assert!(metrics.as_str().is_some_and(|m| m.contains(&line)), "{line} not in {metrics}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_friends_feed_continues_from_postgresql_past_what_redis_keeps() {
    // Redis keeps 5 entries per feed; nico posts 12 after ivan follows him, and eric 2.
    let stack =
        Stack::start_with(StackOptions { feed: FeedSettings { max_len: 5, ..FeedSettings::default() }, ..StackOptions::default() }).await;
    assert_eq!(stack.post("/follow", IVAN, json!({"follow": "nico"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/follow", IVAN, json!({"follow": "eric"})).await.0, StatusCode::OK);
    for i in 0..12 {
        let key = if i % 6 == 5 { "abc125" } else { "abc124" };
        assert_eq!(stack.post("/post", key, json!({"type": "post", "content": format!("{i}")})).await.0, StatusCode::OK);
    }
    stack.wait_applied(&stack.common.fanout_group).await;
    let ivan = stack.get("/me", Some(IVAN)).await.1["id"].as_i64().unwrap();
    let held: i64 = redis::cmd("ZCARD").arg(stack.keys.friends(ivan)).query_async(&mut stack.redis.clone()).await.unwrap();
    assert_eq!(held, 5, "Redis trimmed the feed");

    // Older activities of nico, days to a year back (as if stored long ago): the page
    // search in PostgreSQL widens its time window until it reaches them.
    for (id, age) in [(100, "2 days"), (101, "30 days"), (102, "400 days")] {
        sqlx::query(
            "INSERT INTO activities (time, event_id, actor_id, actor_name, verb, object_type, object_id)
             SELECT now() - $2::interval, gen_random_uuid(), id, name, 'post', 'post', $1 FROM users WHERE name = 'nico'",
        )
        .bind(id)
        .bind(age)
        .execute(&stack.db)
        .await
        .unwrap();
    }

    // Pages of 4 from the start: Redis, then the boundary page, then PostgreSQL.
    let mut seen: Vec<Value> = Vec::new();
    let mut path = "/feed/friends?limit=4".to_string();
    loop {
        let (status, body) = stack.get(&path, Some(IVAN)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let entries = body["friends_feed"].as_array().unwrap();
        assert!(entries.len() <= 4);
        seen.extend(entries.iter().cloned());
        match body["next_url"].as_str().unwrap() {
            "" => break,
            next => path = next.to_string(),
        }
        assert!(seen.len() <= 15, "the feed does not end: {seen:?}");
    }
    // Every post once, newest first: the object ids count down from 12, then the old ones.
    let ids: Vec<i64> = seen.iter().map(|e| e["object_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=12).rev().chain([100, 101, 102]).collect::<Vec<_>>());
    let (_, first_page) = stack.get("/feed/friends?limit=15", Some(IVAN)).await;
    assert_eq!(first_page["friends_feed"].as_array().unwrap(), &seen, "one page reads the same entries");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_post_leaves_every_feed_with_its_likes_and_shares() {
    let stack = Stack::start().await;
    let (nico, eric) = ("abc124", "abc125");
    // nico follows ivan; eric follows nico; ivan posts twice; nico likes and shares the first.
    assert_eq!(stack.post("/follow", nico, json!({"follow": "ivan"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/follow", eric, json!({"follow": "nico"})).await.0, StatusCode::OK);
    for content in ["doomed", "kept"] {
        assert_eq!(stack.post("/post", IVAN, json!({"type": "post", "content": content})).await.0, StatusCode::OK);
    }
    assert_eq!(stack.post("/activity", nico, json!({"verb": "like", "object": "post:1"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/activity", nico, json!({"verb": "share", "object": "post:1"})).await.0, StatusCode::OK);
    let objects = |body: &Value, field: &str| -> Vec<(String, i64)> {
        body[field]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| !e["object_id"].is_null())
            .map(|e| (e["verb"].as_str().unwrap().to_string(), e["object_id"].as_i64().unwrap()))
            .collect()
    };
    assert_eq!(
        objects(&stack.get("/feed/friends", Some(eric)).await.1, "friends_feed"),
        [("share".to_string(), 1), ("like".to_string(), 1)]
    );

    // Only the owner; unknown objects are 404.
    assert_eq!(stack.delete("/post/post/1", nico).await.0, StatusCode::FORBIDDEN);
    assert_eq!(stack.delete("/post/post/99", IVAN).await.0, StatusCode::NOT_FOUND);
    assert_eq!(stack.delete("/post/video/1", IVAN).await.0, StatusCode::NOT_FOUND);
    let (status, body) = stack.delete("/post/post/1", IVAN).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"object": "post:1", "message": "Object deleted"})));

    // Read-your-writes: gone from every feed at once, the other post kept.
    assert_eq!(objects(&stack.get("/feed/friends", Some(nico)).await.1, "friends_feed"), [("post".to_string(), 2)]);
    assert_eq!(objects(&stack.get("/feed/friends", Some(eric)).await.1, "friends_feed"), []);
    assert_eq!(objects(&stack.get("/feed/my", Some(IVAN)).await.1, "my_feed"), [("post".to_string(), 2)]);
    assert_eq!(objects(&stack.get("/feed/my", Some(nico)).await.1, "my_feed"), []);
    let (_, authored) = stack.get("/feed/ivan", Some(eric)).await;
    assert_eq!(authored["my_feed"].as_array().unwrap().len(), 1, "{authored}");
    // Nor can it be reached again.
    let gone = (StatusCode::BAD_REQUEST, json!({"error": true, "message": "Object is not found"}));
    assert_eq!(stack.post("/activity", eric, json!({"verb": "like", "object": "post:1"})).await, gone);
    assert_eq!(stack.delete("/post/post/1", IVAN).await.0, StatusCode::NOT_FOUND);
    let content: Option<String> =
        sqlx::query_scalar("SELECT content FROM objects WHERE kind = 'post' AND id = 1").fetch_optional(&stack.db).await.unwrap();
    assert_eq!(content, None, "the content itself is erased");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_like_applied_after_its_objects_delete_stays_out() {
    let stack = Stack::start().await;
    assert_eq!(stack.post("/follow", "abc125", json!({"follow": "nico"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/post", IVAN, json!({"type": "post", "content": "x"})).await.0, StatusCode::OK);
    assert_eq!(stack.delete("/post/post/1", IVAN).await.0, StatusCode::OK);
    // A like accepted before the delete, on nico's partition, consumed only after it.
    let user = |id: i64, name: &str| feed_core::event::UserRef { id, name: name.to_string() };
    let object = feed_core::event::ObjectRef { kind: feed_core::event::ObjectKind::Post, id: 1 };
    let (ivan, nico) = (stack.get("/me", Some(IVAN)).await.1, stack.get("/me", Some("abc124")).await.1);
    let like = feed_core::event::Event::new(
        feed_core::event::EventType::Like,
        user(nico["id"].as_i64().unwrap(), "nico"),
        Some(object),
        Some(user(ivan["id"].as_i64().unwrap(), "ivan")),
        Value::Null,
    );
    assert!(stack.api_state.record(&like).await.unwrap().applied);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM activities WHERE object_id = 1").fetch_one(&stack.db).await.unwrap();
    assert_eq!(rows, 0, "the late like was not stored");
    let (_, feed) = stack.get("/feed/friends", Some("abc125")).await;
    assert_eq!(feed["friends_feed"], json!([]), "nor fanned out to nico's followers");
    stack.stop().await;
}

/// A reader the fan-out skipped while it was inactive sees, on its next read, every entry
/// it missed (its feed is caught up from PostgreSQL), and is pushed to again after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_inactive_reader_sees_no_hole() {
    let stack = Stack::start().await;
    assert_eq!(stack.post("/follow", IVAN, json!({"follow": "nico"})).await.0, StatusCode::OK);
    for i in 0..3 {
        assert_eq!(stack.post("/post", "abc124", json!({"type": "post", "content": format!("early {i}")})).await.0, StatusCode::OK);
    }
    let ivan = stack.get("/me", Some(IVAN)).await.1["id"].as_i64().unwrap();
    let (feed, reader) = (stack.keys.friends(ivan), stack.keys.reader(ivan));
    assert_eq!(stack.zset(&feed).await.len(), 3);
    // Ivan last read or followed long ago: the fan-out skips him.
    redis::cmd("HSET").arg(&reader).arg("active").arg(0).query_async::<()>(&mut stack.redis.clone()).await.unwrap();
    for i in 0..4 {
        assert_eq!(stack.post("/post", "abc124", json!({"type": "photo", "content": format!("missed {i}")})).await.0, StatusCode::OK);
    }
    assert_eq!(stack.zset(&feed).await.len(), 3, "not pushed while inactive");
    let stale: Vec<String> = redis::cmd("HKEYS").arg(&reader).query_async(&mut stack.redis.clone()).await.unwrap();
    assert!(stale.iter().any(|f| f.starts_with("stale:")), "{stale:?}");

    let response = stack.http.get(format!("{}/feed/friends", stack.api_url)).header("X-App-Key", IVAN).send().await.unwrap();
    assert!(response.headers().get("x-feed-rebuilding").is_none(), "caught up at once");
    let body: Value = response.json().await.unwrap();
    let kinds: Vec<&str> = body["friends_feed"].as_array().unwrap().iter().map(|e| e["object_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["photo", "photo", "photo", "photo", "post", "post", "post"], "newest first, nothing missing");
    assert_eq!(stack.zset(&feed).await.len(), 7, "the feed in Redis is whole again");
    let fields: Vec<String> = redis::cmd("HKEYS").arg(&reader).query_async(&mut stack.redis.clone()).await.unwrap();
    assert!(!fields.iter().any(|f| f.starts_with("stale:")), "{fields:?}");
    // Active again: pushed to.
    assert_eq!(stack.post("/post", "abc124", json!({"type": "post", "content": "after"})).await.0, StatusCode::OK);
    assert_eq!(stack.zset(&feed).await.len(), 8);
    stack.stop().await;
}

/// An author over the hot line is not pushed to its followers; their reads merge its
/// entries in, in order, each once, across pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_authors_entries_are_merged_into_readers_feeds() {
    let feed = FeedSettings { hot_followers: 2, ..FeedSettings::default() };
    let stack = Stack::start_with(StackOptions { feed, ..StackOptions::default() }).await;
    assert_eq!(stack.post("/follow", IVAN, json!({"follow": "nico"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/follow", IVAN, json!({"follow": "eric"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/follow", "abc125", json!({"follow": "nico"})).await.0, StatusCode::OK);
    // nico has two followers now: hot. eric has one.
    for i in 0..6 {
        let key = if i % 2 == 0 { "abc124" } else { "abc125" };
        assert_eq!(stack.post("/post", key, json!({"type": "post", "content": format!("{i}")})).await.0, StatusCode::OK);
    }
    let ivan = stack.get("/me", Some(IVAN)).await.1["id"].as_i64().unwrap();
    assert_eq!(stack.zset(&stack.keys.friends(ivan)).await.len(), 3, "only eric's posts are pushed to ivan");
    let whole = stack.whole_feed("/feed/friends?limit=2", IVAN).await;
    let ids: Vec<i64> = whole.iter().map(|e| e["object_id"].as_i64().unwrap()).collect();
    let mut expected = ids.clone();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    expected.dedup();
    assert_eq!(ids, expected, "all six, newest first, once each, over three pages");
    assert_eq!(ids.len(), 6);
    stack.stop().await;
}

/// An idle consumer stops fetching; a record nobody announces (a tool publishing on its
/// own) is still applied, once its look at the high watermarks finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_consumers_pick_up_records_nobody_announced() {
    let stack = Stack::start().await;
    let producer = feed_core::kafka::producer(&stack.common.kafka, Duration::from_secs(5)).unwrap();
    let nico = feed_core::event::UserRef { id: 2, name: "nico".into() };
    for round in 0..3 {
        // Longer than the consumers stay active after their last record.
        tokio::time::sleep(feed_core::consumer::STAY_ACTIVE * 2).await;
        let object = feed_core::event::ObjectRef { kind: feed_core::event::ObjectKind::Post, id: 1000 + round };
        let post =
            feed_core::event::Event::new(feed_core::event::EventType::Post, nico.clone(), Some(object), None, json!({"content": "quiet"}));
        feed_core::kafka::send(&producer, &stack.common.feed_topic, &post, Duration::from_secs(5)).await.unwrap();
        let deadline = tokio::time::Instant::now() + feed_core::wakeup::IDLE_LOOK * 3;
        for group in [&stack.common.writer_group, &stack.common.fanout_group] {
            stack.applied_by(&stack.common.feed_topic, group, deadline).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
    stack.stop().await;
}

/// The writer inserts a batch's rows plainly and, only when some are already stored (a
/// replay, a producer's duplicate), again skipping those: such a batch is applied, not
/// failed and dead-lettered, and nothing is doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_holding_rows_already_stored_is_applied_without_doubling() {
    use feed_core::event::{Event, EventType, ObjectKind, ObjectRef, UserRef};
    let stack = Stack::start().await;
    let ivan = UserRef { id: 1, name: "ivan".into() };
    let post = |id: i64| {
        Event::new(
            EventType::Post,
            ivan.clone(),
            Some(ObjectRef { kind: ObjectKind::Post, id }),
            None,
            json!({"content": format!("p{id}")}),
        )
    };
    let (first, second) = (post(9001), post(9002));
    let count = |sql: &'static str| async { sqlx::query_scalar::<_, i64>(sql).fetch_one(&stack.db).await.unwrap() };
    let mut table = writer::feed::FeedTable;
    assert_eq!(writer::sink::write_directly(&stack.db, &mut table, &[&first]).await.unwrap(), 1);
    // The stored post again, with a new one: both objects' inserts and the activities' meet an existing row.
    writer::sink::write_directly(&stack.db, &mut table, &[&first, &second]).await.unwrap();
    writer::sink::write_directly(&stack.db, &mut table, &[&second, &second]).await.unwrap();
    assert_eq!(count("SELECT count(*) FROM activities WHERE object_id IN (9001, 9002)").await, 2);
    assert_eq!(count("SELECT count(*) FROM objects WHERE id IN (9001, 9002)").await, 2);
    stack.stop().await;
}

/// A reader of several hot authors (merged at read time) and a pushed one pages through
/// its friends feed in small pages: every entry once, newest first, the same as one big
/// page — the merge reads each hot author only down to the page's floor, and must not
/// lose what lies just below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_a_feed_merged_from_hot_authors_shows_every_entry_once_in_order() {
    let feed = FeedSettings { hot_followers: 2, ..FeedSettings::default() };
    let stack = Stack::start_with(StackOptions { feed, ..StackOptions::default() }).await;
    let mut authors = Vec::new();
    for name in ["hot_a", "hot_b", "hot_c"] {
        authors.push(stack.create_user(name).await.1);
    }
    // ivan follows the three and nico; eric follows the three too, which makes them hot
    // (2 followers each); nico, with one follower, is pushed.
    for name in ["hot_a", "hot_b", "hot_c", "nico"] {
        assert_eq!(stack.post("/follow", IVAN, json!({"follow": name})).await.0, StatusCode::OK);
    }
    for name in ["hot_a", "hot_b", "hot_c"] {
        assert_eq!(stack.post("/follow", "abc125", json!({"follow": name})).await.0, StatusCode::OK);
    }
    authors.push("abc124".to_string());
    // Interleaved posts, most by the hot authors, some runs by one author alone.
    let mut posted = Vec::new();
    for i in 0..26 {
        let key = &authors[if i % 7 < 3 { 0 } else { i % 4 }];
        let (status, body) = stack.post("/post", key, json!({"type": "post", "content": format!("{i}")})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        posted.push(body["object_id"].as_i64().unwrap());
    }
    stack.wait_applied(&stack.common.fanout_group).await;
    let ivan = stack.get("/me", Some(IVAN)).await.1["id"].as_i64().unwrap();
    let hot: Vec<i64> = redis::cmd("SMEMBERS").arg(stack.keys.hot_following(ivan)).query_async(&mut stack.redis.clone()).await.unwrap();
    assert_eq!(hot.len(), 3, "the three are hot for ivan");

    let paged = stack.whole_feed("/feed/friends?limit=4", IVAN).await;
    let ids: Vec<i64> = paged.iter().map(|e| e["object_id"].as_i64().unwrap()).collect();
    let newest_first: Vec<i64> = posted.iter().rev().copied().collect();
    assert_eq!(ids, newest_first, "every post once, newest first");
    let (_, one_page) = stack.get("/feed/friends?limit=26", Some(IVAN)).await;
    assert_eq!(one_page["friends_feed"].as_array().unwrap(), &paged, "one page reads the same entries");
    stack.stop().await;
}
