//! Writer: topics → PostgreSQL.
//!
//! Three consumers in one process, one per topic, each writing its batches with
//! idempotent statements and storing offsets only after they commit, so a crash at any
//! point loses nothing and doubles nothing:
//! - feed events → the `activities` hypertable plus the projections the API reads
//!   (`users`, `objects`, `follows`) ([`feed`]);
//! - generic events → `generic_events` ([`events`]);
//! - analytics hits → `analytics_hits` and the hourly rollup ([`analytics`]).

pub mod analytics;
pub mod events;
pub mod feed;
mod partitions;

/// Whether a store error is about the data (PostgreSQL classes 22, data exception, and
/// 23, integrity violation), so retrying the same records can never succeed.
pub(crate) fn is_permanent(error: &anyhow::Error) -> bool {
    match error.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => db.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
        _ => false,
    }
}

use feed_core::config::{env_millis, env_or, CommonConfig};
use feed_core::consumer::{BatchConsumer, BatchSettings};
use feed_core::event::Event;
use feed_core::feed::Keys;
use feed_core::shutdown::Shutdown;
use feed_core::streams::{AnalyticsHit, LoggedEvent};
use sqlx::PgPool;

/// The writer's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared settings (stores, broker, topics, groups).
    pub common: CommonConfig,
    /// `WRITER_BATCH_SIZE` (default 1000) and `WRITER_LINGER_MS` (default 5).
    pub batch: BatchSettings,
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            batch: BatchSettings {
                max_records: env_or("WRITER_BATCH_SIZE", 1000)?,
                linger: env_millis("WRITER_LINGER_MS", 5)?,
            },
        })
    }
}

/// A writer ready to consume its three topics.
pub struct Application {
    feed: BatchConsumer<Event>,
    events: BatchConsumer<LoggedEvent>,
    analytics: BatchConsumer<AnalyticsHit>,
    pool: PgPool,
}

impl Application {
    /// Connects to PostgreSQL (migrating it if configured), Redis and the broker.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let pool: PgPool = feed_core::db::connect(&common.database_url, 6).await?;
        if common.run_migrations {
            feed_core::db::migrate(&pool).await?;
        }
        let redis = feed_core::redis_pool::manager(&common.redis_url).await?;
        let keys = Keys::new(&common.redis_key_prefix);
        let brokers = &common.kafka_brokers;
        let (feed_group, events_group, analytics_group) =
            (&common.writer_group, &common.events_writer_group(), &common.analytics_writer_group());
        Ok(Self {
            feed: BatchConsumer::connect(brokers, feed_group, &common.feed_topic, config.batch, redis.clone(), &keys).await?,
            events: BatchConsumer::connect(brokers, events_group, &common.events_topic, config.batch, redis.clone(), &keys).await?,
            analytics: BatchConsumer::connect(brokers, analytics_group, &common.analytics_topic, config.batch, redis, &keys).await?,
            pool,
        })
    }

    /// Consumes until `shutdown` is cancelled; each consumer finishes its batch first.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!("writer started");
        let pool = self.pool;
        tokio::try_join!(
            self.feed.run(feed::FeedWriter::new(pool.clone()), shutdown.clone()),
            self.events.run(events::EventsWriter::new(pool.clone()), shutdown.clone()),
            self.analytics.run(analytics::AnalyticsWriter::new(pool), shutdown),
        )?;
        Ok(())
    }
}
