//! Times friends-feed pages far past what Redis keeps (served from PostgreSQL) for a
//! reader following many generated users; writes `deep.md` / `deep.json`.
//!
//!     ./target/release/feedgen --users 10000 --activities 1000000 --wait
//!     ./target/release/feeddeep --out loadtest/results
//!
//! Runs against a running stack (the environment names its stores and broker, as the
//! services read them) holding feedgen's data.

use clap::Parser;
use feed_core::config::CommonConfig;
use loadtest::deep::{markdown, run, DeepConfig};

#[derive(Parser, Debug)]
#[command(about = "Friends-feed pages from PostgreSQL, past what Redis keeps")]
struct Args {
    /// Base URL of the API.
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    api_url: String,
    /// Generated users the reader follows.
    #[arg(long, default_value_t = 1000)]
    followees: usize,
    /// Entries per page.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Pages read from the first.
    #[arg(long, default_value_t = 200)]
    pages: usize,
    /// Directory for deep.md and deep.json.
    #[arg(long, default_value = "loadtest/results")]
    out: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init_for_tool()?;
    let args = Args::parse();
    let config = DeepConfig {
        common: CommonConfig::from_env()?,
        api_url: args.api_url,
        followees: args.followees,
        limit: args.limit,
        pages: args.pages,
    };
    let report = run(&config).await?;
    loadtest::write_report(&args.out, "deep", &markdown(&report, &loadtest::command_line()), &report)?;
    Ok(())
}
