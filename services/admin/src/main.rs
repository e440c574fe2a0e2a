//! feedctl: create users, rebuild Redis feeds from PostgreSQL, prepare replays, show
//! consumer lag. Reads the same environment variables as the services.

use clap::{Parser, Subcommand};
use feed_core::config::CommonConfig;
use feed_core::feed::Keys;
use feed_core::shutdown::Shutdown;

#[derive(Parser)]
#[command(name = "feedctl", about = "Operate the activity-feed pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a user through the pipeline and print its key (shown once, stored hashed).
    CreateUser { name: String },
    /// Replace a user's key with a fresh one and print it; the old key stops working
    /// (within the API's 30 s key cache on instances that saw it recently).
    RotateKey { name: String },
    /// Rebuild Redis feeds from the hypertable: one user's, or everyone's.
    RebuildFeeds {
        #[arg(long)]
        user: Option<String>,
        /// Entries kept per feed (as the fan-out's FEED_MAX_LEN).
        #[arg(long, env = "FEED_MAX_LEN", default_value_t = 800)]
        max_len: usize,
    },
    /// Commit start offsets for a fresh consumer group; then start a writer or fan-out
    /// with WRITER_GROUP / FANOUT_GROUP set to it.
    Replay {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        group: String,
        #[arg(long, conflicts_with = "from_time")]
        from_offset: Option<i64>,
        /// RFC 3339.
        #[arg(long)]
        from_time: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Committed offset, high watermark and lag per partition of every group.
    Lag,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init_for_tool();
    let cli = Cli::parse();
    let common = CommonConfig::from_env()?;
    match cli.command {
        Command::CreateUser { name } => {
            let name = api::domain::Username::parse(&name).ok_or_else(|| anyhow::anyhow!("invalid user name"))?;
            let state = api_state().await?;
            let (user, key) = api::users::create_user(&state, &name, None).await?;
            println!("created user {} (id {}) with key {key}", user.name, user.id);
        }
        Command::RotateKey { name } => {
            let state = api_state().await?;
            let (user, key, recorded) = api::users::rotate_key(&state, &name).await?;
            println!("rotated the key of {} (id {}); new key {key}", user.name, user.id);
            if !recorded.applied {
                println!("note: the writer has not applied it yet; the new key works once it has");
            }
        }
        Command::RebuildFeeds { user, max_len } => {
            let db = feed_core::db::connect(&common.database_url, 2).await?;
            let redis = feed_core::redis_pool::manager(&common.redis_url).await?;
            let mut rebuilder = fanout::rebuild::Rebuilder::new(db.clone(), redis, Keys::new(&common.redis_key_prefix), max_len);
            let ids = match user {
                Some(name) => vec![sqlx_user_id(&db, &name).await?],
                None => rebuilder.user_ids().await?,
            };
            let bar = indicatif::ProgressBar::new(ids.len() as u64);
            for id in ids {
                rebuilder.rebuild_user(id).await?;
                bar.inc(1);
            }
            bar.finish();
            println!("rebuilt {} user(s)", bar.position());
        }
        Command::Replay { topic, group, from_offset, from_time } => {
            let from = match (from_offset, from_time) {
                (Some(o), _) => admin::From::Offset(o),
                (None, Some(t)) => admin::From::Time(t),
                (None, None) => admin::From::Offset(0),
            };
            let brokers = common.kafka_brokers.clone();
            let offsets = tokio::task::spawn_blocking(move || admin::prepare_replay(&brokers, &group, &topic, from)).await??;
            for (partition, offset) in offsets {
                println!("partition {partition}: starts at {offset}");
            }
        }
        Command::Lag => {
            for (group, topic) in admin::groups(&common) {
                let brokers = common.kafka_brokers.clone();
                let (g, t) = (group.clone(), topic.clone());
                let lags = tokio::task::spawn_blocking(move || admin::lag(&brokers, &g, &t)).await??;
                for l in lags {
                    let committed = l.committed.map_or("-".to_string(), |c| c.to_string());
                    println!("{group:<24} {topic:<20} p{:<3} committed {committed:>10} high {:>10} lag {:>8}", l.partition, l.high, l.lag);
                }
            }
        }
    }
    Ok(())
}

/// Acts as the API does: same settings, same way of publishing.
async fn api_state() -> anyhow::Result<api::AppState> {
    let config = api::Config::from_env()?;
    api::AppState::connect(&config, Shutdown::new()).await
}

async fn sqlx_user_id(db: &sqlx::PgPool, name: &str) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user {name}"))
}
