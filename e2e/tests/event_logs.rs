//! One event followed across the services by its id: the API, the writer and the
//! fan-out each log one `feed_events` line for it, naming the same topic position.
//! (Its own test binary: it installs the process's log subscriber.)

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::Stack;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Log lines written so far.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines_about(&self, event_id: &str) -> Vec<Value> {
        let bytes = self.0.lock().expect("capture").clone();
        String::from_utf8(bytes)
            .expect("UTF-8 logs")
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["event_id"] == event_id)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_is_logged_by_id_in_api_writer_and_fan_out() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(format!("warn,{}=info", feed_core::telemetry::EVENT_LOG))
        .with_writer(move || writer.clone())
        .init();
    let stack = Stack::start().await;

    let response = stack
        .http
        .post(format!("{}/post", stack.api_url))
        .header("X-App-Key", "abc123")
        .json(&json!({"type": "post", "content": "follow me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-read-your-writes"], "applied");
    let event_id = response.headers()["x-event-id"].to_str().unwrap().to_string();
    let stored: uuid::Uuid = sqlx::query_scalar("SELECT event_id FROM activities WHERE verb = 'post'").fetch_one(&stack.db).await.unwrap();
    assert_eq!(stored.to_string(), event_id, "the header names the stored event");

    // "applied" (and so both lines) precede the progress marks the answer waited for.
    let lines = capture.lines_about(&event_id);
    let by = |message: &str, group: Option<&str>| {
        lines
            .iter()
            .find(|l| l["message"] == message && group.is_none_or(|g| l["group"] == g))
            .unwrap_or_else(|| panic!("no {message} line for {group:?} in {lines:?}"))
            .clone()
    };
    let published = by("published", None);
    let written = by("applied", Some(&stack.common.writer_group));
    let fanned_out = by("applied", Some(&stack.common.fanout_group));
    for line in [&published, &written, &fanned_out] {
        assert_eq!(line["target"], feed_core::telemetry::EVENT_LOG);
        assert_eq!(line["topic"], stack.common.feed_topic.as_str());
        assert_eq!((&line["partition"], &line["offset"]), (&published["partition"], &published["offset"]), "{line}");
    }
    stack.stop().await;
}
