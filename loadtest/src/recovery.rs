//! Recovery after SIGKILL: how long a killed consumer takes, from its restart, until it
//! has applied everything published (lag 0).
//!
//! It runs its own writer and fan-out (the built binaries, as child processes) on a
//! scratch topic, groups and key prefix of the configured stores, publishes posts by an
//! author with followers at a steady rate, and per kill: lets the load run, SIGKILLs the
//! role mid-load, restarts it at once, stops the load, and times the restart until the
//! consumer's own stored offsets reach the topic's end.

use admin::{Role, Stores};
use e2e::ServiceProcess;
use feed_core::config::CommonConfig;
use feed_core::event::{Event, EventType, ObjectKind, ObjectRef, UserRef};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Clone, Debug)]
pub struct RecoveryConfig {
    /// The stores and broker to run on (names are replaced by scratch ones).
    pub common: CommonConfig,
    /// Kills per role.
    pub kills: usize,
    /// Posts per second while the load runs.
    pub rate: u64,
    /// Followers of the posting author (each post fans out to all).
    pub followers: i64,
    /// How long the load runs before each kill.
    pub before_kill: Duration,
}

/// The times of one role.
#[derive(Debug, Serialize)]
pub struct RoleRecovery {
    /// `writer` or `fanout`.
    pub role: &'static str,
    /// Restart → lag 0, per kill, in milliseconds.
    pub samples_ms: Vec<f64>,
    /// Median of the samples.
    pub median_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

/// Runs the benchmark.
pub async fn run(config: &RecoveryConfig) -> anyhow::Result<Vec<RoleRecovery>> {
    let common = crate::scratch(&config.common, "recovery");
    let db = feed_core::db::connect(&common.database_url, 2).await?;
    feed_core::db::migrate(&db).await?;
    common.ensure_topics().await?;
    let stores = Stores::connect(&common).await?;

    let mut env: Vec<(String, String)> = common.to_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    env.push(("METRICS_ADDR".into(), "127.0.0.1:0".into()));
    env.push(("RUST_LOG".into(), "warn,feed_events=off".into()));
    let mut writer = ServiceProcess::start("writer", env.clone());
    let mut fanout = ServiceProcess::start("fanout", env);

    let load = Load::start(&common, config.rate, config.followers).await?;
    let mut results = Vec::new();
    for (role, name) in [(Role::Writer, common.writer_group.clone()), (Role::Fanout, common.fanout_group.clone())] {
        let process = if role == Role::Writer { &mut writer } else { &mut fanout };
        let mut samples = Vec::with_capacity(config.kills);
        for kill in 0..config.kills {
            load.resume();
            tokio::time::sleep(config.before_kill).await;
            process.kill();
            process.restart();
            let restarted = Instant::now();
            load.pause().await;
            let high = feed_core::kafka::fetch_high_watermarks(&common.kafka, &common.feed_topic, Duration::from_secs(10)).await?;
            loop {
                let applied = stores.applied(role, &name, &common.feed_topic).await?;
                if high.iter().all(|(p, h)| applied.get(p).copied().unwrap_or(0) >= *h) {
                    break;
                }
                anyhow::ensure!(restarted.elapsed() < Duration::from_secs(120), "{name} did not catch up; see {}", process.log().display());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let ms = restarted.elapsed().as_secs_f64() * 1000.0;
            eprintln!("{name}: kill {} of {}: lag 0 after {ms:.0} ms", kill + 1, config.kills);
            samples.push(ms);
        }
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let role = if role == Role::Writer { "writer" } else { "fanout" };
        results.push(RoleRecovery { role, median_ms: sorted[sorted.len() / 2], max_ms: sorted[sorted.len() - 1], samples_ms: samples });
    }
    drop((writer, fanout));
    Ok(results)
}

/// Posts by one author at a steady rate, pausable.
struct Load {
    running: Arc<AtomicBool>,
    in_flight: Arc<AtomicI64>,
}

impl Load {
    /// Publishes the followers' follows, then starts the (paused) load.
    async fn start(common: &CommonConfig, rate: u64, followers: i64) -> anyhow::Result<Self> {
        let producer = feed_core::kafka::producer(&common.kafka, Duration::from_secs(30))?;
        let topic = common.feed_topic.clone();
        let author = UserRef { id: 1, name: "author".into() };
        for follower in 2..followers + 2 {
            let follow = Event::new(
                EventType::Follow,
                UserRef { id: follower, name: format!("f{follower}") },
                None,
                Some(author.clone()),
                serde_json::Value::Null,
            );
            feed_core::kafka::send(&producer, &topic, &follow, Duration::from_secs(30)).await?;
        }
        let (running, in_flight) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicI64::new(0)));
        let (r, f) = (running.clone(), in_flight.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
            let mut object = 0;
            loop {
                interval.tick().await;
                if !r.load(Ordering::SeqCst) {
                    continue;
                }
                object += 1;
                let post = Event::new(
                    EventType::Post,
                    author.clone(),
                    Some(ObjectRef { kind: ObjectKind::Post, id: object }),
                    None,
                    serde_json::json!({"content": "recovery"}),
                );
                f.fetch_add(1, Ordering::SeqCst);
                let (producer, topic, f) = (producer.clone(), topic.clone(), f.clone());
                tokio::spawn(async move {
                    if let Err(error) = feed_core::kafka::send(&producer, &topic, &post, Duration::from_secs(30)).await {
                        eprintln!("publish failed: {error}");
                    }
                    f.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(Self { running, in_flight })
    }

    fn resume(&self) {
        self.running.store(true, Ordering::SeqCst);
    }

    /// Stops publishing and waits for what is in flight.
    async fn pause(&self) {
        self.running.store(false, Ordering::SeqCst);
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// The results as a Markdown section.
pub fn markdown(results: &[RoleRecovery], config: &RecoveryConfig, command: &str) -> String {
    let mut s = String::from("# Recovery after SIGKILL\n\n");
    s.push_str(&format!("Command: `{command}`\n\n"));
    s.push_str(&format!(
        "Load: posts by one author with {} followers at {}/s, running {:?} before each kill; the killed process is restarted at once and the load stopped; time = restart → the consumer's stored offsets reach the topic's end (lag 0).\n\n",
        config.followers, config.rate, config.before_kill
    ));
    s.push_str("| role | kills | median | max |\n|---|---|---|---|\n");
    for r in results {
        s.push_str(&format!("| {} | {} | {:.0} ms | {:.0} ms |\n", r.role, r.samples_ms.len(), r.median_ms, r.max_ms));
    }
    s
}
