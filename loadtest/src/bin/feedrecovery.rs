//! Measures how fast a SIGKILLed writer or fan-out catches up after its restart.
//!
//!     cargo build --release --bins
//!     ./target/release/feedrecovery --kills 20 --out loadtest/results
//!
//! Needs the writer and fan-out binaries beside it, and the stores and broker the
//! environment names (as the services read them; `scripts/dev-up.sh`'s are fine).

use clap::Parser;
use feed_core::config::CommonConfig;
use loadtest::recovery::{markdown, run, RecoveryConfig};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Time from a consumer's restart after SIGKILL to lag 0")]
struct Args {
    /// Kills per role.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Posts per second while the load runs.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Followers of the posting author.
    #[arg(long, default_value_t = 100)]
    followers: i64,
    /// Milliseconds of load before each kill.
    #[arg(long, default_value_t = 1000)]
    before_kill_ms: u64,
    /// Directory for recovery.md and recovery.json.
    #[arg(long, default_value = "loadtest/results")]
    out: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init_for_tool()?;
    let args = Args::parse();
    let config = RecoveryConfig {
        common: CommonConfig::from_env()?,
        kills: args.kills,
        rate: args.rate,
        followers: args.followers,
        before_kill: Duration::from_millis(args.before_kill_ms),
    };
    let results = run(&config).await?;
    loadtest::write_report(&args.out, "recovery", &markdown(&results, &config, &loadtest::command_line()), &results)?;
    Ok(())
}
