//! Measures the API under many concurrent writers and a connection storm, once per
//! API configuration, and writes `overload.md` / `overload.json`.
//!
//!     cargo build --release --bins
//!     ./target/release/feedoverload --out loadtest/results
//!
//! Needs the api, writer and fan-out binaries beside it, and the stores and broker the
//! environment names (as the services read them). Give it a database of its own: the
//! API it starts seeds the demo users there.

use clap::Parser;
use feed_core::config::CommonConfig;
use loadtest::overload::{markdown, run, OverloadConfig};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Answers, latency and memory of the API under 256 concurrent writers and a connection storm")]
struct Args {
    /// Concurrent writers.
    #[arg(long, default_value_t = 256)]
    writers: usize,
    /// Seconds the writers post.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Connections of the storm.
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// Only these configurations (defaults, shedding, rate-limited), in this order.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Directory for overload.md and overload.json.
    #[arg(long, default_value = "loadtest/results")]
    out: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init_for_tool()?;
    let args = Args::parse();
    let env = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let config = OverloadConfig {
        common: CommonConfig::from_env()?,
        writers: args.writers,
        duration: Duration::from_secs(args.seconds),
        connections: args.connections,
        variants: vec![
            ("defaults".to_string(), env(&[])),
            (
                "shedding".to_string(),
                env(&[
                    ("MAX_PENDING_WRITES", "64"),
                    ("WRITE_DEADLINE_MS", "2000"),
                    ("PUBLISH_TIMEOUT_MS", "1000"),
                    ("MAX_CONNECTIONS", "512"),
                    ("HEADER_READ_TIMEOUT_MS", "5000"),
                ]),
            ),
            ("rate-limited".to_string(), env(&[("RATE_LIMIT_PER_KEY", "100")])),
        ],
    };
    let mut config = config;
    if !args.only.is_empty() {
        config.variants = args.only.iter().filter_map(|label| config.variants.iter().find(|(l, _)| l == label).cloned()).collect();
    }
    let results = run(&config).await?;
    loadtest::write_report(&args.out, "overload", &markdown(&results, &config, &loadtest::command_line()), &results)?;
    Ok(())
}
