//! Writer: topics → PostgreSQL.
//!
//! Three consumers in one process, one per topic. Each batch is one transaction that
//! writes the rows and stores the consumer's next offsets (see [`sink`]), so a crash at
//! any point loses nothing and doubles nothing, and a restarted writer resumes from its
//! own table without waiting for the broker:
//! - feed events → the `activities` hypertable plus the projections the API reads
//!   (`users`, `objects`, `follows`) ([`feed`]);
//! - generic events → `generic_events` ([`generic_events`]);
//! - analytics hits → `analytics_hits` and the hourly rollup ([`analytics`]).
//!
//! Beside them it runs the [`retention`] job on a schedule.

pub mod analytics;
pub mod feed;
pub mod generic_events;
mod native_partitions;
pub mod offsets;
pub mod retention;
pub mod sink;

/// Whether `error` says PostgreSQL cannot work right now (see
/// [`feed_core::db::is_unavailable`]) rather than something about the records.
pub(crate) fn is_unavailable(error: &anyhow::Error) -> bool {
    error.downcast_ref::<sqlx::Error>().is_some_and(feed_core::db::is_unavailable)
}

use feed_core::config::{env_millis, env_or, CommonConfig, ConsumerConfig};
use feed_core::consumer::{BatchConsumer, BatchSettings};
use feed_core::event::Event;
use feed_core::keys::Keys;
use feed_core::shutdown::Shutdown;
use feed_core::streams::{AnalyticsHit, GenericEvent};
use feed_core::wakeup::Wakeups;
use sink::{PgSink, Table};
use sqlx::PgPool;

/// The writer's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared settings (stores, broker, topics, groups).
    pub common: CommonConfig,
    /// Which partitions this replica applies, and the fetch wait.
    pub consumer: ConsumerConfig,
    /// `WRITER_BATCH_SIZE` (default 1000) and `WRITER_LINGER_MS` (default 0: a batch is
    /// what has arrived).
    pub batch: BatchSettings,
    /// `WRITER_DB_POOL_SIZE` (default 7): two connections per consumer, one for its
    /// batch transaction and one to create partitions meanwhile, and one for retention.
    pub db_pool_size: u32,
    /// How long each store keeps its rows (`RETENTION_*`).
    pub retention: retention::Retention,
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let common = CommonConfig::from_env()?;
        Ok(Self {
            consumer: ConsumerConfig::from_env()?,
            batch: BatchSettings { max_records: env_or("WRITER_BATCH_SIZE", 1000)?, linger: env_millis("WRITER_LINGER_MS", 0)? },
            db_pool_size: env_or("WRITER_DB_POOL_SIZE", 7)?,
            retention: retention::Retention::from_env(common.analytics_window)?,
            common,
        })
    }
}

/// A writer ready to consume its three topics.
pub struct Application {
    config: Config,
    pool: PgPool,
    redis: feed_core::redis_client::Redis,
}

impl Application {
    /// Connects to PostgreSQL (migrating it if configured) and Redis, and creates the
    /// topics if they are missing (a broker that is down is waited out later).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let common = &config.common;
        let pool: PgPool = feed_core::db::connect(&common.database_url, config.db_pool_size).await?;
        if common.run_migrations {
            feed_core::db::migrate(&pool).await?;
        }
        let redis = common.redis().await?;
        if let Err(error) = common.ensure_topics().await {
            tracing::warn!(error = %format!("{error:#}"), "cannot create the topics now; consuming once they exist");
        }
        Ok(Self { config, pool, redis })
    }

    /// Consumes (and runs retention) until `shutdown` is cancelled; each consumer
    /// finishes its batch first.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(assignment = ?self.config.consumer.assignment, "writer started");
        let retention = tokio::spawn(retention::schedule(self.pool.clone(), self.config.retention, shutdown.clone()));
        let common = &self.config.common;
        let (events_group, analytics_group) = (common.events_writer_group(), common.analytics_writer_group());
        let wakeups = common.wakeups(&common.topics(), shutdown.clone())?;
        tokio::try_join!(
            self.consume::<Event, _>(&common.writer_group, &common.feed_topic, feed::FeedTable, &wakeups, &shutdown),
            self.consume::<GenericEvent, _>(&events_group, &common.events_topic, generic_events::GenericEventsTable, &wakeups, &shutdown),
            self.consume::<AnalyticsHit, _>(
                &analytics_group,
                &common.analytics_topic,
                analytics::AnalyticsTable::new(common.analytics_window, self.config.retention.analytics),
                &wakeups,
                &shutdown
            ),
        )?;
        retention.await?;
        Ok(())
    }

    /// One topic's consumer, writing through `table`, under the name `group`.
    async fn consume<T, W>(&self, group: &str, topic: &str, table: W, wakeups: &Wakeups, shutdown: &Shutdown) -> anyhow::Result<()>
    where
        T: feed_core::event::Envelope + Send + Sync,
        W: Table<T>,
    {
        let common = &self.config.common;
        let keys = Keys::new(&common.redis_key_prefix);
        let sink = PgSink::new(self.pool.clone(), group, topic, table, self.redis.clone(), &keys);
        let consumer = BatchConsumer::<T>::connect(&common.kafka, group, topic, self.config.batch, self.config.consumer, wakeups)?;
        consumer.run(sink, shutdown.clone()).await
    }
}
