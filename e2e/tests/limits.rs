//! Slow and idle clients are cut off instead of held: a connection that sends nothing,
//! one that never finishes its headers, an idle keep-alive connection and a request
//! whose body stalls are all closed by the server; and no more than `max_connections`
//! are served at once.

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
    let limits = Limits { max_connections: 64, header_read_timeout: Duration::from_millis(500), body_read_timeout: Duration::from_millis(500) };
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
