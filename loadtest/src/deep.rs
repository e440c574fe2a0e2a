//! The friends feed far past what Redis keeps: a reader following `followees` generated
//! users pages back through their feed; pages beyond Redis come from PostgreSQL. It
//! times every page over HTTP and, for the pages from PostgreSQL, the query alone, and
//! keeps the plan of one of them.

use crate::seed::{key_for, Seeder};
use feed_core::activities::{self, Position};
use feed_core::config::CommonConfig;
use feed_core::event::{Event, EventType};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct DeepConfig {
    /// The running stack's settings.
    pub common: CommonConfig,
    /// Base URL of its API.
    pub api_url: String,
    /// How many generated users the reader follows.
    pub followees: usize,
    /// Entries per page.
    pub limit: usize,
    /// Pages read, from the first.
    pub pages: usize,
}

/// Latencies of a kind of page, milliseconds.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    /// Pages measured.
    pub pages: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// The results.
#[derive(Debug, Serialize)]
pub struct DeepReport {
    /// Followees of the reader.
    pub followees: usize,
    /// Activities in the hypertable.
    pub activities: i64,
    /// Entries read in all, and where Redis ended (entries it held).
    pub entries: usize,
    /// See `entries`.
    pub redis_entries: i64,
    /// Pages served from Redis alone, over HTTP.
    pub redis_pages: Latency,
    /// Pages from PostgreSQL, over HTTP.
    pub database_pages: Latency,
    /// The same pages' query alone.
    pub database_queries: Latency,
    /// `EXPLAIN (ANALYZE, BUFFERS)` of the deepest page's query.
    pub plan: String,
}

fn latency(histogram: &Histogram<u64>) -> Latency {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Latency { pages: histogram.len(), p50_ms: ms(0.5), p99_ms: ms(0.99), max_ms: histogram.max() as f64 / 1000.0 }
}

/// Runs the benchmark on generated data (`feedgen`).
pub async fn run(config: &DeepConfig) -> anyhow::Result<DeepReport> {
    let seeder = Seeder::connect(&config.common).await?;
    let quiet = indicatif::ProgressBar::hidden();
    let reader = seeder.ensure_users(&["deep_reader".to_string()], &quiet).await?.remove(0);
    // The first generated users (feedgen names them user<n>).
    let followees: Vec<(i64, String)> = sqlx::query_as("SELECT u.id, u.name FROM users u WHERE u.name LIKE 'user%' ORDER BY u.id LIMIT $1")
        .bind(config.followees as i64)
        .fetch_all(&seeder.db)
        .await?;
    anyhow::ensure!(followees.len() == config.followees, "only {} generated users: run feedgen first", followees.len());
    let follows = followees.iter().map(|(id, name)| {
        let target = feed_core::event::UserRef { id: *id, name: name.clone() };
        Event::new(EventType::Follow, reader.clone(), None, Some(target), serde_json::Value::Null)
    });
    seeder.publish(follows, &quiet).await?;
    seeder.wait_applied(&config.common, &config.common.writer_group, "writer").await?;
    seeder.wait_applied(&config.common, &config.common.fanout_group, "fan-out").await?;

    let keys = feed_core::keys::Keys::new(&config.common.redis_key_prefix);
    let mut redis = config.common.redis().await?;
    let redis_entries: i64 = redis::cmd("ZCARD").arg(keys.friends(reader.id)).query_async(&mut redis).await?;
    let activities: i64 = sqlx::query_scalar("SELECT count(*) FROM activities").fetch_one(&seeder.db).await?;

    let http = reqwest::Client::new();
    let key = key_for(&reader.name);
    let new = crate::load::histogram;
    let (mut from_redis, mut from_db, mut queries) = (new(), new(), new());
    let mut path = format!("/feed/friends?limit={}", config.limit);
    let mut entries = 0usize;
    let mut deepest: Option<Position> = None;
    for _ in 0..config.pages {
        let started = Instant::now();
        let body: serde_json::Value =
            http.get(format!("{}{path}", config.api_url)).header("X-App-Key", &key).send().await?.error_for_status()?.json().await?;
        let micros = started.elapsed().as_micros().max(1) as u64;
        let page = body["friends_feed"].as_array().map_or(0, Vec::len);
        // Pages that end within what Redis holds are served by Redis alone.
        if (entries + page) as i64 <= redis_entries {
            from_redis.record(micros)?;
        } else if entries as i64 >= redis_entries {
            from_db.record(micros)?;
            // The same query, alone (the cursor of the page's request).
            let after = cursor_position(&path);
            let started = Instant::now();
            let mut db = seeder.db.acquire().await?;
            activities::friends(&mut db, reader.id, activities::Range::after(after, config.limit as i64 + 1)).await?;
            queries.record(started.elapsed().as_micros().max(1) as u64)?;
            deepest = after;
        }
        entries += page;
        match body["next_url"].as_str() {
            Some("") | None => break,
            Some(next) => path = next.to_string(),
        }
    }
    let plan = match deepest {
        Some(after) => explain(&seeder.db, reader.id, after, config.limit as i64 + 1).await?,
        None => String::from("(no page came from PostgreSQL)"),
    };
    Ok(DeepReport {
        followees: config.followees,
        activities,
        entries,
        redis_entries,
        redis_pages: latency(&from_redis),
        database_pages: latency(&from_db),
        database_queries: latency(&queries),
        plan,
    })
}

/// The position a `/feed/friends?cursor=<micros>_<uuid>…` path continues after.
fn cursor_position(path: &str) -> Option<Position> {
    let cursor = path.split(['?', '&']).find_map(|part| part.strip_prefix("cursor="))?;
    api::routes::page::Cursor::parse(cursor)?.position()
}

/// The plan of the friends query, as `activities::friends` first runs it (one-hour window).
async fn explain(db: &sqlx::PgPool, reader: i64, after: Position, limit: i64) -> anyhow::Result<String> {
    let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, BUFFERS) {}", activities::friends_query(true, true)))
        .bind(reader)
        .bind(Some(after.time))
        .bind(Some(after.event_id))
        .bind(limit)
        .bind(0_i64)
        .bind(after.time - chrono::TimeDelta::hours(1))
        .fetch_all(db)
        .await?;
    Ok(lines.join("\n"))
}

/// The report as Markdown.
pub fn markdown(report: &DeepReport, command: &str) -> String {
    let row =
        |name: &str, l: &Latency| format!("| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms |\n", l.pages, l.p50_ms, l.p99_ms, l.max_ms);
    let mut s = String::from("# The friends feed past what Redis keeps\n\n");
    s.push_str(&format!("Command: `{command}`\n\n"));
    s.push_str(&format!(
        "A reader following {} generated users pages through {} entries ({} held in Redis, the rest from PostgreSQL; {} activities in the hypertable).\n\n",
        report.followees, report.entries, report.redis_entries, report.activities
    ));
    s.push_str("| pages | count | p50 | p99 | max |\n|---|---|---|---|---|\n");
    s.push_str(&row("from Redis, over HTTP", &report.redis_pages));
    s.push_str(&row("from PostgreSQL, over HTTP", &report.database_pages));
    s.push_str(&row("from PostgreSQL, the query alone", &report.database_queries));
    s.push_str(&format!("\nPlan of the deepest page's query:\n\n```\n{}\n```\n", report.plan));
    s
}
