//! Generates a realistic dataset through the pipeline: N users, a power-law follower
//! graph, and M activities spread over weeks. Deterministic for a given seed on a fresh
//! install (ids come from the database's sequences).
//!
//!     cargo run --release -p loadtest --bin feedgen -- --users 10000 --activities 1000000

use chrono::{DateTime, Utc};
use clap::Parser;
use feed_core::config::CommonConfig;
use loadtest::gen::{generate, GenConfig};
use loadtest::seed::Seeder;

#[derive(Parser, Debug)]
#[command(about = "Generate users, a power-law follower graph and historical activities")]
struct Args {
    /// Number of users (named `<prefix>0` .. `<prefix>N-1`, key `key-<name>`).
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Number of activities (posts, photos, likes, shares).
    #[arg(long, default_value_t = 1_000_000)]
    activities: usize,
    /// Weeks of history the activities spread over, ending at --end.
    #[arg(long, default_value_t = 4)]
    weeks: i64,
    /// End of the history (RFC 3339); fixed by default so a seed gives the same data.
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    end: DateTime<Utc>,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// User name prefix.
    #[arg(long, default_value = "user")]
    prefix: String,
    /// Wait until the writer and the fan-out have applied everything.
    #[arg(long)]
    wait: bool,
    /// Write the data set straight into PostgreSQL with the writer's own code, then
    /// rebuild the Redis feeds from it with the fan-out's, instead of publishing it
    /// (the local broker, tansu, slows down as its store grows).
    #[arg(long)]
    direct: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init()?;
    let args = Args::parse();
    let common = CommonConfig::from_env()?;
    let config = GenConfig {
        users: args.users,
        activities: args.activities,
        weeks: args.weeks,
        end: args.end,
        seed: args.seed,
        prefix: args.prefix.clone(),
        direct: args.direct,
    };
    let generated = generate(&common, &config).await?;
    let how = if args.direct { "wrote" } else { "published" };
    println!("{how} {} users, {} follows, {} activities", generated.users, generated.follows, generated.activities);
    if args.wait {
        let seeder = Seeder::connect(&common).await?;
        seeder.wait_applied(&common, &common.writer_group, "writer").await?;
        seeder.wait_applied(&common, &common.fanout_group, "fan-out").await?;
    }
    Ok(())
}
