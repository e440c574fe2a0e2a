//! The stage-by-stage benchmark: every stage of the pipeline measured against the best
//! the same machine does for the same work, in one run.

use crate::load::{closed_loop, open_loop, open_loop_timed, Measured};
use crate::seed::{bar, key_for, Seeder};
use feed_core::config::CommonConfig;
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
    /// Follower counts for the fan-out cost curve (1, 100, 10,000, 100,000 in a full run).
    pub fanout_sizes: Vec<usize>,
    /// Rows per ceiling / batch-size measurement.
    pub rows: usize,
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

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Trivial route (`GET /livez`) under the same load generator.
    pub trivial_route: Measured,
    /// Highest sustained `POST /post` rate (with broker acknowledgement and
    /// read-your-writes), per concurrency level tried.
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
    /// redis-benchmark pipelined ZADD, ops/s.
    pub redis_zadd: f64,
    /// redis-benchmark pipelined ZREVRANGE 0 49, ops/s.
    pub redis_zrevrange: f64,
    /// Raw COPY of activity rows into `activities`, rows/s.
    pub raw_copy_rows_per_s: f64,
    /// Raw produce of feed-sized records with acks=all, records/s.
    pub raw_produce_per_s: f64,
    /// Redis bytes per feed entry (MEMORY USAGE / ZCARD of full feeds).
    pub redis_bytes_per_entry: f64,
    /// Peak RSS (VmHWM) per service process found on this machine, KiB.
    pub peak_rss_kib: Vec<(String, u64)>,
    /// Fan-out time per post (POST latency, which waits for the fan-out) by follower count.
    pub fanout_cost_ms: Vec<(usize, f64)>,
    /// Writer rows/s by batch size.
    pub writer_by_batch: Vec<(usize, f64)>,
    /// Every stage against its ceiling.
    pub ratios: Vec<Ratio>,
}

const AUTHORS: usize = 10;

async fn ok(response: reqwest::Result<reqwest::Response>) -> bool {
    match response {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// Runs the whole benchmark against a running stack.
pub async fn run(config: &BenchConfig) -> anyhow::Result<Report> {
    let common = &config.common;
    let seeder = Seeder::connect(common).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
    let url = config.api_url.clone();
    let keys = Keys::new(&common.redis_key_prefix);
    let mut redis = common.redis().await?;

    // Users: authors, the small and big readers, and the accounts the big reader follows
    // (which also follow every author, so each post fans out to them all).
    let quiet = indicatif::ProgressBar::hidden();
    let authors: Vec<String> = (0..AUTHORS).map(|i| format!("bench_author{i}")).collect();
    let others: Vec<String> = (0..config.big_followees).map(|i| format!("bench_user{i}")).collect();
    let readers = vec!["bench_reader10".to_string(), "bench_reader_big".to_string()];
    let authors = seeder.ensure_users(&authors, &quiet).await?;
    let others = seeder.ensure_users(&others, &quiet).await?;
    let readers = seeder.ensure_users(&readers, &quiet).await?;
    let follow = |a: &UserRef, b: &UserRef| Event::new(EventType::Follow, a.clone(), None, Some(b.clone()), serde_json::Value::Null);
    let mut events: Vec<Event> = authors.iter().map(|a| follow(&readers[0], a)).collect();
    events.extend(others.iter().map(|o| follow(&readers[1], o)));
    for o in others.iter().take(1000) {
        events.extend(authors.iter().map(|a| follow(o, a)));
    }
    // Content: each followed account has posts, so both readers' feeds are full.
    let posts_per_author = 80;
    let ids = seeder.object_ids("post_ids", AUTHORS * posts_per_author + others.len()).await?;
    let mut ids = ids.into_iter();
    let post = |u: &UserRef, id: i64| {
        Event::new(
            EventType::Post,
            u.clone(),
            Some(ObjectRef { kind: ObjectKind::Post, id }),
            None,
            serde_json::json!({"content": "bench"}),
        )
    };
    for a in &authors {
        for _ in 0..posts_per_author {
            events.push(post(a, ids.next().expect("reserved")));
        }
    }
    for o in &others {
        events.push(post(o, ids.next().expect("reserved")));
    }
    let progress = bar(events.len() as u64, "setup");
    seeder.publish(events, &progress).await?;
    progress.finish();
    seeder.wait_applied(common, &common.writer_group, "writer").await?;
    seeder.wait_applied(common, &common.fanout_group, "fan-out").await?;

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

    // Ingest, with the writer's and the fan-out's throughput alongside.
    let author_keys: Vec<String> = authors.iter().map(|a| key_for(&a.name)).collect();
    let post_request = {
        let (http, url, keys) = (http.clone(), url.clone(), author_keys.clone());
        move |i: u64| {
            let (http, url, key) = (http.clone(), url.clone(), keys[i as usize % keys.len()].clone());
            async move {
                ok(http
                    .post(format!("{url}/post"))
                    .header("X-App-Key", key)
                    .json(&serde_json::json!({"type": "post", "content": "bench"}))
                    .send()
                    .await)
                .await
            }
        }
    };
    let followers_per_author: f64 = {
        let mut total = 0i64;
        for a in &authors {
            total += redis::cmd("SCARD").arg(keys.followers(a.id)).query_async::<i64>(&mut redis).await?;
        }
        total as f64 / AUTHORS as f64
    };
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
            fanout_entries_per_s = measured.ok as f64 * (followers_per_author + 1.0) / seconds;
        }
        ingest.push((concurrency, measured));
    }

    // At half the best rate: POST latency, and the lag until a follower can read it.
    let half = (best / 2.0).max(1.0);
    let ingest_at_half = open_loop_timed(half, stage, post_request.clone()).await;
    let reader10_key = key_for(&readers[0].name);
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
    let feed_big = closed_loop(top_concurrency, stage, read(key_for(&readers[1].name))).await;
    let feed_10_at_half = open_loop_timed((feed_10.rate / 2.0).max(1.0), stage, read(reader10_key.clone())).await;

    // Ceilings of the stores and the broker.
    let (redis_zadd, redis_zrevrange) = redis_benchmark(&common.redis_url, config.rows.max(10_000))?;
    let raw_copy_rows_per_s = raw_copy(&seeder, config.rows).await?;
    let raw_produce_per_s = raw_produce(common, config.rows).await?;

    // Memory.
    let feed_key = keys.friends(readers[0].id);
    let bytes: i64 = redis::cmd("MEMORY").arg("USAGE").arg(&feed_key).query_async(&mut redis).await.unwrap_or(0);
    let entries: i64 = redis::cmd("ZCARD").arg(&feed_key).query_async(&mut redis).await?;
    let redis_bytes_per_entry = if entries > 0 { bytes as f64 / entries as f64 } else { 0.0 };
    let peak_rss_kib = peak_rss(&["api", "writer", "fanout"]);

    // How cost grows.
    let fanout_cost_ms = fanout_cost(config, &seeder, &http, &mut redis, &keys).await?;
    let writer_by_batch = writer_by_batch(&seeder, &redis, config.rows).await?;

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
        ratio("acknowledged ingest", best, trivial_route.rate, "trivial route", 0.25),
        ratio("fan-out entries", fanout_entries_per_s, redis_zadd, "pipelined ZADD", 0.5),
        // During ingest the writer only sees what the API admits, so its own batch
        // handler driven flat out (largest batch) is what compares with COPY.
        ratio("writer rows (batches of 1000)", writer_by_batch.last().map_or(0.0, |(_, rate)| *rate), raw_copy_rows_per_s, "raw COPY", 0.5),
    ];
    Ok(Report {
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
        redis_zadd,
        redis_zrevrange,
        raw_copy_rows_per_s,
        raw_produce_per_s,
        redis_bytes_per_entry,
        peak_rss_kib,
        fanout_cost_ms,
        writer_by_batch,
        ratios,
    })
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

/// Activity-shaped rows COPYed into `activities` (actor id -1, removed afterwards).
async fn raw_copy(seeder: &Seeder, rows: usize) -> anyhow::Result<f64> {
    let now = chrono::Utc::now();
    let mut csv = String::with_capacity(rows * 160);
    for i in 0..rows {
        let time = feed_core::feed::format_time(now - chrono::Duration::microseconds(i as i64));
        csv.push_str(&format!("{time},{},-1,bench_copy,post,post,{i},,,\"{{\"\"content\"\":\"\"bench\"\"}}\"\n", uuid::Uuid::now_v7()));
    }
    let mut conn = seeder.db.acquire().await?;
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
    feed_core::kafka::ensure_topics(&common.kafka_brokers, &[&topic], 3, common.topic_replication).await?;
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

/// VmHWM of the processes whose command name is one of `names`.
fn peak_rss(names: &[&str]) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let name = status.lines().find_map(|l| l.strip_prefix("Name:")).map(str::trim).unwrap_or_default();
        if names.contains(&name) {
            found.push((name.to_string(), crate::status_kib(&status, "VmHWM").unwrap_or(0)));
        }
    }
    found
}

/// POST latency (which includes the fan-out, through read-your-writes) for authors with
/// each follower count; followers are synthetic ids added straight to the set, and their
/// feeds are deleted afterwards.
async fn fanout_cost(
    config: &BenchConfig,
    seeder: &Seeder,
    http: &reqwest::Client,
    redis: &mut feed_core::redis_client::Redis,
    keys: &Keys,
) -> anyhow::Result<Vec<(usize, f64)>> {
    let mut out = Vec::new();
    for &followers in &config.fanout_sizes {
        let name = format!("bench_fan{followers}");
        let author = seeder.ensure_users(std::slice::from_ref(&name), &indicatif::ProgressBar::hidden()).await?.remove(0);
        seeder.wait_applied(&config.common, &config.common.writer_group, "writer").await?;
        let base = 1_000_000_000i64;
        for chunk in (0..followers as i64).collect::<Vec<_>>().chunks(10_000) {
            let ids: Vec<i64> = chunk.iter().map(|i| base + i).collect();
            redis::cmd("SADD").arg(keys.followers(author.id)).arg(ids).query_async::<()>(redis).await?;
        }
        let mut samples = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let response = http
                .post(format!("{}/post", config.api_url))
                .header("X-App-Key", key_for(&name))
                .json(&serde_json::json!({"type": "post", "content": "fan"}))
                .send()
                .await?;
            anyhow::ensure!(response.status().is_success(), "post failed: {}", response.status());
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        samples.sort_by(f64::total_cmp);
        out.push((followers, samples[samples.len() / 2]));
        redis::cmd("DEL").arg(keys.followers(author.id)).query_async::<()>(redis).await?;
        for chunk in (0..followers as i64).collect::<Vec<_>>().chunks(10_000) {
            let feeds: Vec<String> = chunk.iter().map(|i| keys.friends(base + i)).collect();
            redis::cmd("DEL").arg(feeds).query_async::<()>(redis).await?;
        }
    }
    Ok(out)
}

/// The writer's own sink (rows and offsets in one transaction) on batches of growing
/// size, rows/s. Offsets go under a scratch consumer name, removed afterwards.
async fn writer_by_batch(seeder: &Seeder, redis: &feed_core::redis_client::Redis, rows: usize) -> anyhow::Result<Vec<(usize, f64)>> {
    const SCRATCH: &str = "bench-writer-by-batch";
    let table = writer::feed::FeedTable;
    let scratch_keys = Keys::new(format!("{SCRATCH}:"));
    let mut writer = writer::sink::PgSink::new(seeder.db.clone(), SCRATCH, SCRATCH, table, redis.clone(), &scratch_keys);
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
        sqlx::query("DELETE FROM consumer_offsets WHERE consumer = $1").bind(SCRATCH).execute(&seeder.db).await?;
        redis::cmd("DEL").arg(scratch_keys.progress(SCRATCH, SCRATCH)).query_async::<()>(&mut redis.clone()).await?;
        out.push((batch, total as f64 / t.elapsed().as_secs_f64()));
        sqlx::query("DELETE FROM activities WHERE actor_id = -2").execute(&seeder.db).await?;
        sqlx::query("DELETE FROM objects WHERE owner_id = -2").execute(&seeder.db).await?;
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
        s.push_str("\n## Latency\n\n");
        s.push_str(&format!("- trivial route `GET /livez`: {}\n", m(&self.trivial_route)));
        for (c, x) in &self.ingest {
            s.push_str(&format!("- `POST /post` at concurrency {c}: {}\n", m(x)));
        }
        s.push_str(&format!("- `POST /post` at half the best rate (open loop): {}\n", m(&self.ingest_at_half)));
        s.push_str(&format!("- fan-out lag, 200 → readable in a follower's feed, at half rate: {}\n", m(&self.fanout_lag_at_half)));
        s.push_str(&format!("- `GET /feed/friends`, 10 followees: {}\n", m(&self.feed_10)));
        s.push_str(&format!("- `GET /feed/friends`, {} followees: {}\n", self.big_followees, m(&self.feed_big)));
        s.push_str(&format!("- `GET /feed/friends`, 10 followees, at half its max rate: {}\n", m(&self.feed_10_at_half)));
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
        s.push_str("\n## Memory\n\n");
        s.push_str(&format!("- Redis: {:.0} bytes per feed entry\n", self.redis_bytes_per_entry));
        for (name, kib) in &self.peak_rss_kib {
            s.push_str(&format!("- peak RSS of `{name}`: {:.1} MiB\n", *kib as f64 / 1024.0));
        }
        s.push_str("\n## How cost grows\n\n| followers | POST latency incl. fan-out (median of 5) |\n|---|---|\n");
        for (n, ms) in &self.fanout_cost_ms {
            s.push_str(&format!("| {n} | {ms:.1} ms |\n"));
        }
        s.push_str("\n| writer batch size | rows/s |\n|---|---|\n");
        for (n, rate) in &self.writer_by_batch {
            s.push_str(&format!("| {n} | {rate:.0} |\n"));
        }
        s
    }
}
