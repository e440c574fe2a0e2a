//! Configuration from environment variables, with defaults that work on a developer
//! machine (see the README's table).

use std::str::FromStr;
use std::time::Duration;

/// Reads `name` from the environment, falling back to `default` when unset or empty.
/// A set but unparsable value is an error rather than a silent default.
pub fn env_or<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("environment variable {name}={raw:?} is invalid: {e}")),
        _ => Ok(default),
    }
}

/// Like [`env_or`] for a duration given in milliseconds.
pub fn env_millis(name: &str, default_ms: u64) -> anyhow::Result<Duration> {
    env_or(name, default_ms).map(Duration::from_millis)
}

/// Settings every service shares: where the stores and the broker are, and the names
/// that tie the stages together (topic, consumer groups, Redis key prefix).
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// PostgreSQL / TimescaleDB connection string (`DATABASE_URL`).
    pub database_url: String,
    /// Redis connection string (`REDIS_URL`).
    pub redis_url: String,
    /// Prepended to every Redis key (`REDIS_KEY_PREFIX`), so several installations or
    /// test runs can share one Redis.
    pub redis_key_prefix: String,
    /// Comma-separated Kafka bootstrap servers (`KAFKA_BROKERS`).
    pub kafka_brokers: String,
    /// Topic carrying the feed events (`FEED_TOPIC`).
    pub feed_topic: String,
    /// Topic carrying generic events (`EVENTS_TOPIC`).
    pub events_topic: String,
    /// Topic carrying analytics hits (`ANALYTICS_TOPIC`).
    pub analytics_topic: String,
    /// Consumer group of the writer on the feed topic (`WRITER_GROUP`); on the other
    /// topics it uses this name with `-events` / `-analytics` appended. The API waits on
    /// their progress.
    pub writer_group: String,
    /// Consumer group of the fan-out (`FANOUT_GROUP`); the API waits on its progress.
    pub fanout_group: String,
    /// Whether this service applies pending migrations at start (`RUN_MIGRATIONS`).
    pub run_migrations: bool,
}

impl CommonConfig {
    /// Reads the shared settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            database_url: env_or(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/feed".to_string(),
            )?,
            redis_url: env_or("REDIS_URL", "redis://127.0.0.1:6379".to_string())?,
            redis_key_prefix: env_or("REDIS_KEY_PREFIX", String::new())?,
            kafka_brokers: env_or("KAFKA_BROKERS", "127.0.0.1:9092".to_string())?,
            feed_topic: env_or("FEED_TOPIC", "feed-events".to_string())?,
            events_topic: env_or("EVENTS_TOPIC", "events".to_string())?,
            analytics_topic: env_or("ANALYTICS_TOPIC", "analytics-hits".to_string())?,
            writer_group: env_or("WRITER_GROUP", "feed-writer".to_string())?,
            fanout_group: env_or("FANOUT_GROUP", "feed-fanout".to_string())?,
            run_migrations: env_or("RUN_MIGRATIONS", true)?,
        })
    }

    /// The writer's group on the generic events topic.
    pub fn events_writer_group(&self) -> String {
        format!("{}-events", self.writer_group)
    }

    /// The writer's group on the analytics topic.
    pub fn analytics_writer_group(&self) -> String {
        format!("{}-analytics", self.writer_group)
    }
}
