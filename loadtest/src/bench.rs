//! The stage-by-stage benchmark: every stage of the pipeline measured against the best
//! the same machine does for the same work, in one run, plus what the fan-out's
//! defences cost (hot authors, inactive readers, bounded commands, compact feeds).
//!
//! Its own users (`bench_*`) are written straight into PostgreSQL and their Redis
//! feeds rebuilt from there (see `crate::seed`); the traffic it measures goes through
//! the real API, broker, writer and fan-out.

use crate::fanout_costs::{self, Memory, PushCost};
use crate::load::{closed_loop, closed_loop_until, open_loop, open_loop_timed, summarize_samples, Measured};
use crate::seed::{bar, key_for, Seeder};
use feed_core::config::{CommonConfig, FeedSettings};
use feed_core::consumer::{Record, Sink};
use feed_core::event::{Event, EventType, ObjectKind, ObjectRef, UserRef};
use feed_core::keys::Keys;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How big and how long.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The stack's shared settings (database, Redis, broker, topic, groups).
    pub common: CommonConfig,
    /// Base URL of the API.
    pub api_url: String,
    /// Seconds per load stage.
    pub stage: Duration,
    /// Concurrency levels tried for the highest sustained ingest rate.
    pub concurrency: Vec<usize>,
    /// Accounts the big reader follows (10,000 in a full run).
    pub big_followees: usize,
    /// Follower counts of the push-cost curve (1, 100, 10,000, 100,000 in a full run);
    /// the largest is also the HTTP-posting author's.
    pub fanout_sizes: Vec<usize>,
    /// Rows per ceiling / batch-size measurement.
    pub rows: usize,
    /// Hot authors the hot-author reader follows (20).
    pub hot_authors: usize,
    /// Returning inactive readers timed (20), each following `returning_followees`.
    pub returning: usize,
    /// Accounts each returning reader follows (1,000).
    pub returning_followees: usize,
    /// How long idle CPU is measured at the start.
    pub idle: Duration,
    /// How the stack's fan-out keeps feeds (its `HOT_AUTHOR_FOLLOWERS` decides who is hot).
    pub feed: FeedSettings,
}

/// One stage against its ceiling.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// What was measured.
    pub stage: String,
    /// Its rate (per second).
    pub rate: f64,
    /// The ceiling's rate.
    pub ceiling: f64,
    /// What the ceiling is.
    pub ceiling_name: String,
    /// rate / ceiling.
    pub ratio: f64,
    /// The goal for the ratio.
    pub goal: f64,
}

/// A goal that is not a ratio of rates: a figure and its bound.
#[derive(Clone, Debug, Serialize)]
pub struct Bound {
    /// What was measured.
    pub what: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The bound it must stay at or below.
    pub at_most: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// CPU of each process with no traffic, % of a core.
    pub idle_cpu: Vec<(String, f64)>,
    /// Redis memory of the fan-out's keys before the benchmark added its own.
    pub memory: Memory,
    /// Trivial route (`GET /livez`) under the same load generator.
    pub trivial_route: Measured,
    /// `POST /post` by authors with 1 to 10 followers, counted only when answered with
    /// read-your-writes `applied`, per concurrency level tried.
    pub ingest: Vec<(usize, Measured)>,
    /// `POST /post` at half the best ingest rate.
    pub ingest_at_half: Measured,
    /// From a 200 to the entry in a follower's `/feed/friends`, at half the best rate.
    pub fanout_lag_at_half: Measured,
    /// Writer rows/s into `activities` during the best ingest stage.
    pub writer_rows_per_s: f64,
    /// Fan-out feed entries/s into Redis during the best ingest stage.
    pub fanout_entries_per_s: f64,
    /// `GET /feed/friends` closed loop, reader following 10 accounts.
    pub feed_10: Measured,
    /// Same for the reader following `big_followees` accounts.
    pub feed_big: Measured,
    /// `GET /feed/friends` (10-followee reader) at half its max rate.
    pub feed_10_at_half: Measured,
    /// How many accounts the big reader follows.
    pub big_followees: usize,
    /// `GET /feed/friends` of a reader following `hot_authors` hot authors.
    pub feed_hot: Measured,
    /// `GET /feed/friends` of a reader following as many authors, all pushed.
    pub feed_pushed: Measured,
    /// How many hot authors.
    pub hot_authors: usize,
    /// Time to the first page of readers back after being skipped while inactive.
    pub returning: Measured,
    /// How many accounts each returning reader follows.
    pub returning_followees: usize,
    /// `POST /post` by the author with the most followers (hot), one at a time.
    pub big_author_posts: Measured,
    /// Followers of that author.
    pub big_author_followers: usize,
    /// Feed reads of another user with nothing else going on, for comparison with the
    /// reads during the largest push.
    pub reads_baseline: Measured,
    /// One post pushed to every follower (no hot-author line) by follower count.
    pub pushes: Vec<PushCost>,
    /// redis-benchmark pipelined ZADD, ops/s.
    pub redis_zadd: f64,
    /// redis-benchmark pipelined ZREVRANGE 0 49, ops/s.
    pub redis_zrevrange: f64,
    /// Raw COPY of activity rows into `activities`, rows/s.
    pub raw_copy_rows_per_s: f64,
    /// Raw produce of feed-sized records with acks=all, records/s.
    pub raw_produce_per_s: f64,
    /// Peak RSS (VmHWM) per service process found on this machine, KiB.
    pub peak_rss_kib: Vec<(String, u64)>,
    /// Writer rows/s by batch size.
    pub writer_by_batch: Vec<(usize, f64)>,
    /// Every stage against its ceiling.
    pub ratios: Vec<Ratio>,
    /// The other goals.
    pub bounds: Vec<Bound>,
}

const AUTHORS: usize = 10;

/// Whether a request succeeded (and its body arrived).
async fn ok(response: reqwest::Result<reqwest::Response>) -> bool {
    match response {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// Whether a write succeeded and the pipeline applied it before the answer.
async fn applied(response: reqwest::Result<reqwest::Response>) -> bool {
    match response {
        Ok(r) => {
            let applied = r.headers().get(api::pipeline::CONSISTENCY_HEADER).is_some_and(|v| v == "applied");
            r.status().is_success() && applied && r.bytes().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Users the benchmark writes: their names.
struct Cast {
    authors: Vec<String>,
    pool: Vec<String>,
    reader10: String,
    reader_big: String,
    hot: Vec<String>,
    normal: Vec<String>,
    hot_reader: String,
    pushed_reader: String,
    returning: Vec<String>,
    big: String,
    fans: Vec<String>,
}

impl Cast {
    fn new(config: &BenchConfig, hot_line: usize) -> Self {
        let names = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
        let big_followers = config.fanout_sizes.iter().copied().max().unwrap_or(0).max(hot_line + 10);
        Self {
            authors: names("bench_author", AUTHORS),
            pool: names("bench_user", config.big_followees.max(config.returning_followees).max(AUTHORS)),
            reader10: "bench_reader10".into(),
            reader_big: "bench_reader_big".into(),
            hot: names("bench_hot", config.hot_authors),
            normal: names("bench_normal", config.hot_authors),
            hot_reader: "bench_hot_reader".into(),
            pushed_reader: "bench_pushed_reader".into(),
            returning: names("bench_returning", config.returning),
            big: "bench_big".into(),
            fans: names("bench_fan", big_followers),
        }
    }

    fn all(&self) -> Vec<String> {
        let mut all = self.authors.clone();
        for group in [&self.pool, &self.hot, &self.normal, &self.returning, &self.fans] {
            all.extend(group.iter().cloned());
        }
        all.extend([&self.reader10, &self.reader_big, &self.hot_reader, &self.pushed_reader, &self.big].map(|s| s.clone()));
        all
    }
}

/// Writes the benchmark's users, follows and posts straight into PostgreSQL, then
/// rebuilds their Redis feeds; returns the users by name.
async fn set_up(config: &BenchConfig, cast: &Cast, hot_line: usize) -> anyhow::Result<std::collections::HashMap<String, UserRef>> {
    let common = &config.common;
    let seeder = Seeder::direct(common).await?;
    let names = cast.all();
    let users = seeder.ensure_users(&names, &bar(names.len() as u64, "users")).await?;
    let by_name: std::collections::HashMap<String, UserRef> = users.iter().map(|u| (u.name.clone(), u.clone())).collect();
    let user = |name: &String| by_name[name].clone();
    let follow = |a: &String, b: &String| Event::new(EventType::Follow, user(a), None, Some(user(b)), serde_json::Value::Null);
    let mut events: Vec<Event> = Vec::new();
    events.extend(cast.authors.iter().map(|a| follow(&cast.reader10, a)));
    for (i, author) in cast.authors.iter().enumerate() {
        // Author i has i + 1 followers: 1 to 10.
        events.extend(cast.pool.iter().take(i + 1).map(|f| follow(f, author)));
    }
    events.extend(cast.pool.iter().take(config.big_followees).map(|f| follow(&cast.reader_big, f)));
    for reader in &cast.returning {
        events.extend(cast.pool.iter().take(config.returning_followees).map(|f| follow(reader, f)));
    }
    events.extend(cast.hot.iter().map(|h| follow(&cast.hot_reader, h)));
    events.extend(cast.normal.iter().map(|n| follow(&cast.pushed_reader, n)));
    for hot in &cast.hot {
        events.extend(cast.fans.iter().take(hot_line + 10).map(|f| follow(f, hot)));
    }
    events.extend(cast.fans.iter().map(|f| follow(f, &cast.big)));
    let mut posters: Vec<(&String, usize)> = cast.authors.iter().map(|a| (a, 80)).collect();
    posters.extend(cast.pool.iter().map(|u| (u, 1)));
    posters.extend(cast.hot.iter().chain(&cast.normal).map(|a| (a, 40)));
    posters.push((&cast.big, 10));
    let total: usize = posters.iter().map(|(_, n)| n).sum();
    let mut ids = seeder.object_ids("post_ids", total).await?.into_iter();
    for (poster, n) in posters {
        for _ in 0..n {
            let object = ObjectRef { kind: ObjectKind::Post, id: ids.next().unwrap_or_default() };
            events.push(Event::new(EventType::Post, user(poster), Some(object), None, serde_json::json!({"content": "bench"})));
        }
    }
    let progress = bar(events.len() as u64, "setup");
    seeder.publish(events, &progress).await?;
    progress.finish();
    seeder.rebuild_feeds(common, config.feed, Some(users.iter().map(|u| u.id).collect())).await?;
    Ok(by_name)
}

/// Runs the whole benchmark against a running stack.
pub async fn run(config: &BenchConfig) -> anyhow::Result<Report> {
    let common = &config.common;
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
    let url = config.api_url.clone();
    let keys = Keys::new(&common.redis_key_prefix);
    let redis = common.redis().await?;
    let hot_line = usize::try_from(config.feed.hot_followers).unwrap_or(usize::MAX);

    // Before anything of the benchmark's own: the stack idle, and the data set's memory.
    let idle_cpu = fanout_costs::cpu(&["tansu", "api", "writer", "fanout"], config.idle).await;
    let memory = fanout_costs::memory(&redis, &common.redis_key_prefix).await?;

    let cast = Cast::new(config, hot_line);
    let users = set_up(config, &cast, hot_line).await?;
    let seeder = Seeder::connect(common).await?;
    let stage = config.stage;
    let top_concurrency = *config.concurrency.iter().max().unwrap_or(&16);

    // Ceiling: the trivial route.
    let trivial_route = {
        let (http, url) = (http.clone(), url.clone());
        closed_loop(top_concurrency, stage, move |_| {
            let (http, url) = (http.clone(), url.clone());
            async move { ok(http.get(format!("{url}/livez")).send().await).await }
        })
        .await
    };

    // Acknowledged posts by authors with 1 to 10 followers, read-your-writes applied.
    let author_keys: Vec<String> = cast.authors.iter().map(|a| key_for(a)).collect();
    let post_request = {
        let (http, url, keys) = (http.clone(), url.clone(), author_keys.clone());
        move |i: u64| {
            let (http, url, key) = (http.clone(), url.clone(), keys[i as usize % keys.len()].clone());
            async move {
                let body = serde_json::json!({"type": "post", "content": "bench"});
                applied(http.post(format!("{url}/post")).header("X-App-Key", key).json(&body).send().await).await
            }
        }
    };
    let followers_per_author = (1..=AUTHORS).sum::<usize>() as f64 / AUTHORS as f64;
    let mut ingest = Vec::new();
    let (mut best, mut writer_rows_per_s, mut fanout_entries_per_s) = (0.0f64, 0.0, 0.0);
    for &concurrency in &config.concurrency {
        let rows_before = activity_rows(&seeder).await?;
        let t = Instant::now();
        let measured = closed_loop(concurrency, stage, post_request.clone()).await;
        seeder.wait_applied(common, &common.writer_group, "writer").await?;
        let rows = (activity_rows(&seeder).await? - rows_before) as f64;
        let seconds = t.elapsed().as_secs_f64();
        if measured.rate > best {
            best = measured.rate;
            writer_rows_per_s = rows / seconds;
            fanout_entries_per_s = measured.ok as f64 * followers_per_author / seconds;
        }
        ingest.push((concurrency, measured));
    }
    let at_32 = ingest.iter().find(|(c, _)| *c == 32).or(ingest.last()).map_or(0.0, |(_, m)| m.rate);

    // At half the best rate: POST latency, and the lag until a follower can read it.
    let half = (best / 2.0).max(1.0);
    let ingest_at_half = open_loop_timed(half, stage, post_request.clone()).await;
    let reader10_key = key_for(&cast.reader10);
    let fanout_lag_at_half = open_loop(half, stage, {
        let (http, url, keys, reader) = (http.clone(), url.clone(), author_keys.clone(), reader10_key.clone());
        move |i| {
            let (http, url, key, reader) = (http.clone(), url.clone(), keys[i as usize % keys.len()].clone(), reader.clone());
            async move { fanout_lag(&http, &url, &key, &reader).await }
        }
    })
    .await;

    // Feed reads.
    let read = |key: String| {
        let (http, url) = (http.clone(), url.clone());
        move |_| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move { ok(http.get(format!("{url}/feed/friends")).header("X-App-Key", key).send().await).await }
        }
    };
    let feed_10 = closed_loop(top_concurrency, stage, read(reader10_key.clone())).await;
    let feed_big = closed_loop(top_concurrency, stage, read(key_for(&cast.reader_big))).await;
    let feed_10_at_half = open_loop_timed((feed_10.rate / 2.0).max(1.0), stage, read(reader10_key.clone())).await;
    let feed_hot = closed_loop(top_concurrency, stage, read(key_for(&cast.hot_reader))).await;
    let feed_pushed = closed_loop(top_concurrency, stage, read(key_for(&cast.pushed_reader))).await;

    // Returning readers: skipped while inactive, then each one's first page.
    let returning = {
        for reader in &cast.returning {
            redis::cmd("HSET").arg(keys.reader(users[reader].id)).arg("active").arg(0).query_async::<()>(&mut redis.clone()).await?;
        }
        // A followee of all of them posts: the fan-out skips them and notes what they lack.
        let poster = key_for(&cast.pool[0]);
        let body = serde_json::json!({"type": "post", "content": "while away"});
        let response = http.post(format!("{url}/post")).header("X-App-Key", &poster).json(&body).send().await;
        anyhow::ensure!(ok(response).await, "the post made while readers were away failed");
        seeder.wait_applied(common, &common.fanout_group, "fan-out").await?;
        let mut samples = Vec::new();
        for reader in &cast.returning {
            let t = Instant::now();
            let response = http.get(format!("{url}/feed/friends")).header("X-App-Key", key_for(reader)).send().await?;
            let caught_up = response.headers().get(api::routes::REBUILDING_HEADER.as_str()).is_none();
            let page: serde_json::Value = response.json().await?;
            samples.push(t.elapsed());
            anyhow::ensure!(
                caught_up && page["friends_feed"].as_array().is_some_and(|a| !a.is_empty()),
                "{reader} was not caught up: {page}"
            );
        }
        summarize_samples(&samples)
    };

    // The author with the most followers posts (it is hot: no push), one at a time.
    let big_author_posts = {
        let mut samples = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let body = serde_json::json!({"type": "post", "content": "to everyone"});
            let response = http.post(format!("{url}/post")).header("X-App-Key", key_for(&cast.big)).json(&body).send().await;
            anyhow::ensure!(ok(response).await, "a post by the author with the most followers failed");
            samples.push(t.elapsed());
        }
        summarize_samples(&samples)
    };

    // Pushes by follower count through the fan-out's own sink, no hot-author line; the
    // largest with other users' reads going on, compared with the same reads alone.
    let reads_baseline = closed_loop(16, stage, read(reader10_key.clone())).await;
    let pushes = fanout_costs::pushes(common, config.feed, &config.fanout_sizes, {
        let read = read(reader10_key.clone());
        move |stop| closed_loop_until(16, stop, read.clone())
    })
    .await?;

    // Ceilings of the stores and the broker.
    let (redis_zadd, redis_zrevrange) = redis_benchmark(&common.redis_url, config.rows.max(10_000))?;
    let raw_copy_rows_per_s = raw_copy(&seeder.db, config.rows).await?;
    let raw_produce_per_s = raw_produce(common, config.rows).await?;
    let peak_rss_kib = crate::processes_kib(&["api", "writer", "fanout"], "VmHWM");
    let writer_by_batch = writer_by_batch(&seeder.db, &redis, config.rows).await?;

    let ratio = |stage: &str, rate: f64, ceiling: f64, name: &str, goal: f64| Ratio {
        stage: stage.to_string(),
        rate,
        ceiling,
        ceiling_name: name.to_string(),
        ratio: if ceiling > 0.0 { rate / ceiling } else { 0.0 },
        goal,
    };
    let ratios = vec![
        ratio("feed reads (10 followees)", feed_10.rate, trivial_route.rate, "trivial route", 0.5),
        ratio(
            &format!("feed reads ({} followees)", config.big_followees),
            feed_big.rate,
            feed_10.rate / 1.2,
            "10-followee reads / 1.2",
            1.0,
        ),
        ratio(
            &format!("reads of a reader of {} hot authors", config.hot_authors),
            feed_hot.rate,
            feed_pushed.rate,
            "pushed-only reader",
            1.0 / 1.5,
        ),
        ratio("acknowledged posts at 32 connections (1-10 followers, applied)", at_32, trivial_route.rate, "trivial route", 0.05),
        ratio("fan-out entries", fanout_entries_per_s, redis_zadd, "pipelined ZADD", 0.5),
        // During ingest the writer only sees what the API admits, so its own batch
        // handler driven flat out (largest batch) is what compares with COPY.
        ratio("writer rows (batches of 1000)", writer_by_batch.last().map_or(0.0, |(_, rate)| *rate), raw_copy_rows_per_s, "raw COPY", 0.5),
    ];
    let bound = |what: &str, value: f64, unit: &str, at_most: f64| Bound { what: what.to_string(), value, unit: unit.to_string(), at_most };
    let largest = pushes.iter().max_by_key(|p| p.followers);
    let mut bounds = vec![
        bound("idle CPU of the stack (tansu, api, writer, fanout)", idle_cpu.iter().map(|(_, c)| c).sum(), "% of a core", 5.0),
        // Measured over the data set found at the start (feedgen's); without one there is nothing to measure.
        bound(
            "Redis bytes per feed entry (feeds only, over the data set)",
            if memory.feed_entries == 0 { f64::NAN } else { memory.feed_bytes_per_entry },
            "bytes",
            64.0,
        ),
        bound("returning reader's first page, p99", returning.p99_ms, "ms", 50.0),
    ];
    if let Some(push) = largest {
        bound_push(&mut bounds, push, &reads_baseline);
    }
    let big_author_followers = cast.fans.len();
    Ok(Report {
        idle_cpu,
        memory,
        trivial_route,
        ingest,
        ingest_at_half,
        fanout_lag_at_half,
        writer_rows_per_s,
        fanout_entries_per_s,
        feed_10,
        feed_big,
        feed_10_at_half,
        big_followees: config.big_followees,
        feed_hot,
        feed_pushed,
        hot_authors: config.hot_authors,
        returning,
        returning_followees: config.returning_followees,
        big_author_posts,
        big_author_followers,
        reads_baseline,
        pushes,
        redis_zadd,
        redis_zrevrange,
        raw_copy_rows_per_s,
        raw_produce_per_s,
        peak_rss_kib,
        writer_by_batch,
        ratios,
        bounds,
    })
}

/// The largest push's bounds: its longest command, and other readers' p99 meanwhile.
fn bound_push(bounds: &mut Vec<Bound>, push: &PushCost, baseline: &Measured) {
    bounds.push(Bound {
        what: format!("longest Redis command during a {}-follower push", push.followers),
        value: push.longest_command_us as f64 / 1000.0,
        unit: "ms".into(),
        at_most: 5.0,
    });
    if let Some(during) = &push.reads_during {
        bounds.push(Bound {
            what: format!("other readers' p99 during it / alone ({:.2} / {:.2} ms)", during.p99_ms, baseline.p99_ms),
            value: if baseline.p99_ms > 0.0 { during.p99_ms / baseline.p99_ms } else { 0.0 },
            unit: "x".into(),
            at_most: 1.2,
        });
    }
}

async fn activity_rows(seeder: &Seeder) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM activities").fetch_one(&seeder.db).await?)
}

/// Posts, then polls the reader's friends feed until the new object shows; the time
/// from the 200 to that read.
async fn fanout_lag(http: &reqwest::Client, url: &str, key: &str, reader: &str) -> Option<Duration> {
    let response = http
        .post(format!("{url}/post"))
        .header("X-App-Key", key)
        .json(&serde_json::json!({"type": "post", "content": "lag"}))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    let id = body["object_id"].as_i64()?;
    let acknowledged = Instant::now();
    while acknowledged.elapsed() < Duration::from_secs(10) {
        let feed: serde_json::Value =
            http.get(format!("{url}/feed/friends?limit=200")).header("X-App-Key", reader).send().await.ok()?.json().await.ok()?;
        let found =
            feed["friends_feed"].as_array()?.iter().any(|e| e["object_id"] == id && e["object_type"] == "post" && e["verb"] == "post");
        if found {
            return Some(acknowledged.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// redis-benchmark's pipelined ZADD and ZREVRANGE 0 49, ops/s.
fn redis_benchmark(redis_url: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let rest = redis_url.trim_start_matches("redis://");
    let hostport = rest.split('/').next().unwrap_or("127.0.0.1:6379");
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    let run = |args: &[&str]| -> anyhow::Result<f64> {
        let output = std::process::Command::new("redis-benchmark")
            .args(["-h", host, "-p", port, "-n", &n.to_string(), "-P", "16", "-c", "16", "-r", "100000", "--csv"])
            .args(args)
            .output()
            .map_err(|e| anyhow::anyhow!("redis-benchmark not runnable: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "test","rps",... then "ZADD ...","123456.79",...
        let line = text.lines().nth(1).ok_or_else(|| anyhow::anyhow!("redis-benchmark printed {text}"))?;
        let rps = line.split(',').nth(1).unwrap_or("0").trim_matches('"').parse()?;
        Ok(rps)
    };
    let zadd = run(&["ZADD", "bench:zset", "__rand_int__", "member:__rand_int__"])?;
    let zrevrange = run(&["ZREVRANGE", "bench:zset", "0", "49"])?;
    let _ = std::process::Command::new("redis-cli").args(["-h", host, "-p", port, "DEL", "bench:zset"]).output();
    Ok((zadd, zrevrange))
}

/// Activity-shaped rows COPYed into `activities` (actor id -1, removed afterwards),
/// rows/s: the database's own ingest speed, the writer's ceiling.
pub(crate) async fn raw_copy(db: &sqlx::PgPool, rows: usize) -> anyhow::Result<f64> {
    let now = chrono::Utc::now();
    let mut csv = String::with_capacity(rows * 160);
    for i in 0..rows {
        let time = feed_core::feed::format_time(now - chrono::Duration::microseconds(i as i64));
        csv.push_str(&format!("{time},{},-1,bench_copy,post,post,{i},,,\"{{\"\"content\"\":\"\"bench\"\"}}\"\n", uuid::Uuid::now_v7()));
    }
    let mut conn = db.acquire().await?;
    let t = Instant::now();
    let mut copy = conn
        .copy_in_raw(
            "COPY activities (time, event_id, actor_id, actor_name, verb, object_type, object_id, target_id, target_name, payload) FROM STDIN (FORMAT csv)",
        )
        .await?;
    copy.send(csv.as_bytes()).await?;
    copy.finish().await?;
    let rate = rows as f64 / t.elapsed().as_secs_f64();
    sqlx::query("DELETE FROM activities WHERE actor_id = -1").execute(&mut *conn).await?;
    Ok(rate)
}

/// Feed-event-sized records produced with acks=all to a scratch topic, records/s.
async fn raw_produce(common: &CommonConfig, rows: usize) -> anyhow::Result<f64> {
    let topic = format!("{}-bench-raw", common.feed_topic);
    feed_core::kafka::ensure_topics(&common.kafka, &[&topic], &common.topics).await?;
    let mut scratch = common.clone();
    scratch.feed_topic = topic;
    let seeder = Seeder::connect(&scratch).await?;
    let user = UserRef { id: 1, name: "bench".into() };
    let events: Vec<Event> = (0..rows as i64)
        .map(|id| {
            Event::new(
                EventType::Post,
                user.clone(),
                Some(ObjectRef { kind: ObjectKind::Post, id }),
                None,
                serde_json::json!({"content": "bench"}),
            )
        })
        .collect();
    let t = Instant::now();
    seeder.publish(events, &indicatif::ProgressBar::hidden()).await?;
    Ok(rows as f64 / t.elapsed().as_secs_f64())
}

/// The writer's own sink (rows and offsets in one transaction) on batches of growing
/// size, rows/s. Offsets go under a scratch consumer name, removed afterwards.
pub(crate) async fn writer_by_batch(
    db: &sqlx::PgPool,
    redis: &feed_core::redis_client::Redis,
    rows: usize,
) -> anyhow::Result<Vec<(usize, f64)>> {
    const SCRATCH: &str = "bench-writer-by-batch";
    let table = writer::feed::FeedTable;
    let scratch_keys = Keys::new(format!("{SCRATCH}:"));
    let mut writer = writer::sink::PgSink::new(db.clone(), SCRATCH, SCRATCH, table, redis.clone(), &scratch_keys);
    let user = UserRef { id: -2, name: "bench_batch".into() };
    let mut out = Vec::new();
    for batch in [1usize, 10, 100, 1000] {
        let total = rows.min(batch * 200).max(batch);
        let records: Vec<Record<Event>> = (0..total as i64)
            .map(|id| Record {
                partition: 0,
                offset: id,
                event: Event::new(
                    EventType::Post,
                    user.clone(),
                    Some(ObjectRef { kind: ObjectKind::Post, id: -id - 1 }),
                    None,
                    serde_json::json!({"content": "batch"}),
                ),
            })
            .collect();
        let t = Instant::now();
        for chunk in records.chunks(batch) {
            let next = chunk.last().map(|r| vec![(0, r.offset + 1)]).unwrap_or_default();
            writer.apply(chunk, &next).await?;
        }
        sqlx::query("DELETE FROM consumer_offsets WHERE consumer = $1").bind(SCRATCH).execute(db).await?;
        redis::cmd("DEL").arg(scratch_keys.progress(SCRATCH, SCRATCH)).query_async::<()>(&mut redis.clone()).await?;
        out.push((batch, total as f64 / t.elapsed().as_secs_f64()));
        sqlx::query("DELETE FROM activities WHERE actor_id = -2").execute(db).await?;
        sqlx::query("DELETE FROM objects WHERE owner_id = -2").execute(db).await?;
    }
    Ok(out)
}

impl Report {
    /// The report for people.
    pub fn markdown(&self, command: &str, machine: &str) -> String {
        let m = |x: &Measured| format!("{:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({} errors)", x.rate, x.p50_ms, x.p99_ms, x.errors);
        let mut s = String::new();
        s.push_str("# Feed pipeline benchmark\n\n");
        s.push_str(&format!("Command: `{command}`\n\n{machine}\n\n"));
        s.push_str("## Stages against their ceilings\n\n| stage | rate | ceiling | ratio | goal | met |\n|---|---|---|---|---|---|\n");
        for r in &self.ratios {
            s.push_str(&format!(
                "| {} | {:.0}/s | {:.0}/s ({}) | {:.2} | ≥ {:.2} | {} |\n",
                r.stage,
                r.rate,
                r.ceiling,
                r.ceiling_name,
                r.ratio,
                r.goal,
                if r.ratio >= r.goal { "yes" } else { "no" }
            ));
        }
        s.push_str("\n## Other goals\n\n| what | measured | goal | met |\n|---|---|---|---|\n");
        for b in &self.bounds {
            s.push_str(&format!(
                "| {} | {:.2} {} | ≤ {:.2} {} | {} |\n",
                b.what,
                b.value,
                b.unit,
                b.at_most,
                b.unit,
                if b.value <= b.at_most { "yes" } else { "no" }
            ));
        }
        s.push_str("\n## Latency\n\n");
        s.push_str(&format!("- trivial route `GET /livez`: {}\n", m(&self.trivial_route)));
        for (c, x) in &self.ingest {
            s.push_str(&format!("- `POST /post` (read-your-writes applied) at concurrency {c}: {}\n", m(x)));
        }
        s.push_str(&format!("- `POST /post` at half the best rate (open loop): {}\n", m(&self.ingest_at_half)));
        s.push_str(&format!("- fan-out lag, 200 → readable in a follower's feed, at half rate: {}\n", m(&self.fanout_lag_at_half)));
        s.push_str(&format!("- `GET /feed/friends`, 10 followees: {}\n", m(&self.feed_10)));
        s.push_str(&format!("- `GET /feed/friends`, {} followees: {}\n", self.big_followees, m(&self.feed_big)));
        s.push_str(&format!("- `GET /feed/friends`, 10 followees, at half its max rate: {}\n", m(&self.feed_10_at_half)));
        s.push_str(&format!("- `GET /feed/friends`, {} hot authors followed: {}\n", self.hot_authors, m(&self.feed_hot)));
        s.push_str(&format!("- `GET /feed/friends`, {} pushed authors followed: {}\n", self.hot_authors, m(&self.feed_pushed)));
        s.push_str(&format!(
            "- first page of a returning inactive reader following {}: {}\n",
            self.returning_followees,
            m(&self.returning)
        ));
        s.push_str(&format!(
            "- `POST /post` by an author with {} followers (hot): {}\n",
            self.big_author_followers,
            m(&self.big_author_posts)
        ));
        s.push_str("\n## Pushes by follower count (fan-out sink, no hot-author line)\n\n| followers | post applied in | longest Redis command |\n|---|---|---|\n");
        for p in &self.pushes {
            let longest =
                if p.longest_command_us == 0 { "< 0.2 ms".to_string() } else { format!("{:.2} ms", p.longest_command_us as f64 / 1000.0) };
            s.push_str(&format!("| {} | {:.1} ms | {longest} |\n", p.followers, p.millis));
        }
        if let Some(during) = self.pushes.iter().filter_map(|p| p.reads_during.as_ref()).next() {
            s.push_str(&format!(
                "\nOther users' feed reads (16 connections) alone: {}; during the largest push: {}\n",
                m(&self.reads_baseline),
                m(during)
            ));
        }
        s.push_str("\n## Throughput and ceilings\n\n");
        s.push_str(&format!(
            "- writer: {:.0} rows/s; fan-out: {:.0} feed entries/s (during the best ingest stage)\n",
            self.writer_rows_per_s, self.fanout_entries_per_s
        ));
        s.push_str(&format!("- redis-benchmark pipelined ZADD: {:.0}/s, ZREVRANGE 0 49: {:.0}/s\n", self.redis_zadd, self.redis_zrevrange));
        s.push_str(&format!(
            "- raw COPY into activities: {:.0} rows/s; raw produce (acks=all): {:.0} records/s\n",
            self.raw_copy_rows_per_s, self.raw_produce_per_s
        ));
        s.push_str("\n## Memory and idle cost\n\n");
        s.push_str(&format!(
            "- Redis, over the {} feed entries of the data set: {:.1} bytes per entry in the feeds themselves, {:.1} with every fan-out key (bodies, authored sets, followers, follow records) ({:.1} MiB in all)\n",
            self.memory.feed_entries,
            self.memory.feed_bytes_per_entry,
            self.memory.all_bytes_per_entry,
            self.memory.all_bytes as f64 / 1024.0 / 1024.0
        ));
        for (name, kib) in &self.peak_rss_kib {
            s.push_str(&format!("- peak RSS of `{name}`: {:.1} MiB\n", *kib as f64 / 1024.0));
        }
        for (name, cpu) in &self.idle_cpu {
            s.push_str(&format!("- idle CPU of `{name}`: {cpu:.2}% of a core\n"));
        }
        s.push_str("\n## Writer batch size\n\n| writer batch size | rows/s |\n|---|---|\n");
        for (n, rate) in &self.writer_by_batch {
            s.push_str(&format!("| {n} | {rate:.0} |\n"));
        }
        s
    }
}
