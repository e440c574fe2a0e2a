//! Writer: topic → PostgreSQL.
//!
//! Consumes the feed topic in batches and writes each batch in one transaction: the
//! `activities` hypertable plus the projections the API reads (`users`, `objects`,
//! `follows`). Offsets are stored only after the transaction commits, and every insert
//! is idempotent, so a crash at any point loses nothing and doubles nothing.

mod store;

use feed_core::config::{env_millis, env_or, CommonConfig};
use feed_core::consumer::{BatchConsumer, BatchSettings};
use feed_core::feed::Keys;
use feed_core::shutdown::Shutdown;
use sqlx::PgPool;

pub use store::PgStore;

/// The writer's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared settings (stores, broker, topic, groups).
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

/// A writer ready to consume.
pub struct Application {
    consumer: BatchConsumer,
    store: PgStore,
}

impl Application {
    /// Connects to PostgreSQL (migrating it if configured), Redis and the broker.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let pool: PgPool = feed_core::db::connect(&common.database_url, 4).await?;
        if common.run_migrations {
            feed_core::db::migrate(&pool).await?;
        }
        let redis = feed_core::redis_pool::manager(&common.redis_url).await?;
        let kafka = feed_core::kafka::consumer(&common.kafka_brokers, &common.writer_group)?;
        let progress_key = Keys::new(&common.redis_key_prefix).progress(&common.writer_group, &common.feed_topic);
        let consumer = BatchConsumer::new(kafka, &common.feed_topic, config.batch, redis, progress_key)?;
        Ok(Self { consumer, store: PgStore::new(pool) })
    }

    /// Consumes until `shutdown` is cancelled.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!("writer started");
        self.consumer.run(self.store, shutdown).await
    }
}
