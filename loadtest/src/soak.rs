//! Memory over a long run with nobody scraping `/metrics`: a writer, a fan-out and an
//! API of their own (child processes, as in production), friends-feed reads and posts
//! at a steady mix, and every process's resident memory sampled as it goes. The goal
//! is memory flat after warm-up: a process whose memory grows with requests while
//! nobody scrapes it will run out, however slowly.

use crate::load::{closed_loop, Measured};
use crate::overload::{ready, ScratchStack};
use feed_core::config::CommonConfig;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// The stores and broker (names are replaced by scratch ones).
    pub common: CommonConfig,
    /// How long the load runs.
    pub duration: Duration,
    /// How often memory is sampled.
    pub sample_every: Duration,
    /// Connections reading `GET /feed/friends`.
    pub readers: usize,
    /// Connections posting.
    pub writers: usize,
    /// Extra environment of the API (`BODY_CACHE_ENTRIES=1000`, say).
    pub api_env: Vec<(String, String)>,
}

/// One sample: seconds since the load started, and each process's RSS in MiB.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the start.
    pub seconds: f64,
    /// The API's resident memory, MiB.
    pub api_mib: f64,
    /// The writer's.
    pub writer_mib: f64,
    /// The fan-out's.
    pub fanout_mib: f64,
}

/// What the soak measured.
#[derive(Debug, Serialize)]
pub struct Soak {
    /// Memory over time.
    pub samples: Vec<Sample>,
    /// The reads.
    pub reads: Measured,
    /// The posts.
    pub posts: Measured,
}

/// Runs the soak.
pub async fn run(config: &SoakConfig) -> anyhow::Result<Soak> {
    let stack = ScratchStack::start(&config.common, "soak").await?;
    let (api, url, _) = stack.start_api(&config.api_env)?;
    let http =
        reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(config.readers + config.writers).build()?;
    ready(&http, &url, &api).await?;
    // ivan reads the posts of the two he follows.
    for followee in ["nico", "eric"] {
        let response =
            http.post(format!("{url}/follow")).header("X-App-Key", "abc123").json(&serde_json::json!({"follow": followee})).send().await?;
        anyhow::ensure!(response.status().is_success(), "follow {followee}: {}", response.status());
    }
    let pids = [api.pid(), stack.writer.pid(), stack.fanout.pid()];
    let [Some(api_pid), Some(writer_pid), Some(fanout_pid)] = pids else { anyhow::bail!("a service is not running") };
    let started = Instant::now();
    let sample = move || Sample {
        seconds: started.elapsed().as_secs_f64(),
        api_mib: crate::rss_mib(api_pid),
        writer_mib: crate::rss_mib(writer_pid),
        fanout_mib: crate::rss_mib(fanout_pid),
    };
    let samples_so_far = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let collector = {
        let (every, samples) = (config.sample_every, samples_so_far.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(mut s) = samples.lock() {
                    s.push(sample());
                }
                tokio::time::sleep(every).await;
            }
        })
    };
    let reads = closed_loop(config.readers, config.duration, {
        let (http, url) = (http.clone(), url.clone());
        move |_| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(format!("{url}/feed/friends")).header("X-App-Key", "abc123").send().await.is_ok_and(|r| r.status().is_success())
            }
        }
    });
    let posts = closed_loop(config.writers, config.duration, {
        let (http, url) = (http.clone(), url.clone());
        move |i| {
            let (http, url) = (http.clone(), url.clone());
            let key = if i % 2 == 0 { "abc124" } else { "abc125" };
            async move {
                let body = serde_json::json!({"type": "post", "content": "soak"});
                http.post(format!("{url}/post")).header("X-App-Key", key).json(&body).send().await.is_ok_and(|r| r.status().is_success())
            }
        }
    });
    let (reads, posts) = tokio::join!(reads, posts);
    collector.abort();
    let mut samples = samples_so_far.lock().map(|s| s.clone()).unwrap_or_default();
    samples.push(sample());
    Ok(Soak { samples, reads, posts })
}

/// A process's memory growth from the end of warm-up (the first third) to the end, MiB.
pub fn growth(samples: &[Sample], of: impl Fn(&Sample) -> f64) -> (f64, f64, f64) {
    let end = samples.last().map_or(0.0, &of);
    let warm_at = samples.last().map_or(0.0, |s| s.seconds / 3.0);
    let warm = samples.iter().find(|s| s.seconds >= warm_at).map_or(0.0, &of);
    (warm, end, end - warm)
}

/// A process's RSS in a sample.
type Reading = fn(&Sample) -> f64;

/// The processes a report lists, and where their RSS is in a sample.
const PROCESSES: [(&str, Reading); 3] = [("api", |x| x.api_mib), ("writer", |x| x.writer_mib), ("fanout", |x| x.fanout_mib)];

/// The results as Markdown.
pub fn markdown(soak: &Soak, config: &SoakConfig, command: &str) -> String {
    let mut s = String::from("# Soak: memory with nobody scraping metrics\n\n");
    s.push_str(&format!("Command: `{command}`\n\n"));
    s.push_str(&format!(
        "{} connections read `GET /feed/friends` and {} post, back to back, for {:?}; the writer, fan-out and API are this run's own processes and nothing requests `/metrics`.\n\n",
        config.readers, config.writers, config.duration
    ));
    if !config.api_env.is_empty() {
        let env: Vec<String> = config.api_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!("The API ran with {}.\n\n", env.join(" ")));
    }
    s.push_str(&format!(
        "- reads: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({} errors)\n",
        soak.reads.rate, soak.reads.p50_ms, soak.reads.p99_ms, soak.reads.errors
    ));
    s.push_str(&format!(
        "- posts: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({} errors)\n\n",
        soak.posts.rate, soak.posts.p50_ms, soak.posts.p99_ms, soak.posts.errors
    ));
    let requests = (soak.reads.ok + soak.posts.ok) as f64;
    s.push_str(
        "| process | RSS after warm-up (first third) | RSS at the end | growth | per request after warm-up |\n|---|---|---|---|---|\n",
    );
    for (name, of) in PROCESSES {
        let (warm, end, grew) = growth(&soak.samples, of);
        let per_request = grew * 1024.0 * 1024.0 / (requests * 2.0 / 3.0).max(1.0);
        s.push_str(&format!("| {name} | {warm:.1} MiB | {end:.1} MiB | {grew:+.1} MiB | {per_request:+.1} bytes |\n"));
    }
    s.push_str("\n| seconds | api | writer | fanout |\n|---|---|---|---|\n");
    for x in &soak.samples {
        s.push_str(&format!("| {:.0} | {:.1} MiB | {:.1} MiB | {:.1} MiB |\n", x.seconds, x.api_mib, x.writer_mib, x.fanout_mib));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_measured_from_the_end_of_warm_up() {
        let at = |seconds: f64, api_mib: f64| Sample { seconds, api_mib, writer_mib: 0.0, fanout_mib: 0.0 };
        let samples = [at(0.0, 10.0), at(10.0, 30.0), at(20.0, 31.0), at(30.0, 32.0)];
        assert_eq!(growth(&samples, |s| s.api_mib), (30.0, 32.0, 2.0));
    }
}
