//! Behaviour under overload: many concurrent writers, then a storm of connections that
//! never finish their headers.
//!
//! It runs its own writer, fan-out and API (the built binaries, as child processes) on
//! scratch topics, groups and key prefix of the configured stores, once per API
//! configuration given, and for each measures:
//! - writers: `writers` clients posting back to back for a while (waiting out
//!   `Retry-After` when told to) — how many answers were 200, 429, 503 or something
//!   else, and their latency;
//! - storm: `connections` connections that send half a request and wait — how many the
//!   server closed, and the API's memory (RSS) before, at the peak, and after they are
//!   gone.

use e2e::ServiceProcess;
use feed_core::config::CommonConfig;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to measure.
#[derive(Clone, Debug)]
pub struct OverloadConfig {
    /// The stores and broker to run on (names are replaced by scratch ones).
    pub common: CommonConfig,
    /// Concurrent writers.
    pub writers: usize,
    /// How long the writers post.
    pub duration: Duration,
    /// Connections of the storm.
    pub connections: usize,
    /// The API configurations to compare: a label and the API's extra environment.
    pub variants: Vec<(String, Vec<(String, String)>)>,
}

/// The writers' answers.
#[derive(Debug, Default, Serialize)]
pub struct Writers {
    /// 200 answers.
    pub ok: u64,
    /// 429 answers (rate limited).
    pub limited: u64,
    /// 503 answers (shed, or past the write deadline).
    pub shed: u64,
    /// Any other status.
    pub other: u64,
    /// No answer (connection error or the client's 60 s timeout).
    pub failed: u64,
    /// 200s per second.
    pub ok_per_second: f64,
    /// Latency of every answer, median and 99th percentile, milliseconds.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// Latency of the 429 and 503 answers only, 99th percentile, milliseconds.
    pub refused_p99_ms: f64,
}

/// The storm and the API's memory.
#[derive(Debug, Default, Serialize)]
pub struct Storm {
    /// Connections opened.
    pub opened: usize,
    /// Of those, closed by the server (the rest were still open after 60 s).
    pub closed_by_server: usize,
    /// Seconds until the last was closed.
    pub seconds: f64,
    /// The API's RSS before the writers, after them, at the storm's peak, and 10 s
    /// after the storm, MiB.
    pub rss_start_mib: f64,
    /// See `rss_start_mib`.
    pub rss_after_writers_mib: f64,
    /// See `rss_start_mib`.
    pub rss_peak_mib: f64,
    /// See `rss_start_mib`.
    pub rss_end_mib: f64,
}

/// One API configuration's results.
#[derive(Debug, Serialize)]
pub struct Variant {
    /// Its label.
    pub label: String,
    /// Its extra environment.
    pub env: Vec<(String, String)>,
    /// See [`Writers`].
    pub writers: Writers,
    /// See [`Storm`].
    pub storm: Storm,
}

/// Runs the benchmark.
pub async fn run(config: &OverloadConfig) -> anyhow::Result<Vec<Variant>> {
    let stack = ScratchStack::start(&config.common, "overload").await?;
    let mut results = Vec::new();
    for (label, extra) in &config.variants {
        let (api, url, port) = stack.start_api(extra)?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(config.writers).build()?;
        ready(&http, &url, &api).await?;
        let pid = api.pid().ok_or_else(|| anyhow::anyhow!("the API is not running"))?;
        let rss_start_mib = crate::rss_mib(pid);
        eprintln!("{label}: {} writers for {:?}", config.writers, config.duration);
        let writers = writers(&http, &url, config.writers, config.duration).await;
        drop(http);
        let rss_after_writers_mib = crate::rss_mib(pid);
        eprintln!("{label}: storm of {} connections", config.connections);
        let mut storm = storm(port, pid, config.connections).await;
        storm.rss_start_mib = rss_start_mib;
        storm.rss_after_writers_mib = rss_after_writers_mib;
        results.push(Variant { label: label.clone(), env: extra.clone(), writers, storm });
    }
    Ok(results)
}

/// A writer and a fan-out (the built binaries, as child processes) on scratch topics,
/// groups and key prefix of the configured stores, and the environment to start APIs
/// beside them. Nothing scrapes their metrics.
pub(crate) struct ScratchStack {
    env: Vec<(String, String)>,
    /// The writer process.
    pub writer: ServiceProcess,
    /// The fan-out process.
    pub fanout: ServiceProcess,
}

impl ScratchStack {
    /// Migrates, creates the scratch topics and starts the consumers.
    pub async fn start(common: &CommonConfig, label: &str) -> anyhow::Result<Self> {
        let common = crate::scratch(common, label);
        let db = feed_core::db::connect(&common.database_url, 2).await?;
        feed_core::db::migrate(&db).await?;
        common.ensure_topics().await?;
        let mut env: Vec<(String, String)> = common.to_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        env.push(("METRICS_ADDR".into(), "127.0.0.1:0".into()));
        env.push(("RUST_LOG".into(), "error,feed_events=off".into()));
        let writer = ServiceProcess::start("writer", env.clone());
        let fanout = ServiceProcess::start("fanout", env.clone());
        Ok(Self { env, writer, fanout })
    }

    /// Starts an API with the demo users and `extra` environment on a free port: the
    /// process, its URL and port.
    pub fn start_api(&self, extra: &[(String, String)]) -> anyhow::Result<(ServiceProcess, String, u16)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut env = self.env.clone();
        env.push(("LISTEN_ADDR".into(), format!("127.0.0.1:{port}")));
        env.push(("DEMO_USERS".into(), "true".into()));
        env.extend(extra.iter().cloned());
        Ok((ServiceProcess::start("api", env), format!("http://127.0.0.1:{port}"), port))
    }
}

/// Waits until the API answers and its demo users exist.
pub(crate) async fn ready(http: &reqwest::Client, url: &str, api: &ServiceProcess) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let me = http.get(format!("{url}/me")).header("X-App-Key", "abc123").send().await;
        if me.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "the API did not start; see {}", api.log().display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `count` clients posting back to back for `duration`, as the demo users in turn.
async fn writers(http: &reqwest::Client, url: &str, count: usize, duration: Duration) -> Writers {
    let histogram = crate::load::histogram;
    let start = Instant::now();
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let (http, url) = (http.clone(), format!("{url}/post"));
            let key = ["abc123", "abc124", "abc125"][i % 3];
            tokio::spawn(async move {
                let (mut all, mut refused, mut counts) = (histogram(), histogram(), Writers::default());
                let mut n = 0;
                while start.elapsed() < duration {
                    n += 1;
                    let body = serde_json::json!({"type": "post", "content": format!("writer {i} post {n}")});
                    let sent = Instant::now();
                    let answer = http.post(&url).header("X-App-Key", key).json(&body).send().await;
                    let micros = sent.elapsed().as_micros().max(1) as u64;
                    let Ok(answer) = answer else {
                        counts.failed += 1;
                        continue;
                    };
                    let status = answer.status().as_u16();
                    // A well-behaved client waits as long as 429 and 503 tell it to.
                    let retry_after = answer
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    let _ = answer.bytes().await;
                    let _ = all.record(micros);
                    match status {
                        200 => counts.ok += 1,
                        429 => counts.limited += 1,
                        503 => counts.shed += 1,
                        _ => counts.other += 1,
                    }
                    if matches!(status, 429 | 503) {
                        let _ = refused.record(micros);
                        if let Some(seconds) = retry_after {
                            tokio::time::sleep(Duration::from_secs(seconds).min(duration.saturating_sub(start.elapsed()))).await;
                        }
                    }
                }
                (all, refused, counts)
            })
        })
        .collect();
    let (mut all, mut refused, mut total) = (histogram(), histogram(), Writers::default());
    for task in tasks {
        let Ok((a, r, counts)) = task.await else { continue };
        let _ = all.add(a);
        let _ = refused.add(r);
        total.ok += counts.ok;
        total.limited += counts.limited;
        total.shed += counts.shed;
        total.other += counts.other;
        total.failed += counts.failed;
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    total.ok_per_second = total.ok as f64 / start.elapsed().as_secs_f64();
    total.p50_ms = ms(&all, 0.5);
    total.p99_ms = ms(&all, 0.99);
    total.refused_p99_ms = ms(&refused, 0.99);
    total
}

/// Opens `count` connections that each send half a request's headers and wait for the
/// server to close them; samples the API's RSS meanwhile.
async fn storm(port: u16, pid: u32, count: usize) -> Storm {
    let start = Instant::now();
    let connections: Vec<_> = (0..count)
        .map(|_| {
            tokio::spawn(async move {
                let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
                let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(30), connect).await else { return (false, false) };
                if stream.write_all(b"POST /post HTTP/1.1\r\nHost: x\r\nX-App-Key: abc123\r\n").await.is_err() {
                    return (true, true);
                }
                let mut buffer = [0u8; 1024];
                let closed = tokio::time::timeout(Duration::from_secs(60), async {
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                (true, closed.is_ok())
            })
        })
        .collect();
    let mut peak: f64 = 0.0;
    let sampler = async {
        loop {
            peak = peak.max(crate::rss_mib(pid));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let outcomes = tokio::select! {
        outcomes = futures::future::join_all(connections) => outcomes,
        _ = sampler => unreachable!("the sampler never ends"),
    };
    let seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let outcomes: Vec<(bool, bool)> = outcomes.into_iter().flatten().collect();
    Storm {
        opened: outcomes.iter().filter(|(opened, _)| *opened).count(),
        closed_by_server: outcomes.iter().filter(|(_, closed)| *closed).count(),
        seconds,
        rss_peak_mib: peak,
        rss_end_mib: crate::rss_mib(pid),
        ..Storm::default()
    }
}

/// The results as Markdown.
pub fn markdown(results: &[Variant], config: &OverloadConfig, command: &str) -> String {
    let mut s = String::from("# Overload: concurrent writers and a connection storm\n\n");
    s.push_str(&format!("Command: `{command}`\n\n"));
    s.push_str(&format!(
        "{} clients post back to back for {:?} (as the three demo users in turn); then {} connections send half a request's headers and wait.\n\n",
        config.writers, config.duration, config.connections
    ));
    s.push_str("| API configuration | 200 | 429 | 503 | other | no answer | 200/s | p50 | p99 | p99 of 429/503 |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for v in results {
        let w = &v.writers;
        let answered = (w.ok + w.limited + w.shed + w.other).max(1) as f64;
        let share = |n: u64| format!("{n} ({:.0}%)", n as f64 * 100.0 / answered);
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.0} ms | {:.0} ms | {:.0} ms |\n",
            v.label,
            share(w.ok),
            share(w.limited),
            share(w.shed),
            w.other,
            w.failed,
            w.ok_per_second,
            w.p50_ms,
            w.p99_ms,
            w.refused_p99_ms
        ));
    }
    s.push_str("\n| API configuration | storm: opened | closed by server | in | RSS start | after writers | storm peak | 10 s after |\n|---|---|---|---|---|---|---|---|\n");
    for v in results {
        let m = &v.storm;
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} s | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB |\n",
            v.label, m.opened, m.closed_by_server, m.seconds, m.rss_start_mib, m.rss_after_writers_mib, m.rss_peak_mib, m.rss_end_mib
        ));
    }
    s.push_str("\nConfigurations:\n\n");
    for v in results {
        let env: Vec<String> = v.env.iter().map(|(k, val)| format!("{k}={val}")).collect();
        s.push_str(&format!("- {}: {}\n", v.label, if env.is_empty() { "defaults".to_string() } else { env.join(" ") }));
    }
    s
}
