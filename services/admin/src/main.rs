//! feedctl: create users, rotate keys, rebuild Redis feeds from PostgreSQL, prepare
//! replays, show consumer lag, migrate the database, drop data past retention. Reads the same environment
//! variables as the services; each command connects only to what it uses.

use admin::{ReplayStart, Role, Stores};
use api::pipeline::{Progress, Publisher, ReadYourWrites, Stream};
use clap::{Parser, Subcommand};
use fanout::rebuild::{Rebuilder, Scope};
use feed_core::config::CommonConfig;
use feed_core::keys::Keys;
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
    /// Reads the fan-out's FEED_MAX_LEN and HOT_AUTHOR_FOLLOWERS.
    RebuildFeeds {
        #[arg(long)]
        user: Option<String>,
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
    /// Drop the chunks (or native partitions) past each store's retention, as the writer
    /// does every RETENTION_EVERY_MINUTES; reads the writer's RETENTION_* settings.
    Retention,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init_for_tool()?;
    let cli = Cli::parse();
    let common = CommonConfig::from_env()?;
    match cli.command {
        // Stdout carries only the key, for scripts: `KEY=$(feedctl create-user dora)`.
        Command::CreateUser { name } => {
            let name = api::domain::Username::parse(&name).ok_or_else(|| anyhow::anyhow!("invalid user name"))?;
            let (db, feed) = feed_writes(&common).await?;
            let (user, key) = api::users::create_user(&db, &feed, &name, None).await?;
            eprintln!("created user {} (id {})", user.name, user.id);
            println!("{key}");
        }
        Command::RotateKey { name } => {
            let (db, feed) = feed_writes(&common).await?;
            let (user, key, recorded) = api::users::rotate_key(&db, &feed, &name).await?;
            eprintln!("rotated the key of {} (id {})", user.name, user.id);
            if !recorded.applied {
                eprintln!("note: the writer has not applied it yet; the new key works once it has");
            }
            println!("{key}");
        }
        Command::RebuildFeeds { user } => {
            let db = feed_core::db::connect(&common.database_url, 2).await?;
            let redis = common.redis().await?;
            let scope = match user {
                Some(name) => Scope::Users(vec![sqlx_user_id(&db, &name).await?]),
                None => Scope::All,
            };
            let mut rebuilder = Rebuilder::new(db, redis, &common, feed_core::config::FeedSettings::from_env()?);
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
            let storage = feed_core::db::migrate(&db).await?;
            println!("database migrated ({})", storage.as_str());
        }
        Command::Retention => {
            let retention = writer::retention::Retention::from_env(common.analytics_window)?;
            let db = feed_core::db::connect(&common.database_url, 1).await?;
            match writer::retention::run(&db, &retention, chrono::Utc::now()).await? {
                Some(dropped) => {
                    for (table, n) in dropped {
                        println!("{table}: dropped {n} chunk(s) or partition(s)");
                    }
                }
                None => anyhow::bail!("retention is running elsewhere (a writer or another feedctl); try again later"),
            }
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

/// What creating a user or rotating a key needs: the database, and the feed topic
/// published to as the API does (same timeouts), waiting for the writer only (a key
/// works once the writer applied it). Nothing is migrated and no topic created.
async fn feed_writes(common: &CommonConfig) -> anyhow::Result<(sqlx::PgPool, Stream)> {
    let config = api::Config::from_env()?;
    let db = feed_core::db::connect(&common.database_url, 2).await?;
    let redis = common.redis().await?;
    let keys = Keys::new(&common.redis_key_prefix);
    let publisher = Publisher::connect(&common.kafka, config.publish_timeout)?.announcing(redis.clone(), keys.published_channel());
    let writer = vec![keys.progress(&common.writer_group, &common.feed_topic)];
    let subscriber = feed_core::redis_client::subscriber_client(&common.redis_url, common.redis_ca_file.as_deref())?;
    let progress = Progress::start(subscriber, redis, keys.progress_channel(), writer.clone(), Shutdown::new());
    let waits = ReadYourWrites::new(progress, writer, config.read_your_writes_timeout);
    Ok((db, Stream::new(&common.feed_topic, publisher, waits)))
}

async fn sqlx_user_id(db: &sqlx::PgPool, name: &str) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user {name}"))
}
