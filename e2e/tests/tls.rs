//! Every client speaks TLS where its server requires it: a PostgreSQL that refuses
//! plaintext connections (`sslmode=verify-full` with a private CA in the URL), a Redis
//! that listens only for TLS (`rediss://` with `REDIS_CA_FILE`), and a broker reached
//! only through a TLS listener (`KAFKA_SECURITY_PROTOCOL=ssl` with
//! `KAFKA_SSL_CA_LOCATION`; tansu has no TLS listener of its own, so `socat` terminates
//! TLS in front of it, as a managed Kafka's listener would). The certificates are made
//! by the test.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::daemons::{Broker, Postgres, Redis};
use e2e::tls::Certificates;
use e2e::{Stack, StackOptions};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_on_stores_and_a_broker_that_require_tls() {
    let certificates = Certificates::generate();
    let ca = certificates.ca().display().to_string();
    let postgres = Postgres::start_tls(&certificates);
    let redis = Redis::start_tls(&certificates);
    let broker = tokio::task::spawn_blocking({
        let certificates = Certificates::generate();
        move || (Broker::start_behind_tls(&certificates), certificates)
    });
    let (broker, broker_certificates) = broker.await.unwrap();
    let broker_ca = broker_certificates.ca().display().to_string();

    // Plaintext is refused by each, and so is a server the client cannot verify.
    let plain = sqlx::PgPool::connect(&format!("{}?sslmode=disable", postgres.url())).await;
    assert!(plain.is_err(), "PostgreSQL accepted a plaintext connection");
    let other_ca = Certificates::generate();
    let unverified =
        sqlx::PgPool::connect(&format!("{}?sslmode=verify-full&sslrootcert={}", postgres.url(), other_ca.ca().display())).await;
    assert!(unverified.is_err(), "a server certificate from another CA was accepted");
    let plain_redis = feed_core::redis_client::Redis::connect(&redis.url().replacen("rediss", "redis", 1), false, None).await;
    assert!(plain_redis.is_err(), "Redis answered in plaintext");
    let unverified_redis = feed_core::redis_client::Redis::connect(&redis.url(), false, Some(&other_ca.ca().display().to_string())).await;
    assert!(unverified_redis.is_err(), "Redis with a certificate from another CA was accepted");

    let stack = Stack::start_with(StackOptions {
        postgres_url: Some(format!("{}?sslmode=verify-full&sslrootcert={ca}", postgres.url())),
        redis_url: Some(redis.url()),
        redis_ca_file: Some(ca.clone()),
        brokers: Some(broker.address()),
        kafka_security: vec![("security.protocol", "ssl".into()), ("ssl.ca.location", broker_ca)],
        ..StackOptions::default()
    })
    .await;

    // A post goes API → broker → writer (PostgreSQL) and fan-out (Redis) → a follower's feed.
    assert_eq!(stack.post("/follow", "abc123", json!({"follow": "nico"})).await.0, StatusCode::OK);
    let (status, posted) = stack.post("/post", "abc124", json!({"type": "post", "content": "over TLS"})).await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    let feed = stack.whole_feed("/feed/friends", "abc123").await;
    assert_eq!(feed.len(), 1, "{feed:?}");
    let (status, mine) = stack.get("/feed/my", Some("abc124")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["my_feed"].as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(stack.send_text(reqwest::Method::GET, "/health").await.0, StatusCode::OK);

    // Every connection PostgreSQL holds for the stack is a TLS one.
    let ssl: Vec<bool> = sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.backend_type = 'client backend' AND a.client_port IS NOT NULL",
    )
    .fetch_all(&stack.db)
    .await
    .unwrap();
    assert!(!ssl.is_empty() && ssl.iter().all(|s| *s), "connections without TLS: {ssl:?}");
    stack.stop().await;
}
