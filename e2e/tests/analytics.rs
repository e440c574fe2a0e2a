//! Hourly analytics (../shared/reference/narrative-analytics.md) through the analytics
//! topic and the writer's exact rollup.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::{Stack, StackOptions};
use reqwest::{Method, StatusCode};

const HOUR_MS: i64 = 3_600_000;

fn current_hour_ms() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now % HOUR_MS
}

async fn hit(stack: &Stack, timestamp: i64, user: &str, event: &str) {
    let (status, body) = stack.send_text(Method::POST, &format!("/analytics?timestamp={timestamp}&user={user}&event={event}")).await;
    assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""), "{user} {event}");
}

async fn counts(stack: &Stack, timestamp: i64) -> String {
    let response = stack.http.get(format!("{}/analytics?timestamp={timestamp}", stack.api_url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

fn expected(users: u32, clicks: u32, impressions: u32) -> String {
    format!("unique_users,{users}\nclicks,{clicks}\nimpressions,{impressions}\n")
}

async fn stack() -> Stack {
    Stack::start_with(StackOptions { demo_users: false, ..StackOptions::default() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_refuses_bad_parameters_and_publishes_nothing() {
    let stack = stack().await;
    let now = chrono::Utc::now().timestamp_millis();
    for (query, field) in [
        ("user=u&event=click".to_string(), "timestamp"),
        ("timestamp=&user=u&event=click".to_string(), "timestamp"),
        ("timestamp=abc&user=u&event=click".to_string(), "timestamp"),
        ("timestamp=-5&user=u&event=click".to_string(), "timestamp"),
        ("timestamp=1.5&user=u&event=click".to_string(), "timestamp"),
        ("timestamp=99999999999999999999&user=u&event=click".to_string(), "timestamp"),
        // Outside the accepted window (a week back, an hour ahead): no partition made.
        ("timestamp=0&user=u&event=click".to_string(), "timestamp"),
        ("timestamp=253402300799999&user=u&event=click".to_string(), "timestamp"),
        (format!("timestamp={}&user=u&event=click", now - 8 * 24 * 3_600_000), "timestamp"),
        (format!("timestamp={}&user=u&event=click", now + 2 * 3_600_000), "timestamp"),
        (format!("timestamp={now}&user={}&event=click", "u".repeat(257)), "user"),
        (format!("timestamp={now}&event=click"), "user"),
        (format!("timestamp={now}&user=&event=click"), "user"),
        (format!("timestamp={now}&user=u"), "event"),
        (format!("timestamp={now}&user=u&event=view"), "event"),
    ] {
        let (status, body) = stack.send_text(Method::POST, &format!("/analytics?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["field"], field, "{query}: {body}");
        assert_eq!(body["error"], true);
    }
    // Repeated parameters (which would win?) and invalid UTF-8: refused, nothing recorded.
    for query in [format!("timestamp={now}&timestamp={now}&user=u&event=click"), format!("timestamp={now}&user=%FF&event=click")] {
        let (status, body) = stack.send_text(Method::POST, &format!("/analytics?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    for query in ["", "timestamp=x", "timestamp=-1"] {
        assert_eq!(stack.send_text(Method::GET, &format!("/analytics?{query}")).await.0, StatusCode::BAD_REQUEST, "{query}");
    }
    assert_eq!(stack.published_on(&stack.common.analytics_topic).await, 0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_per_hour_are_exact() {
    let stack = stack().await;
    let hour = current_hour_ms();
    let past = hour - 3 * HOUR_MS;

    // Empty hours answer zeros.
    assert_eq!(counts(&stack, hour).await, expected(0, 0, 0));

    // Current hour, with a user seen several times.
    hit(&stack, hour + 1, "alice", "click").await;
    hit(&stack, hour + 2, "alice", "click").await;
    hit(&stack, hour + 3, "bob", "impression").await;
    hit(&stack, hour + HOUR_MS - 1, "alice", "impression").await;
    assert_eq!(counts(&stack, hour + 500).await, expected(2, 2, 2));

    // A past hour, arriving late and out of order; each hit counts in its own hour.
    hit(&stack, past + HOUR_MS + 10, "carol", "click").await; // the hour after `past`
    hit(&stack, past + 10, "dave", "impression").await;
    hit(&stack, past + 5, "alice", "click").await;
    assert_eq!(counts(&stack, past).await, expected(2, 1, 1));
    assert_eq!(counts(&stack, past + HOUR_MS).await, expected(1, 1, 0));
    assert_eq!(counts(&stack, past - 1).await, expected(0, 0, 0), "the hour before is empty");
    assert_eq!(counts(&stack, hour).await, expected(2, 2, 2), "the current hour is unchanged");

    // Hour boundaries: the last millisecond belongs to the hour, the next one does not.
    assert_eq!(counts(&stack, hour + HOUR_MS - 1).await, expected(2, 2, 2));
    assert_eq!(counts(&stack, hour + HOUR_MS).await, expected(0, 0, 0));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_survive_a_writer_crash_and_a_full_replay() {
    let options = StackOptions { demo_users: false, in_process_consumers: false, ..StackOptions::default() };
    let stack = Stack::start_with(options).await;
    let mut writer = stack.start_process("writer");
    let hour = current_hour_ms();
    for i in 0..30 {
        let event = if i % 3 == 0 { "impression" } else { "click" };
        hit(&stack, hour + i, &format!("user{}", i % 7), event).await;
    }
    hit(&stack, hour - HOUR_MS, "late", "click").await;
    let before = (counts(&stack, hour).await, counts(&stack, hour - HOUR_MS).await);
    assert_eq!(before.0, expected(7, 20, 10));
    assert_eq!(before.1, expected(1, 1, 0));

    // SIGKILL and restart the writer: whatever it re-reads does not count twice.
    writer.kill();
    writer.restart();
    hit(&stack, hour + 100, "user0", "click").await;
    assert_eq!(counts(&stack, hour).await, expected(7, 21, 10));

    // Replay the whole topic through a fresh writer group: counts do not move.
    let group = stack.group("replay");
    let replay = stack.spawn_writer(&group).await;
    stack.wait_applied_on(&stack.common.analytics_topic, &format!("{group}-analytics")).await;
    assert_eq!(counts(&stack, hour).await, expected(7, 21, 10));
    assert_eq!(counts(&stack, hour - HOUR_MS).await, before.1);
    replay.stop().await;
    stack.stop().await;
}
