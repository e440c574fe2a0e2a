//! Fan-out: topic → Redis.
//!
//! Fan-out on write: a post, like or share by X is added to the friends feed (a sorted
//! set of compact refs scored by time) of every active follower of X, so reading a
//! friends feed is a Redis read or two. Following X copies X's recent entries into the
//! follower's feed; unfollowing removes them. Authors with very many followers are not
//! pushed but merged in at read time ([`hot`]). See [`feeds`] for why this is exact
//! under concurrency, crashes and replay, [`scripts`] for each step, and [`rebuild`]
//! for how the feeds come back when Redis loses them.

pub mod feeds;
pub mod hot;
pub mod rebuild;
pub mod scripts;

use feed_core::config::{env_millis, env_or, CommonConfig, ConsumerConfig, FeedSettings};
use feed_core::consumer::{BatchConsumer, BatchSettings};
use feed_core::keys::Keys;
use feed_core::shutdown::Shutdown;

pub use feeds::FeedSink;

/// The fan-out's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared settings (stores, broker, topic, groups).
    pub common: CommonConfig,
    /// Which partitions this replica applies, and the fetch wait.
    pub consumer: ConsumerConfig,
    /// `FANOUT_BATCH_SIZE` (default 500) and `FANOUT_LINGER_MS` (default 0: a batch is
    /// what has arrived).
    pub batch: BatchSettings,
    /// How feeds are kept (`FEED_MAX_LEN`, `HOT_AUTHOR_FOLLOWERS`, `FEED_ACTIVE_HOURS`).
    pub feed: FeedSettings,
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            consumer: ConsumerConfig::from_env()?,
            batch: BatchSettings { max_records: env_or("FANOUT_BATCH_SIZE", 500)?, linger: env_millis("FANOUT_LINGER_MS", 0)? },
            feed: FeedSettings::from_env()?,
        })
    }
}

/// A fan-out consumer ready to run.
pub struct Application {
    config: Config,
    sink: FeedSink,
}

impl Application {
    /// Connects to Redis and PostgreSQL (read when the feeds must be rebuilt; migrated
    /// if configured), and creates the topics if they are missing.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let db = feed_core::db::connect(&common.database_url, 2).await?;
        if common.run_migrations {
            feed_core::db::migrate(&db).await?;
        }
        let redis = common.redis().await?;
        warn_unless_compact(&redis, config.feed.max_len).await;
        if let Err(error) = common.ensure_topics().await {
            tracing::warn!(error = %format!("{error:#}"), "cannot create the topics now; consuming once they exist");
        }
        let keys = Keys::new(&common.redis_key_prefix);
        let rebuilder = rebuild::Rebuilder::new(db, redis.clone(), common, config.feed);
        let progress_key = keys.progress(&common.fanout_group, &common.feed_topic);
        let sink = FeedSink::new(redis, keys, config.feed, progress_key, rebuilder);
        Ok(Self { config, sink })
    }

    /// Consumes until `shutdown` is cancelled.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let common = &self.config.common;
        let wakeups = common.wakeups(&[&common.feed_topic], shutdown.clone())?;
        let consumer = BatchConsumer::connect(
            &common.kafka,
            &common.fanout_group,
            &common.feed_topic,
            self.config.batch,
            self.config.consumer,
            &wakeups,
        )?;
        tracing::info!("fan-out started");
        consumer.run(self.sink, shutdown).await
    }
}

/// Logs a warning when Redis would store a full feed as a skiplist (about three times
/// the memory of a listpack): `zset-max-listpack-entries` should be at least
/// `FEED_MAX_LEN`. A Redis whose configuration cannot be read (managed services) is not
/// judged.
async fn warn_unless_compact(redis: &feed_core::redis_client::Redis, max_len: usize) {
    let answer: redis::RedisResult<Vec<String>> =
        redis::cmd("CONFIG").arg("GET").arg("zset-max-listpack-entries").query_async(&mut redis.clone()).await;
    if let Some(limit) = answer.ok().and_then(|a| a.get(1).and_then(|v| v.parse::<usize>().ok())) {
        if limit < max_len {
            tracing::warn!(limit, max_len, "Redis zset-max-listpack-entries is below FEED_MAX_LEN: full feeds take about 3x the memory");
        }
    }
}
