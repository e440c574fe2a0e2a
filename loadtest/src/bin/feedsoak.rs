//! Resident memory of the API, writer and fan-out over a long run with nobody scraping
//! their metrics.
//!
//!     cargo build --release --bins
//!     ./target/release/feedsoak --seconds 600 --out loadtest/results
//!
//! Needs the writer, fan-out and API binaries beside it, and the stores and broker the
//! environment names (as the services read them; `scripts/dev-up.sh`'s are fine).

use clap::Parser;
use feed_core::config::CommonConfig;
use loadtest::soak::{markdown, run, SoakConfig};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Memory over time with no scraper attached")]
struct Args {
    /// How long the load runs, seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 15)]
    sample_every: u64,
    /// Connections reading the friends feed.
    #[arg(long, default_value_t = 16)]
    readers: usize,
    /// Connections posting.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Extra environment of the API, `NAME=VALUE` (repeatable).
    #[arg(long = "api-env", value_parser = parse_env)]
    api_env: Vec<(String, String)>,
    /// Name of the report (`<out>/<name>.md`).
    #[arg(long, default_value = "soak")]
    name: String,
    /// Directory for the report.
    #[arg(long, default_value = "loadtest/results")]
    out: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init_for_tool()?;
    let args = Args::parse();
    let config = SoakConfig {
        common: CommonConfig::from_env()?,
        duration: Duration::from_secs(args.seconds),
        sample_every: Duration::from_secs(args.sample_every),
        readers: args.readers,
        writers: args.writers,
        api_env: args.api_env,
    };
    let soak = run(&config).await?;
    loadtest::write_report(&args.out, &args.name, &markdown(&soak, &config, &loadtest::command_line()), &soak)
}

fn parse_env(pair: &str) -> Result<(String, String), String> {
    pair.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{pair:?} is not NAME=VALUE"))
}
