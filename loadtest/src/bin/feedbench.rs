//! Drives a running stack and writes the benchmark report (Markdown and JSON).
//!
//!     cargo run --release -p loadtest --bin feedbench -- --out loadtest/results

use clap::Parser;
use feed_core::config::CommonConfig;
use loadtest::bench::{run, BenchConfig};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Measure each pipeline stage against its ceiling on this machine")]
struct Args {
    /// Base URL of the API.
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    api_url: String,
    /// Seconds per load stage.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrency levels tried for ingest.
    #[arg(long, value_delimiter = ',', default_value = "8,32,64")]
    concurrency: Vec<usize>,
    /// Accounts the big reader follows.
    #[arg(long, default_value_t = 10_000)]
    big_followees: usize,
    /// Follower counts of the fan-out cost curve.
    #[arg(long, value_delimiter = ',', default_value = "1,100,10000,100000")]
    fanout_sizes: Vec<usize>,
    /// Rows for the COPY / produce ceilings and the batch-size curve.
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// Hot authors the hot-author reader follows.
    #[arg(long, default_value_t = 20)]
    hot_authors: usize,
    /// Returning inactive readers timed.
    #[arg(long, default_value_t = 20)]
    returning: usize,
    /// Accounts each returning reader follows.
    #[arg(long, default_value_t = 1000)]
    returning_followees: usize,
    /// Seconds of idle CPU measured at the start.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// Directory for report.md and report.json.
    #[arg(long, default_value = "loadtest/results")]
    out: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init()?;
    let args = Args::parse();
    let config = BenchConfig {
        common: CommonConfig::from_env()?,
        api_url: args.api_url.clone(),
        stage: Duration::from_secs(args.seconds),
        concurrency: args.concurrency.clone(),
        big_followees: args.big_followees,
        fanout_sizes: args.fanout_sizes.clone(),
        rows: args.rows,
        hot_authors: args.hot_authors,
        returning: args.returning,
        returning_followees: args.returning_followees,
        idle: Duration::from_secs(args.idle_seconds),
        feed: feed_core::config::FeedSettings::from_env()?,
    };
    let report = run(&config).await?;
    let command = loadtest::command_line();
    let machine = machine();
    loadtest::write_report(&args.out, "report", &report.markdown(&command, &machine), &report)?;
    Ok(())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024 / 1024)
        .unwrap_or(0);
    format!(
        "Machine: {cores} cores, {mem} GiB. Everything shared these cores: the load generator, \
         API, writer, fan-out, PostgreSQL, Redis and the tansu broker (SQLite storage)."
    )
}
