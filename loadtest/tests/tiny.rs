//! The generator and the benchmark, run once at a tiny size against a real stack, only
//! to prove they work end to end (timings here mean nothing).

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::{Stack, StackOptions};
use feed_core::config::FeedSettings;
use loadtest::bench::{run, BenchConfig};
use loadtest::gen::{generate, GenConfig};
use std::time::Duration;

/// Hot from 5 followers, so the benchmark's hot authors stay tiny too.
const FEED: FeedSettings = FeedSettings { max_len: 800, hot_followers: 5, active_for: Duration::from_secs(3600 * 168) };

fn tiny() -> StackOptions {
    StackOptions { demo_users: false, feed: FEED, ..StackOptions::default() }
}

async fn dataset(stack: &Stack) -> Vec<(uuid::Uuid, String, String, Option<i64>, Option<String>)> {
    sqlx::query_as("SELECT event_id, actor_name, verb, object_id, target_name FROM activities ORDER BY event_id")
        .fetch_all(&stack.db)
        .await
        .unwrap()
}

/// Same seed, same data: published through the pipeline, or written directly (the rows
/// with the writer's code, the Redis feeds with the fan-out's rebuild).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generator_is_deterministic_for_a_seed_either_way() {
    let config = GenConfig {
        users: 60,
        activities: 400,
        weeks: 2,
        end: "2026-11-01T00:00:00Z".parse().unwrap(),
        seed: 7,
        prefix: "gen".into(),
        direct: false,
    };
    let mut datasets = Vec::new();
    let mut feeds = Vec::new();
    for direct in [false, true] {
        let stack = Stack::start_with(tiny()).await;
        let generated = generate(&stack.common, &GenConfig { direct, ..config.clone() }).await.expect("generate");
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
        // What readers see (the published run's readers followed long ago, so the
        // fan-out skipped them as inactive and their reads catch up from PostgreSQL).
        let mut reader_feeds = Vec::new();
        for name in ["gen0", "gen1", "gen2", "gen3", "gen4"] {
            reader_feeds.push(stack.whole_feed("/feed/friends?limit=200", &loadtest::seed::key_for(name)).await);
        }
        feeds.push(reader_feeds);
        stack.stop().await;
    }
    assert_eq!(datasets[0], datasets[1]);
    assert_eq!(feeds[0], feeds[1], "the rebuilt feeds show what the fan-out's do");
    assert!(feeds[0].iter().any(|f| !f.is_empty()));
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
        hot_authors: 3,
        returning: 2,
        returning_followees: 20,
        idle: Duration::from_millis(200),
        feed: FEED,
    };
    let report = run(&config).await.expect("benchmark");
    assert!(report.trivial_route.rate > 0.0);
    assert!(report.ingest.iter().all(|(_, m)| m.ok > 0 && m.errors == 0), "{:?}", report.ingest);
    assert_eq!(report.fanout_lag_at_half.errors, 0);
    assert!(report.feed_10.ok > 0 && report.feed_big.ok > 0);
    assert!(report.redis_zadd > 0.0 && report.raw_copy_rows_per_s > 0.0 && report.raw_produce_per_s > 0.0);
    assert!(report.feed_hot.ok > 0 && report.feed_pushed.ok > 0 && report.returning.ok == 2 && report.big_author_posts.ok == 20);
    assert_eq!(report.pushes.iter().map(|p| p.followers).collect::<Vec<_>>(), [1, 50]);
    assert!(report.pushes[1].reads_during.as_ref().is_some_and(|r| r.errors == 0));
    assert_eq!(report.writer_by_batch.len(), 4);
    assert_eq!(report.ratios.len(), 6);
    assert!(report.bounds.len() >= 4);
    let markdown = report.markdown("feedbench --tiny", "test machine");
    assert!(markdown.contains("## Stages against their ceilings"));
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["ratios"][0]["ratio"].as_f64().is_some());
    // The benchmark cleaned up after its ceilings.
    let scratch: i64 = sqlx::query_scalar("SELECT count(*) FROM activities WHERE actor_id < 0").fetch_one(&stack.db).await.unwrap();
    assert_eq!(scratch, 0);
    stack.stop().await;
}
