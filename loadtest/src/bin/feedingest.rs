//! The writer's rows/s against raw `COPY` into `activities`, on TimescaleDB hypertables
//! and on native partitions in one run; writes `ingest.md` / `ingest.json`.
//!
//!     ./target/release/feedingest --out loadtest/results
//!
//! Needs only PostgreSQL (`DATABASE_URL`, where it creates and drops two databases) and
//! Redis (`REDIS_URL`).

use clap::Parser;
use feed_core::config::CommonConfig;
use loadtest::ingest::{markdown, run, IngestConfig};

#[derive(Parser, Debug)]
#[command(about = "Writer rows/s against raw COPY, on hypertables and native partitions")]
struct Args {
    /// Rows per measurement.
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// Measurements per storage mode.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Directory for ingest.md and ingest.json.
    #[arg(long, default_value = "loadtest/results")]
    out: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init_for_tool()?;
    let args = Args::parse();
    let common = CommonConfig::from_env()?;
    let config = IngestConfig { postgres_url: common.database_url, redis_url: common.redis_url, rows: args.rows, rounds: args.rounds };
    let results = run(&config).await?;
    loadtest::write_report(&args.out, "ingest", &markdown(&results, &config, &loadtest::command_line()), &results)?;
    Ok(())
}
