//! Crash-only: the writer and the fan-out run as child processes of their built
//! binaries and are killed with SIGKILL; the broker, PostgreSQL and Redis are private
//! copies ([`e2e::daemons`]) that are killed or wiped mid-load. In every case, once the
//! load stops, every acknowledged post is stored exactly once in PostgreSQL and is in
//! every follower's friends feed exactly once, with nobody's help.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::daemons::{self, Crash};
use e2e::{ServiceProcess, Stack, StackOptions};
use feed_core::config::FeedSettings;
use feed_core::feed::EntryRef;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep, Instant};
use uuid::Uuid;

/// The demo users (id, key) and who follows whom.
const USERS: [(i64, &str); 3] = [(1, "abc123"), (2, "abc124"), (3, "abc125")];
const FOLLOWS: [(i64, &str); 5] = [(1, "nico"), (1, "eric"), (2, "ivan"), (3, "ivan"), (3, "nico")];

/// How long after the last restart everything must be applied.
const CATCH_UP: Duration = Duration::from_secs(10);

/// A stack whose consumers are child processes, on `options`' services.
async fn start(options: StackOptions) -> (Stack, ServiceProcess, ServiceProcess) {
    let options = StackOptions {
        in_process_consumers: false,
        // Writes answer "pending" quickly while a consumer is down, so the load goes on.
        read_your_writes_timeout: Duration::from_millis(300),
        feed: FeedSettings { max_len: 100_000, ..FeedSettings::default() },
        ..options
    };
    let stack = Stack::start_with(options).await;
    let writer = stack.start_process("writer");
    let fanout = stack.start_process("fanout");
    // The demo users were published before any consumer ran.
    stack.wait_applied(&stack.common.writer_group).await;
    stack.wait_applied(&stack.common.fanout_group).await;
    for (follower, followee) in FOLLOWS {
        let key = USERS.iter().find(|(id, _)| *id == follower).map(|(_, k)| *k).unwrap_or_default();
        let (status, body) = stack.post("/follow", key, json!({"follow": followee})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    (stack, writer, fanout)
}

/// Posts continuously, two clients per user, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Posted>>,
}

/// What a load posted: acknowledged posts by author, and requests that failed.
#[derive(Default)]
struct Posted {
    acked: Vec<(i64, Uuid)>,
    failed: usize,
}

impl Load {
    fn start(stack: &Stack) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for (author, key) in USERS.into_iter().chain(USERS) {
            let (http, url, stop) = (stack.http.clone(), stack.api_url.clone(), stop.clone());
            clients.push(tokio::spawn(async move {
                let mut posted = Posted::default();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let response = http
                        .post(format!("{url}/post"))
                        .header("X-App-Key", key)
                        .json(&json!({"type": "post", "content": format!("{author}-{n}")}))
                        .timeout(Duration::from_secs(20))
                        .send()
                        .await;
                    let id = match &response {
                        Ok(r) if r.status() == StatusCode::OK => r.headers().get("x-event-id").and_then(|v| v.to_str().ok()?.parse().ok()),
                        _ => None,
                    };
                    match id {
                        Some(id) => posted.acked.push((author, id)),
                        None => {
                            posted.failed += 1;
                            sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                posted
            }));
        }
        Self { stop, clients }
    }

    async fn finish(self) -> Posted {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Posted::default();
        for client in self.clients {
            let posted = client.await.expect("load client");
            all.acked.extend(posted.acked);
            all.failed += posted.failed;
        }
        all
    }
}

/// Waits until the writer and the fan-out applied everything published, at most until
/// `deadline`.
async fn wait_caught_up(stack: &Stack, deadline: Instant, logs: &[&ServiceProcess]) {
    for group in [&stack.common.writer_group, &stack.common.fanout_group] {
        if let Err(behind) = stack.applied_by(&stack.common.feed_topic, group, deadline).await {
            let logs: Vec<_> = logs.iter().map(|p| p.log().display().to_string()).collect();
            panic!("{behind}; logs {logs:?}");
        }
    }
}

/// Every acknowledged post is stored exactly once, nothing else is stored but posts
/// whose request failed, and each follower's friends feed holds exactly the stored
/// posts of its followees, each once.
async fn check_exactly_once(stack: &Stack, posted: &Posted) {
    assert!(posted.acked.len() >= 30, "the load acknowledged too little to mean anything: {}", posted.acked.len());
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT event_id, actor_id FROM activities WHERE verb = 'post'").fetch_all(&stack.db).await.expect("posts");
    let mut stored: HashMap<Uuid, (i64, usize)> = HashMap::new();
    for (id, author) in rows {
        stored.entry(id).or_insert((author, 0)).1 += 1;
    }
    for (author, id) in &posted.acked {
        assert_eq!(stored.get(id), Some(&(*author, 1)), "acknowledged post {id} by {author} stored exactly once");
    }
    let acked: HashSet<Uuid> = posted.acked.iter().map(|(_, id)| *id).collect();
    let unacknowledged = stored.keys().filter(|id| !acked.contains(id)).count();
    assert!(unacknowledged <= posted.failed, "{unacknowledged} stored posts were never acknowledged ({} requests failed)", posted.failed);

    for (follower, _) in USERS {
        let followees: HashSet<i64> = FOLLOWS
            .iter()
            .filter(|(f, _)| *f == follower)
            .filter_map(|(_, name)| ["ivan", "nico", "eric"].iter().position(|n| n == name).map(|i| i as i64 + 1))
            .collect();
        let expected: HashSet<String> =
            stored.iter().filter(|(_, (author, _))| followees.contains(author)).map(|(id, _)| id.to_string()).collect();
        let members: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(stack.keys.friends(follower))
            .arg(0)
            .arg(-1)
            .query_async(&mut stack.redis.clone())
            .await
            .expect("ZRANGE");
        let ids: Vec<String> = members.iter().filter_map(|m| EntryRef::parse(m)).map(|m| m.event_id.to_string()).collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(ids.len(), unique.len(), "user {follower}'s feed holds an event twice");
        let missing: Vec<_> = expected.difference(&unique).collect();
        let extra: Vec<_> = unique.difference(&expected).collect();
        assert!(missing.is_empty() && extra.is_empty(), "user {follower}'s feed: missing {missing:?}, extra {extra:?}");
    }
}

/// Sleeps a pseudo-random 200–600 ms.
async fn pause() {
    sleep(Duration::from_millis(200 + rand_ms(400))).await;
}

fn rand_ms(max: u64) -> u64 {
    u64::from(Uuid::new_v4().as_u128() as u16) % max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_consumers_lose_and_double_nothing() {
    let (stack, mut writer, mut fanout) = start(StackOptions::default()).await;
    let load = Load::start(&stack);
    let mut last_restart = Instant::now();
    for _ in 0..10 {
        pause().await;
        writer.kill();
        writer.restart();
        pause().await;
        fanout.kill();
        fanout.restart();
        last_restart = Instant::now();
    }
    let posted = load.finish().await;
    wait_caught_up(&stack, last_restart + CATCH_UP, &[&writer, &fanout]).await;
    assert_eq!(posted.failed, 0, "the API answers while consumers die");
    check_exactly_once(&stack, &posted).await;
}

/// Crashes `service` two seconds into the load, restarts it `outage` later, lets the
/// load go on two more seconds, then checks.
async fn survive_an_outage(service: &mut impl Crash, options: StackOptions, outage: Duration) {
    let (stack, writer, fanout) = start(options).await;
    let load = Load::start(&stack);
    sleep(Duration::from_secs(2)).await;
    service.crash();
    sleep(outage).await;
    service.restart();
    let restarted = Instant::now();
    sleep(Duration::from_secs(2)).await;
    let posted = load.finish().await;
    wait_caught_up(&stack, restarted + CATCH_UP + Duration::from_secs(2), &[&writer, &fanout]).await;
    check_exactly_once(&stack, &posted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_mid_load_loses_and_doubles_nothing() {
    let mut broker = daemons::Broker::start();
    let options = StackOptions { brokers: Some(broker.address()), ..StackOptions::default() };
    survive_an_outage(&mut broker, options, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashing_mid_load_loses_and_doubles_nothing() {
    let mut postgres = daemons::Postgres::start();
    let options = StackOptions { postgres_url: Some(postgres.url()), ..StackOptions::default() };
    survive_an_outage(&mut postgres, options, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_losing_everything_mid_load_rebuilds_the_feeds() {
    let mut redis = daemons::Redis::start();
    let (stack, writer, mut fanout) = start(StackOptions { redis_url: Some(redis.url()), ..StackOptions::default() }).await;
    let load = Load::start(&stack);
    sleep(Duration::from_secs(2)).await;
    // FLUSHALL while the fan-out runs.
    redis::cmd("FLUSHALL").query_async::<()>(&mut stack.redis.clone()).await.expect("FLUSHALL");
    sleep(Duration::from_secs(2)).await;
    // A restart without persistence while the fan-out is down: until it is back, reads
    // say the feeds are being rebuilt instead of passing off empty feeds as complete.
    fanout.kill();
    redis.crash();
    redis.restart();
    let response = stack.http.get(format!("{}/feed/friends", stack.api_url)).header("X-App-Key", "abc123").send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("x-feed-rebuilding").map(|v| v.as_bytes()), Some(&b"true"[..]));
    fanout.restart();
    let restarted = Instant::now();
    sleep(Duration::from_secs(1)).await;
    let posted = load.finish().await;
    wait_caught_up(&stack, restarted + CATCH_UP, &[&writer, &fanout]).await;
    check_exactly_once(&stack, &posted).await;
    let response = stack.http.get(format!("{}/feed/friends", stack.api_url)).header("X-App-Key", "abc123").send().await.expect("GET");
    assert!(response.headers().get("x-feed-rebuilding").is_none(), "the rebuild finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilding_while_the_fan_out_runs_keeps_every_entry() {
    let (stack, writer, fanout) = start(StackOptions::default()).await;
    let load = Load::start(&stack);
    let mut rebuilder = fanout::rebuild::Rebuilder::new(stack.db.clone(), stack.redis.clone(), &stack.common, stack.feed);
    let mut rebuilds = 0;
    for _ in 0..5 {
        pause().await;
        if rebuilder.rebuild(fanout::rebuild::Scope::All, |_, _| {}).await.expect("rebuild").is_some() {
            rebuilds += 1;
        }
    }
    let finished = Instant::now();
    assert_eq!(rebuilds, 5, "nothing else was rebuilding");
    let posted = load.finish().await;
    wait_caught_up(&stack, finished + CATCH_UP, &[&writer, &fanout]).await;
    check_exactly_once(&stack, &posted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_whose_store_is_down_reports_itself_stalled_and_recovers() {
    let mut postgres = daemons::Postgres::start();
    let options = StackOptions { postgres_url: Some(postgres.url()), in_process_consumers: false, ..StackOptions::default() };
    let stack = Stack::start_with(options).await;
    let port = daemons::free_port();
    let _writer = stack
        .start_process_with("writer", &[("METRICS_ADDR", format!("127.0.0.1:{port}")), ("CONSUMER_STALL_AFTER_MS", "1000".to_string())]);
    let health = format!("http://127.0.0.1:{port}/health");
    let status_of = |health: String| {
        let http = stack.http.clone();
        async move {
            match http.get(health).send().await {
                Ok(r) => Some((r.status(), r.json::<serde_json::Value>().await.unwrap_or_default())),
                Err(_) => None,
            }
        }
    };
    // Running: it applies an event, and is healthy.
    let event = json!({"component": "c", "data": 1, "email": "a@b.co", "environment": "e", "message": "m"});
    assert_eq!(stack.post_anonymous("/events", &event).await.0, StatusCode::CREATED);
    stack.wait_applied_on(&stack.common.events_topic, &stack.common.events_writer_group()).await;
    stack.wait_applied(&stack.common.writer_group).await;
    assert_eq!(status_of(health.clone()).await.map(|(s, _)| s), Some(StatusCode::OK));

    // Generic events need no database to be accepted; the writer cannot store them.
    postgres.crash();
    assert_eq!(stack.post_anonymous("/events", &event).await.0, StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(30);
    let stalled = loop {
        if let Some((StatusCode::SERVICE_UNAVAILABLE, body)) = status_of(health.clone()).await {
            break body;
        }
        assert!(Instant::now() < deadline, "the writer never reported the stall");
        sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stalled["status"], "unhealthy");
    let entries = stalled["stalled"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "only the events topic has records waiting: {stalled}");
    assert_eq!(entries[0]["topic"], stack.common.events_topic.as_str(), "{stalled}");
    assert_eq!(entries[0]["lag"], 1, "{stalled}");

    // Back: it applies the event and is healthy again, without a restart.
    postgres.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of(health.clone()).await.map(|(s, _)| s) != Some(StatusCode::OK) {
        assert!(Instant::now() < deadline, "the writer did not recover");
        sleep(Duration::from_millis(200)).await;
    }
    stack.wait_applied_on(&stack.common.events_topic, &stack.common.events_writer_group()).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM generic_events").fetch_one(&stack.db).await.expect("count");
    assert_eq!(stored, 2);
}
