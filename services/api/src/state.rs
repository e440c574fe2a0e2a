//! What every handler can reach ([`AppState`]), and the one path every write takes.

use crate::config::Config;
use crate::error::ApiError;
use crate::pipeline::{Progress, Publisher, ReadYourWrites, Recorded, Stream};
use crate::{auth, deadline, shedding};
use feed_core::config::FeedSettings;
use feed_core::event::{Envelope, Event};
use feed_core::keys::Keys;
use feed_core::redis_client::Redis;
use feed_core::shutdown::Shutdown;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// What every handler can reach: cheap to clone (axum clones it for every request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// PostgreSQL projections (users, objects, follows, activities).
    pub db: PgPool,
    /// Redis, where the friends feeds live (one multiplexed connection, or a cluster's).
    pub redis: Redis,
    /// How the fan-out keeps the feeds (for catching a returning reader up).
    pub feed_settings: FeedSettings,
    /// Feed entries' bodies read recently (`BODY_CACHE_ENTRIES`).
    pub bodies: feed_core::friends::Bodies,
    /// Redis key names.
    pub keys: Keys,
    /// Recently seen app keys.
    pub auth_cache: auth::AuthCache,
    /// The feed topic; reads wait on the writer and the fan-out.
    pub feed: Stream,
    /// The generic events topic; reads wait on the writer.
    pub events: Stream,
    /// The analytics topic; reads wait on the writer.
    pub analytics: Stream,
    /// Which hit timestamps `POST /analytics` accepts.
    pub analytics_window: feed_core::config::TimeWindow,
    /// Rate limits and write slots.
    pub shedding: shedding::Shedding,
    /// How long a publish may take (the producer's delivery timeout).
    pub publish_timeout: Duration,
    /// The consumers whose lag `/metrics` reports (see [`crate::lag`]).
    pub watched: Vec<crate::lag::Watched>,
    /// Cancelled once the process was told to stop: `/readyz` answers 503 from then on.
    pub draining: Shutdown,
}

impl AppState {
    /// Connects to the stores (migrating PostgreSQL if configured) and the broker, and
    /// starts the read-your-writes waits, which stop on `shutdown`.
    pub async fn connect(config: &Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let common = &config.common;
        let db = feed_core::db::connect(&common.database_url, config.db_pool_size).await?;
        if common.run_migrations {
            feed_core::db::migrate(&db).await?;
        }
        let redis = common.redis().await?;
        if let Err(error) = common.ensure_topics().await {
            // Writes answer 503 until the broker is back; the consumers create them too.
            tracing::warn!(error = %format!("{error:#}"), "cannot create the topics now");
        }
        let keys = Keys::new(&common.redis_key_prefix);
        let publisher = Publisher::connect(&common.kafka, config.publish_timeout)?.announcing(redis.clone(), keys.published_channel());
        let awaited = [
            (&common.feed_topic, vec![common.writer_group.clone(), common.fanout_group.clone()]),
            (&common.events_topic, vec![common.events_writer_group()]),
            (&common.analytics_topic, vec![common.analytics_writer_group()]),
        ];
        let progress_keys: Vec<Vec<String>> =
            awaited.iter().map(|(topic, groups)| groups.iter().map(|group| keys.progress(group, topic)).collect()).collect();
        let watched = awaited
            .iter()
            .zip(&progress_keys)
            .flat_map(|((topic, groups), keys)| {
                groups.iter().zip(keys).map(|(group, key)| crate::lag::Watched {
                    topic: topic.to_string(),
                    group: group.clone(),
                    progress_key: key.clone(),
                })
            })
            .collect();
        let subscriber = feed_core::redis_client::subscriber_client(&common.redis_url, common.redis_ca_file.as_deref())?;
        let progress = Progress::start(subscriber, redis.clone(), keys.progress_channel(), progress_keys.concat(), shutdown);
        let mut streams = awaited.iter().zip(progress_keys).map(|((topic, _), progress_keys)| {
            Stream::new(topic, publisher.clone(), ReadYourWrites::new(progress.clone(), progress_keys, config.read_your_writes_timeout))
        });
        let (Some(feed), Some(events), Some(analytics)) = (streams.next(), streams.next(), streams.next()) else {
            anyhow::bail!("three streams");
        };
        Ok(AppState(Arc::new(Shared {
            feed,
            events,
            analytics,
            db,
            redis,
            feed_settings: config.feed,
            bodies: feed_core::friends::Bodies::new(config.body_cache_entries),
            keys,
            auth_cache: auth::auth_cache(),
            analytics_window: common.analytics_window,
            shedding: shedding::Shedding::new(config.shedding),
            publish_timeout: config.publish_timeout,
            watched,
            draining: Shutdown::new(),
        })))
    }

    /// Records a feed `event` (see [`AppState::record_on`]).
    pub async fn record(&self, event: &Event) -> Result<Recorded, ApiError> {
        self.record_on(&self.feed, event).await
    }

    /// Records `envelope` on `stream` for a request: every HTTP write goes through here.
    /// It takes a write slot (503 beyond `MAX_PENDING_WRITES`), is refused if its client
    /// hung up or its deadline leaves no time to publish, then publishes and waits for
    /// read-your-writes within what is left of the deadline.
    pub async fn record_on(&self, stream: &Stream, envelope: &impl Envelope) -> Result<Recorded, ApiError> {
        let _slot = self.shedding.write_slot()?;
        let scope = deadline::current();
        if let Some(scope) = &scope {
            scope.check_before_publish(self.publish_timeout)?;
        }
        stream.record(envelope, scope.map(|s| s.remaining())).await
    }
}
