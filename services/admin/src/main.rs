//! feedctl: create users, rotate keys, rebuild Redis feeds from PostgreSQL, prepare
//! replays, show consumer lag, migrate the database. Reads the same environment
//! variables as the services; each command connects only to what it uses.

use admin::{ReplayStart, Role, Stores};
use clap::{Parser, Subcommand};
use fanout::rebuild::{Rebuilder, Scope};
use feed_core::config::CommonConfig;
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
    /// Rebuild Redis feeds from the hypertable: one user's, or everyone's. Safe while the
    /// fan-out runs: it pauses, then re-applies what it applied past the rebuild's snapshot.
    RebuildFeeds {
        #[arg(long)]
        user: Option<String>,
        /// Entries kept per feed (as the fan-out's FEED_MAX_LEN).
        #[arg(long, env = "FEED_MAX_LEN", default_value_t = 800)]
        max_len: usize,
    },
    /// Set the start offsets of a consumer that is not running (a fresh name replays
    /// into the same stores); then start a writer or fan-out with WRITER_GROUP /
    /// FANOUT_GROUP set to that name.
    Replay {
        #[arg(long)]
        topic: String,
        /// The consumer's name (its WRITER_GROUP or FANOUT_GROUP).
        #[arg(long)]
        group: String,
        /// Which consumer it is, and so where its offsets live.
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long, conflicts_with = "from_time")]
        from_offset: Option<i64>,
        /// RFC 3339.
        #[arg(long)]
        from_time: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Applied offset, high watermark and lag per partition of every consumer.
    Lag,
    /// Apply the database migrations (the services do at start unless
    /// `RUN_MIGRATIONS=false`; no other command migrates).
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init_for_tool()?;
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
            let scope = match user {
                Some(name) => Scope::Users(vec![sqlx_user_id(&db, &name).await?]),
                None => Scope::All,
            };
            let mut rebuilder = Rebuilder::new(db, redis, &common, max_len);
            let bar = indicatif::ProgressBar::new(0);
            let rebuilt = rebuilder
                .rebuild(scope, |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await?;
            bar.finish();
            match rebuilt {
                Some(generation) => println!("rebuilt {} user(s); generation {generation}", bar.position()),
                None => anyhow::bail!("another process is rebuilding the feeds; run again once it is done"),
            }
        }
        Command::Replay { topic, group, role, from_offset, from_time } => {
            let from = match (from_offset, from_time) {
                (Some(o), _) => ReplayStart::Offset(o),
                (None, Some(t)) => ReplayStart::Time(t),
                (None, None) => ReplayStart::Offset(0),
            };
            let stores = Stores::connect(&common).await?;
            for (partition, offset) in admin::prepare_replay(&stores, role, &group, &topic, from).await? {
                println!("partition {partition}: starts at {offset}");
            }
        }
        Command::Migrate => {
            let db = feed_core::db::connect(&common.database_url, 1).await?;
            feed_core::db::migrate(&db).await?;
            println!("database migrated");
        }
        Command::Lag => {
            let stores = Stores::connect(&common).await?;
            for (role, name, topic) in admin::consumers(&common) {
                for l in admin::lag(&stores, role, &name, &topic).await? {
                    let applied = l.applied.map_or("-".to_string(), |c| c.to_string());
                    println!("{name:<24} {topic:<20} p{:<3} applied {applied:>10} high {:>10} lag {:>8}", l.partition, l.high, l.lag);
                }
            }
        }
    }
    Ok(())
}

/// Acts as the API does: same settings, same way of publishing; but with pools of a
/// tool's size, and without migrating (`feedctl migrate` does, when asked).
async fn api_state() -> anyhow::Result<api::AppState> {
    let mut config = api::Config::from_env()?;
    config.common.run_migrations = false;
    (config.db_pool_size, config.redis_pool_size) = (2, 2);
    api::AppState::connect(&config, Shutdown::new()).await
}

async fn sqlx_user_id(db: &sqlx::PgPool, name: &str) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user {name}"))
}
