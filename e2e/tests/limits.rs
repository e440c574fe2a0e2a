//! Slow and idle clients are cut off instead of held: a connection that sends nothing,
//! one that never finishes its headers, an idle keep-alive connection and a request
//! whose body stalls are all closed by the server; no more than `max_connections` are
//! served at once; rate limits and write shedding answer 429 and 503; and a write that
//! cannot start within its deadline, or whose client has gone, is not published.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use api::server::Limits;
use e2e::{Stack, StackOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (or 10 s pass); what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    closed.ok().map(|_| String::from_utf8_lossy(&received).to_string())
}

fn address(stack: &Stack) -> String {
    stack.api_url.trim_start_matches("http://").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let limits =
        Limits { max_connections: 64, header_read_timeout: Duration::from_millis(500), body_read_timeout: Duration::from_millis(500) };
    let stack = Stack::start_with(StackOptions { demo_users: false, limits, ..StackOptions::default() }).await;
    let addr = address(&stack);

    // Sends nothing at all.
    let mut silent = TcpStream::connect(&addr).await.expect("connect");
    assert!(read_until_closed(&mut silent).await.is_some(), "a silent connection stayed open");

    // Slowloris: headers that never end.
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n").await.expect("write");
    assert!(read_until_closed(&mut slow).await.is_some(), "a connection with unfinished headers stayed open");

    // Keep-alive: one answered request, then idle.
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let answered = read_until_closed(&mut idle).await.expect("an idle keep-alive connection stayed open");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // A body that stops half-way: refused, and nothing recorded.
    let published = stack.published_on(&stack.common.events_topic).await;
    let mut stalled = TcpStream::connect(&addr).await.expect("connect");
    stalled
        .write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"component\":")
        .await
        .expect("write");
    let answer = read_until_closed(&mut stalled).await.expect("a stalled body held the connection");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert_eq!(stack.published_on(&stack.common.events_topic).await, published);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let limits = Limits { max_connections: 2, header_read_timeout: Duration::from_secs(30), body_read_timeout: Duration::from_secs(10) };
    let stack = Stack::start_with(StackOptions { demo_users: false, limits, ..StackOptions::default() }).await;
    let addr = address(&stack);
    let request = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";

    // Two kept-alive connections take both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).await.expect("read");
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    // A third waits in the backlog ...
    let mut third = TcpStream::connect(&addr).await.expect("the kernel accepts it");
    third.write_all(request.as_bytes()).await.expect("write");
    let mut buffer = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buffer)).await;
    assert!(early.is_err(), "served beyond the limit");
    // ... and is served once a slot frees.
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buffer)).await.expect("served after a slot freed").expect("read");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_over_their_rate_get_429_and_nothing_is_recorded() {
    let shedding = api::shedding::Settings { per_key: 2, per_address: 3, max_pending_writes: 1024 };
    let stack = Stack::start_with(StackOptions { shedding, ..StackOptions::default() }).await;
    let now = chrono::Utc::now().timestamp_millis();

    // Without a key: per address. Of four hits at once, three pass and one is refused.
    let responses = futures::future::join_all(
        (0..4).map(|i| stack.http.post(format!("{}/analytics?timestamp={now}&user=u{i}&event=click", stack.api_url)).send()),
    )
    .await;
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.as_ref().map(|r| r.status().as_u16()).unwrap_or(0)).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![204, 204, 204, 429]);
    let limited = responses.into_iter().flatten().find(|r| r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS).expect("a 429");
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(limited.headers()["ratelimit-limit"], "3");
    assert_eq!(limited.headers()["ratelimit-remaining"], "0");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["message"], "Too many requests");
    assert_eq!(stack.published_on(&stack.common.analytics_topic).await, 3, "the refused hit was not published");
    // Operations routes are never limited, probes above all.
    for path in ["/livez", "/readyz", "/livez", "/readyz", "/livez", "/readyz"] {
        assert_eq!(stack.send_text(reqwest::Method::GET, path).await.0, reqwest::StatusCode::OK, "{path}");
    }

    // With a key: per key, independent of other keys (once each key is known).
    assert_eq!(stack.get("/me", Some("abc123")).await.0, reqwest::StatusCode::OK);
    assert_eq!(stack.get("/me", Some("abc124")).await.0, reqwest::StatusCode::OK);
    let codes: Vec<u16> =
        futures::future::join_all((0..3).map(|_| stack.get("/me", Some("abc123")))).await.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 1, "{codes:?}");
    assert_eq!(stack.get("/me", Some("abc124")).await.0, reqwest::StatusCode::OK);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_beyond_the_pending_bound_get_503_at_once() {
    // No consumers: a write holds its slot for the whole read-your-writes wait.
    let shedding = api::shedding::Settings { per_key: 0, per_address: 0, max_pending_writes: 1 };
    let options = StackOptions {
        demo_users: false,
        in_process_consumers: false,
        read_your_writes_timeout: Duration::from_secs(3),
        shedding,
        ..StackOptions::default()
    };
    let stack = Stack::start_with(options).await;
    let event = serde_json::json!({"component": "c", "data": 1, "email": "a@b.co", "environment": "e", "message": "m"});
    let (http, url) = (stack.http.clone(), format!("{}/events", stack.api_url));
    let first = tokio::spawn({
        let (http, url, event) = (http.clone(), url.clone(), event.clone());
        async move { http.post(url).json(&event).send().await.unwrap().status() }
    });
    // Once the first is published (and waiting), a second is shed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stack.published_on(&stack.common.events_topic).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the first write was never published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = http.post(&url).json(&event).send().await.unwrap();
    assert_eq!(second.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers()["retry-after"], "1");
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["message"], "Too many writes in flight, retry shortly");
    assert_eq!(first.await.unwrap(), reqwest::StatusCode::CREATED, "the first is answered (pending) after its wait");
    assert_eq!(stack.published_on(&stack.common.events_topic).await, 1, "the shed write was not published");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_keys_share_one_bucket_per_address() {
    let shedding = api::shedding::Settings { per_key: 2, per_address: 0, max_pending_writes: 1024 };
    let stack = Stack::start_with(StackOptions { shedding, ..StackOptions::default() }).await;
    // Four different made-up keys at once from one address: two are looked up and
    // refused (401), two are limited before any lookup (429).
    let other = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let responses = futures::future::join_all(
        (0..4).map(|i| other.get(format!("{}/me", stack.api_url)).header("X-App-Key", format!("made-up-{i}")).send()),
    )
    .await;
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.as_ref().map(|r| r.status().as_u16()).unwrap_or(0)).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![401, 401, 429, 429]);
    // A real key from another address is not held back by them.
    assert_eq!(stack.get("/me", Some("abc123")).await.0, reqwest::StatusCode::OK);
    stack.stop().await;
}

/// Holds an exclusive lock on `users` until dropped (rolled back), so the API's key
/// lookups wait: the write stays before its publish for as long as the test wants.
async fn lock_users(stack: &Stack) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = stack.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    lock
}

/// Waits (at most 10 s) until a query of the API waits on a lock.
async fn wait_for_blocked_query(stack: &Stack) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
                .fetch_one(&stack.db)
                .await
                .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the API never queried the locked table");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_cannot_start_within_its_deadline_gets_503_and_is_not_recorded() {
    // A publish may take 3 s, a write 4 s: one still before its publish after 1 s is refused.
    let options =
        StackOptions { publish_timeout: Duration::from_secs(3), write_deadline: Duration::from_secs(4), ..StackOptions::default() };
    let stack = Stack::start_with(options).await;
    let published = stack.published_on(&stack.common.feed_topic).await;
    let lock = lock_users(&stack).await;
    let write = tokio::spawn({
        let request = stack.http.post(format!("{}/post", stack.api_url)).header("X-App-Key", "abc123");
        async move { request.json(&serde_json::json!({"type": "post", "content": "late"})).send().await.unwrap() }
    });
    wait_for_blocked_query(&stack).await;
    // Held past the point where a publish could still finish within the deadline.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    lock.rollback().await.unwrap();
    let answer = write.await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers()["retry-after"], "1");
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["message"], "The write could not be started within its deadline; nothing was recorded");
    assert_eq!(stack.published_on(&stack.common.feed_topic).await, published, "the late write was published");
    // Once the lookup is fast again, writes go through.
    assert_eq!(stack.post("/post", "abc123", serde_json::json!({"type": "post", "content": "on time"})).await.0, reqwest::StatusCode::OK);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_client_hung_up_before_its_publish_is_not_published() {
    let stack = Stack::start().await;
    let published = stack.published_on(&stack.common.feed_topic).await;
    let lock = lock_users(&stack).await;
    let body = r#"{"type": "post", "content": "nobody waits for me"}"#;
    let mut client = TcpStream::connect(address(&stack)).await.expect("connect");
    let request = format!(
        "POST /post HTTP/1.1\r\nHost: x\r\nX-App-Key: abc123\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.expect("write");
    wait_for_blocked_query(&stack).await;
    drop(client);
    lock.rollback().await.unwrap();
    // The same author's next write, answered after the abandoned one could have been
    // published, is the only one recorded.
    assert_eq!(
        stack.post("/post", "abc123", serde_json::json!({"type": "post", "content": "waited for"})).await.0,
        reqwest::StatusCode::OK
    );
    assert_eq!(stack.published_on(&stack.common.feed_topic).await, published + 1, "a write nobody waits for was published");
    let (_, posts) = stack.get("/feed/my", Some("abc123")).await;
    let entries = posts["my_feed"].as_array().unwrap();
    assert_eq!(entries.iter().filter(|e| e["verb"] == "post").count(), 1, "{entries:?}");
    stack.stop().await;
}
