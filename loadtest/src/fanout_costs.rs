//! What the fan-out costs Redis, measured on the fan-out's own sink: bytes per feed
//! entry, the time and the longest single command of one post by authors with more and
//! more followers (Redis's SLOWLOG), and what it does to other readers meanwhile.

use crate::load::Measured;
use fanout::rebuild::Rebuilder;
use fanout::FeedSink;
use feed_core::config::{CommonConfig, FeedSettings};
use feed_core::consumer::{Record, Sink};
use feed_core::event::{Event, EventType, ObjectKind, ObjectRef, UserRef};
use feed_core::keys::Keys;
use feed_core::redis_client::Redis;
use serde::Serialize;
use std::future::Future;
use std::time::{Duration, Instant};

/// Redis memory of the fan-out's keys.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Memory {
    /// Entries in all friends feeds.
    pub feed_entries: u64,
    /// Bytes of the friends feeds (the sorted sets of refs) per entry.
    pub feed_bytes_per_entry: f64,
    /// Bytes of every fan-out key (feeds, authored sets, bodies, followers, follow
    /// records, metas, object registrations) per feed entry.
    pub all_bytes_per_entry: f64,
    /// Total bytes of every fan-out key.
    pub all_bytes: u64,
}

/// `MEMORY USAGE` (exact) of every key the fan-out keeps under `keys`' prefix.
pub async fn memory(redis: &Redis, prefix: &str) -> anyhow::Result<Memory> {
    let kinds = ["feed", "authored", "bodies", "followers", "follower-versions", "following", "hot-following", "reader", "author"];
    let mut out = Memory::default();
    let mut feed_bytes = 0u64;
    for kind in kinds
        .iter()
        .map(|k| (*k, format!("{prefix}{k}:{{u*")))
        .chain(["object-entries", "deleted"].into_iter().map(|k| (k, format!("{prefix}{k}:{{o*"))))
    {
        let (kind, pattern) = kind;
        let mut cursor: u64 = 0;
        loop {
            let (next, found): (u64, Vec<String>) =
                redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).query_async(&mut redis.clone()).await?;
            let mut pipe = redis::pipe();
            for key in &found {
                pipe.cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0);
                if kind == "feed" {
                    pipe.zcard(key);
                }
            }
            let answers: Vec<u64> = if found.is_empty() { Vec::new() } else { pipe.query_async(&mut redis.clone()).await? };
            if kind == "feed" {
                for pair in answers.chunks(2) {
                    feed_bytes += pair[0];
                    out.feed_entries += pair.get(1).copied().unwrap_or(0);
                }
            }
            let step = if kind == "feed" { 2 } else { 1 };
            out.all_bytes += answers.iter().step_by(step).sum::<u64>();
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    if out.feed_entries > 0 {
        out.feed_bytes_per_entry = feed_bytes as f64 / out.feed_entries as f64;
        out.all_bytes_per_entry = out.all_bytes as f64 / out.feed_entries as f64;
    }
    Ok(out)
}

/// One post by an author with `followers` followers, all pushed (no hot-author line).
#[derive(Clone, Debug, Serialize)]
pub struct PushCost {
    /// Followers of the author.
    pub followers: usize,
    /// How long the fan-out's sink took for the post, milliseconds.
    pub millis: f64,
    /// The longest single Redis command meanwhile (SLOWLOG), microseconds; 0 when none
    /// reached the log's threshold.
    pub longest_command_us: u64,
    /// Feed reads of another user during the push (when measured).
    pub reads_during: Option<Measured>,
}

/// What a SLOWLOG entry logs at least, microseconds.
const SLOWLOG_THRESHOLD_US: u64 = 200;

/// Pushes one post by authors with each of `sizes` followers through a fan-out sink of
/// its own (scratch keys, no hot-author line), measuring its time and the longest Redis
/// command (SLOWLOG); for the largest, `reads` runs meanwhile (it gets the push's
/// duration and returns what it measured).
pub async fn pushes<F, Fut>(common: &CommonConfig, feed: FeedSettings, sizes: &[usize], reads: F) -> anyhow::Result<Vec<PushCost>>
where
    F: Fn(std::sync::Arc<std::sync::atomic::AtomicBool>) -> Fut,
    Fut: Future<Output = Measured> + Send + 'static,
{
    let scratch = crate::scratch(common, "bench-push");
    let redis = scratch.redis().await?;
    let keys = Keys::new(&scratch.redis_key_prefix);
    redis::cmd("SET").arg(keys.generation()).arg("bench").query_async::<()>(&mut redis.clone()).await?;
    let settings = FeedSettings { hot_followers: u64::MAX, ..feed };
    let db = sqlx::postgres::PgPoolOptions::new().connect_lazy(&scratch.database_url)?;
    let rebuilder = Rebuilder::new(db, redis.clone(), &scratch, settings);
    let mut sink = FeedSink::new(redis.clone(), keys.clone(), settings, keys.progress("bench", "bench"), rebuilder);
    sink.resume_from(&[0, 1]).await?;
    let mut offsets = [0i64; 2];
    fn record(offsets: &mut [i64; 2], partition: usize, event: Event) -> Record<Event> {
        offsets[partition] += 1;
        Record { partition: partition as i32, offset: offsets[partition] - 1, event }
    }
    let user = |id: i64| UserRef { id, name: format!("push{id}") };
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let mut out = Vec::new();
    for (n, &followers) in sizes.iter().enumerate() {
        let author = 3_000_000_000 + n as i64;
        let base = 3_100_000_000 + 1_000_000 * n as i64;
        for chunk in (0..followers as i64).collect::<Vec<_>>().chunks(1000) {
            let records: Vec<Record<Event>> = chunk
                .iter()
                .map(|i| {
                    record(
                        &mut offsets,
                        0,
                        Event::new(EventType::Follow, user(base + i), None, Some(user(author)), serde_json::Value::Null),
                    )
                })
                .collect();
            let next = [(0, offsets[0])];
            sink.apply(&records, &next).await?;
        }
        let post = Event::new(
            EventType::Post,
            user(author),
            Some(ObjectRef { kind: ObjectKind::Post, id: -(n as i64) - 1 }),
            None,
            serde_json::json!({"content": "push"}),
        );
        let records = [record(&mut offsets, 1, post)];
        let next = [(1, offsets[1])];
        let mut conn = redis.clone();
        let old: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg("slowlog-log-slower-than").query_async(&mut conn).await.unwrap_or_default();
        redis::cmd("CONFIG").arg("SET").arg("slowlog-log-slower-than").arg(SLOWLOG_THRESHOLD_US).query_async::<()>(&mut conn).await?;
        redis::cmd("SLOWLOG").arg("RESET").query_async::<()>(&mut conn).await?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reading = (followers == largest).then(|| tokio::spawn(reads(stop.clone())));
        let started = Instant::now();
        sink.apply(&records, &next).await?;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads_during = match reading {
            Some(task) => Some(task.await?),
            None => None,
        };
        let log: Vec<(i64, i64, u64, redis::Value)> =
            redis::cmd("SLOWLOG").arg("GET").arg(1000).query_async(&mut conn).await.unwrap_or_default();
        let longest_command_us = log.iter().map(|(_, _, micros, _)| *micros).max().unwrap_or(0);
        if let Some(old) = old.get(1) {
            redis::cmd("CONFIG").arg("SET").arg("slowlog-log-slower-than").arg(old).query_async::<()>(&mut conn).await?;
        }
        out.push(PushCost { followers, millis, longest_command_us, reads_during });
    }
    delete_prefix(&redis, &scratch.redis_key_prefix).await?;
    Ok(out)
}

/// Deletes every key under `prefix`.
pub async fn delete_prefix(redis: &Redis, prefix: &str) -> anyhow::Result<()> {
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut redis.clone())
            .await?;
        for key in found {
            redis::cmd("UNLINK").arg(key).query_async::<()>(&mut redis.clone()).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// CPU of the processes named `names` over `window`, in % of one core each (summed per
/// name), from `/proc/<pid>/stat`.
pub async fn cpu(names: &[&str], window: Duration) -> Vec<(String, f64)> {
    fn ticks(names: &[&str]) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else { return out };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(comm) = std::fs::read_to_string(path.join("comm")) else { continue };
            let comm = comm.trim();
            if !names.contains(&comm) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(path.join("stat")) else { continue };
            let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
            let used = fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
                + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            out.push((format!("{comm}/{}", entry.file_name().to_string_lossy()), used));
        }
        out
    }
    let before = ticks(names);
    tokio::time::sleep(window).await;
    let after = ticks(names);
    let hz = 100.0; // USER_HZ on Linux
    let mut per_name: Vec<(String, f64)> = Vec::new();
    for (process, used) in after {
        let Some((_, was)) = before.iter().find(|(p, _)| *p == process) else { continue };
        let name = process.split('/').next().unwrap_or_default().to_string();
        let share = (used.saturating_sub(*was)) as f64 / hz / window.as_secs_f64() * 100.0;
        match per_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += share,
            None => per_name.push((name, share)),
        }
    }
    per_name.sort_by(|a, b| a.0.cmp(&b.0));
    per_name
}
