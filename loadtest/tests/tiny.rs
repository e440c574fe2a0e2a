//! The generator and the benchmark, run once at a tiny size against a real stack, only
//! to prove they work end to end (timings here mean nothing).

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::{Stack, StackOptions};
use loadtest::bench::{run, BenchConfig};
use loadtest::gen::{generate, GenConfig};
use std::time::Duration;

fn tiny() -> StackOptions {
    StackOptions { demo_users: false, ..StackOptions::default() }
}

async fn dataset(stack: &Stack) -> Vec<(uuid::Uuid, String, String, Option<i64>, Option<String>)> {
    sqlx::query_as("SELECT event_id, actor_name, verb, object_id, target_name FROM activities ORDER BY event_id")
        .fetch_all(&stack.db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generator_is_deterministic_for_a_seed() {
    let config =
        GenConfig { users: 60, activities: 400, weeks: 2, end: "2026-11-01T00:00:00Z".parse().unwrap(), seed: 7, prefix: "gen".into() };
    let mut datasets = Vec::new();
    for _ in 0..2 {
        let stack = Stack::start_with(tiny()).await;
        let generated = generate(&stack.common, &config).await.expect("generate");
        assert_eq!(generated.activities, 400);
        assert!(generated.follows >= 60, "everyone follows someone");
        stack.wait_applied(&stack.common.writer_group).await;
        stack.wait_applied(&stack.common.fanout_group).await;
        let rows = dataset(&stack).await;
        assert_eq!(rows.len(), 400 + generated.follows);
        // Popularity is skewed: the most followed account has far more than the median.
        let counts: Vec<i64> =
            sqlx::query_scalar("SELECT count(*) FROM follows GROUP BY followee_id ORDER BY 1 DESC").fetch_all(&stack.db).await.unwrap();
        assert!(counts[0] >= 4 * counts[counts.len() / 2], "{counts:?}");
        // Generated users can use the API with their predictable keys.
        let (status, me) = stack.get("/me", Some(&loadtest::seed::key_for("gen0"))).await;
        assert_eq!((status.as_u16(), me["name"].as_str()), (200, Some("gen0")));
        datasets.push(rows);
        stack.stop().await;
    }
    assert_eq!(datasets[0], datasets[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_end_to_end() {
    let stack = Stack::start_with(tiny()).await;
    let config = BenchConfig {
        common: stack.common.clone(),
        api_url: stack.api_url.clone(),
        stage: Duration::from_millis(500),
        concurrency: vec![2, 4],
        big_followees: 30,
        fanout_sizes: vec![1, 50],
        rows: 300,
    };
    let report = run(&config).await.expect("benchmark");
    assert!(report.trivial_route.rate > 0.0);
    assert!(report.ingest.iter().all(|(_, m)| m.ok > 0 && m.errors == 0), "{:?}", report.ingest);
    assert_eq!(report.fanout_lag_at_half.errors, 0);
    assert!(report.feed_10.ok > 0 && report.feed_big.ok > 0);
    assert!(report.redis_zadd > 0.0 && report.raw_copy_rows_per_s > 0.0 && report.raw_produce_per_s > 0.0);
    assert!(report.redis_bytes_per_entry > 0.0);
    assert_eq!(report.fanout_cost_ms.len(), 2);
    assert_eq!(report.writer_by_batch.len(), 4);
    assert_eq!(report.ratios.len(), 5);
    let markdown = report.markdown("feedbench --tiny", "test machine");
    assert!(markdown.contains("## Stages against their ceilings"));
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["ratios"][0]["ratio"].as_f64().is_some());
    // The benchmark cleaned up after its ceilings.
    let scratch: i64 = sqlx::query_scalar("SELECT count(*) FROM activities WHERE actor_id < 0").fetch_one(&stack.db).await.unwrap();
    assert_eq!(scratch, 0);
    stack.stop().await;
}
