//! Fan-out: topic → Redis.
//!
//! Fan-out on write: a post, like or share by X is added to the friends feed (a sorted
//! set scored by time) of every follower of X, so reading a friends feed is one Redis
//! call. Following X copies X's recent entries into the follower's feed; unfollowing
//! removes them. See [`feeds`] for why this is exact under concurrency, crashes and
//! replay, and [`rebuild`] for how the feeds come back when Redis loses them.

pub mod feeds;
pub mod rebuild;

use feed_core::config::{env_millis, env_or, CommonConfig, ConsumerConfig};
use feed_core::consumer::{BatchConsumer, BatchSettings};
use feed_core::event::Event;
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
    /// `FANOUT_BATCH_SIZE` (default 500) and `FANOUT_LINGER_MS` (default 2).
    pub batch: BatchSettings,
    /// Entries kept per feed, `FEED_MAX_LEN` (default [`feed_core::feed::DEFAULT_MAX_LEN`]).
    pub feed_max_len: usize,
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            consumer: ConsumerConfig::from_env()?,
            batch: BatchSettings { max_records: env_or("FANOUT_BATCH_SIZE", 500)?, linger: env_millis("FANOUT_LINGER_MS", 2)? },
            feed_max_len: env_or("FEED_MAX_LEN", feed_core::feed::DEFAULT_MAX_LEN)?,
        })
    }
}

/// A fan-out consumer ready to run.
pub struct Application {
    consumer: BatchConsumer<Event>,
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
        let redis = feed_core::redis_pool::multiplexed(&common.redis_url).await?;
        if let Err(error) = common.ensure_topics().await {
            tracing::warn!(error = %format!("{error:#}"), "cannot create the topics now; consuming once they exist");
        }
        let keys = Keys::new(&common.redis_key_prefix);
        let rebuilder = rebuild::Rebuilder::new(db, redis.clone(), common, config.feed_max_len);
        let progress_key = keys.progress(&common.fanout_group, &common.feed_topic);
        let sink = FeedSink::new(redis, keys, config.feed_max_len, progress_key, rebuilder);
        let consumer =
            BatchConsumer::connect(&common.kafka_brokers, &common.fanout_group, &common.feed_topic, config.batch, config.consumer)?;
        Ok(Self { consumer, sink })
    }

    /// Consumes until `shutdown` is cancelled.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!("fan-out started");
        self.consumer.run(self.sink, shutdown).await
    }
}
