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
        Ok(raw) if !raw.trim().is_empty() => {
            raw.trim().parse().map_err(|e| anyhow::anyhow!("environment variable {name}={raw:?} is invalid: {e}"))
        }
        _ => Ok(default),
    }
}

/// Like [`env_or`] for a duration given in milliseconds.
pub fn env_millis(name: &str, default_ms: u64) -> anyhow::Result<Duration> {
    env_or(name, default_ms).map(Duration::from_millis)
}

/// Settings every service shares: where the stores and the broker are, and the names
/// that tie the stages together (topics, consumer names, Redis key prefix).
#[derive(Clone, Debug)]
pub struct CommonConfig {
    /// PostgreSQL / TimescaleDB connection string (`DATABASE_URL`).
    pub database_url: String,
    /// Redis connection string (`REDIS_URL`); with `redis_cluster`, the cluster's seed
    /// nodes, comma-separated.
    pub redis_url: String,
    /// Whether Redis is a Redis Cluster (`REDIS_CLUSTER`, default false).
    pub redis_cluster: bool,
    /// A PEM file of the CA to trust for `rediss://` URLs (`REDIS_CA_FILE`); the system's
    /// roots when unset.
    pub redis_ca_file: Option<String>,
    /// Prepended to every Redis key (`REDIS_KEY_PREFIX`), so several installations or
    /// test runs can share one Redis.
    pub redis_key_prefix: String,
    /// The Kafka brokers and how to authenticate to them (`KAFKA_BROKERS`, TLS and SASL:
    /// see [`crate::kafka::Kafka::SECURITY`]).
    pub kafka: crate::kafka::Kafka,
    /// Topic carrying the feed events (`FEED_TOPIC`).
    pub feed_topic: String,
    /// Topic carrying generic events (`EVENTS_TOPIC`).
    pub events_topic: String,
    /// Topic carrying analytics hits (`ANALYTICS_TOPIC`).
    pub analytics_topic: String,
    /// The writer's name on the feed topic (`WRITER_GROUP`), under which it keeps its
    /// offsets and progress (not a Kafka consumer group: see [`Assignment`]); on the other
    /// topics it uses this name with `-events` / `-analytics` appended. The API waits on
    /// their progress.
    pub writer_group: String,
    /// The fan-out's name (`FANOUT_GROUP`), like `writer_group`; the API waits on its progress.
    pub fanout_group: String,
    /// Whether this service applies pending migrations at start (`RUN_MIGRATIONS`).
    pub run_migrations: bool,
    /// How the topics a service creates when they are missing are made.
    pub topics: TopicSettings,
    /// Which analytics hits are accepted: not older than `ANALYTICS_MAX_AGE_HOURS`
    /// (default 168, a week) and not further ahead than `ANALYTICS_MAX_AHEAD_MINUTES`
    /// (default 60). Bounds the partitions hits can create.
    pub analytics_window: TimeWindow,
}

/// How the services create missing topics (existing topics are left as they are; the
/// broker's own defaults apply to whatever is not set here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicSettings {
    /// Partitions of each topic (`TOPIC_PARTITIONS`, default 3); a dead-letter topic has one.
    pub partitions: i32,
    /// Replication factor (`TOPIC_REPLICATION`, default 1, for a single local broker; 3
    /// on a production cluster).
    pub replication: i32,
    /// `min.insync.replicas` (`TOPIC_MIN_INSYNC_REPLICAS`, default one less than the
    /// replication factor, at least 1): with `acks=all`, a write is acknowledged only
    /// once this many replicas have it, so an acknowledged event survives the loss of
    /// all but one of them. Kafka's own default, 1, would let one replica acknowledge.
    pub min_insync_replicas: i32,
    /// `retention.ms`, in hours (`TOPIC_RETENTION_HOURS`, default 168): how far back a
    /// replay or a downstream consumer can read. The stores never depend on it (the
    /// feeds rebuild from PostgreSQL).
    pub retention_hours: i64,
}

impl TopicSettings {
    /// Reads the topic settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let replication: i32 = env_or("TOPIC_REPLICATION", 1)?;
        Self {
            partitions: env_or("TOPIC_PARTITIONS", 3)?,
            replication,
            min_insync_replicas: env_or("TOPIC_MIN_INSYNC_REPLICAS", Self::default_min_insync(replication))?,
            retention_hours: env_or("TOPIC_RETENTION_HOURS", 168)?,
        }
        .checked()
    }

    /// One less than the replication factor, at least 1: 2 of 3 replicas acknowledge.
    pub fn default_min_insync(replication: i32) -> i32 {
        (replication - 1).max(1)
    }

    /// `self` if its values make sense together.
    fn checked(self) -> anyhow::Result<Self> {
        let (settings, replication) = (self, self.replication);
        anyhow::ensure!(settings.partitions >= 1, "TOPIC_PARTITIONS must be at least 1");
        anyhow::ensure!(
            (1..=replication.max(1)).contains(&settings.min_insync_replicas),
            "TOPIC_MIN_INSYNC_REPLICAS must be between 1 and TOPIC_REPLICATION ({replication})"
        );
        anyhow::ensure!(settings.retention_hours >= 1, "TOPIC_RETENTION_HOURS must be at least 1");
        Ok(settings)
    }

    /// A single local broker's settings: `partitions` each, one replica, the default
    /// retention (tests and tools).
    pub fn local(partitions: i32) -> Self {
        Self { partitions, replication: 1, min_insync_replicas: 1, retention_hours: 168 }
    }

    /// The topic-level configuration every created topic gets.
    pub fn configs(&self) -> [(&'static str, String); 2] {
        [("min.insync.replicas", self.min_insync_replicas.to_string()), ("retention.ms", (self.retention_hours * 3_600_000).to_string())]
    }
}

/// A window of time around now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    /// How far back it reaches.
    pub max_age: chrono::TimeDelta,
    /// How far ahead it reaches.
    pub max_ahead: chrono::TimeDelta,
}

impl TimeWindow {
    /// Whether `time` lies in the window around `now`.
    pub fn contains(&self, now: chrono::DateTime<chrono::Utc>, time: chrono::DateTime<chrono::Utc>) -> bool {
        now - self.max_age <= time && time <= now + self.max_ahead
    }
}

impl CommonConfig {
    /// Reads the shared settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            database_url: env_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/feed".to_string())?,
            redis_url: env_or("REDIS_URL", "redis://127.0.0.1:6379".to_string())?,
            redis_cluster: env_or("REDIS_CLUSTER", false)?,
            redis_ca_file: Some(env_or("REDIS_CA_FILE", String::new())?).filter(|f| !f.is_empty()),
            redis_key_prefix: env_or("REDIS_KEY_PREFIX", String::new())?,
            kafka: crate::kafka::Kafka::from_env()?,
            feed_topic: env_or("FEED_TOPIC", "feed-events".to_string())?,
            events_topic: env_or("EVENTS_TOPIC", "events".to_string())?,
            analytics_topic: env_or("ANALYTICS_TOPIC", "analytics-hits".to_string())?,
            writer_group: env_or("WRITER_GROUP", "feed-writer".to_string())?,
            fanout_group: env_or("FANOUT_GROUP", "feed-fanout".to_string())?,
            run_migrations: env_or("RUN_MIGRATIONS", true)?,
            topics: TopicSettings::from_env()?,
            analytics_window: TimeWindow {
                max_age: chrono::TimeDelta::hours(env_or("ANALYTICS_MAX_AGE_HOURS", 168)?),
                max_ahead: chrono::TimeDelta::minutes(env_or("ANALYTICS_MAX_AHEAD_MINUTES", 60)?),
            },
        })
    }

    /// The environment variables [`CommonConfig::from_env`] reads back as `self`, for
    /// starting a service as a child process.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("REDIS_URL", self.redis_url.clone()),
            ("REDIS_CLUSTER", self.redis_cluster.to_string()),
            ("REDIS_CA_FILE", self.redis_ca_file.clone().unwrap_or_default()),
            ("REDIS_KEY_PREFIX", self.redis_key_prefix.clone()),
            ("FEED_TOPIC", self.feed_topic.clone()),
            ("EVENTS_TOPIC", self.events_topic.clone()),
            ("ANALYTICS_TOPIC", self.analytics_topic.clone()),
            ("WRITER_GROUP", self.writer_group.clone()),
            ("FANOUT_GROUP", self.fanout_group.clone()),
            ("RUN_MIGRATIONS", self.run_migrations.to_string()),
            ("TOPIC_PARTITIONS", self.topics.partitions.to_string()),
            ("TOPIC_REPLICATION", self.topics.replication.to_string()),
            ("TOPIC_MIN_INSYNC_REPLICAS", self.topics.min_insync_replicas.to_string()),
            ("TOPIC_RETENTION_HOURS", self.topics.retention_hours.to_string()),
            ("ANALYTICS_MAX_AGE_HOURS", self.analytics_window.max_age.num_hours().to_string()),
            ("ANALYTICS_MAX_AHEAD_MINUTES", self.analytics_window.max_ahead.num_minutes().to_string()),
        ];
        env.extend(self.kafka.to_env());
        env
    }

    /// Creates the three topics and their dead-letter topics if they are missing, as
    /// configured (see [`crate::kafka::ensure_topics`]).
    pub async fn ensure_topics(&self) -> anyhow::Result<()> {
        crate::kafka::ensure_topics(&self.kafka, &self.topics(), &self.topics).await
    }

    /// Connects to Redis as configured.
    pub async fn redis(&self) -> anyhow::Result<crate::redis_client::Redis> {
        crate::redis_client::Redis::connect(&self.redis_url, self.redis_cluster, self.redis_ca_file.as_deref()).await
    }

    /// Follows the API's publish announcements for `topics` until `shutdown` (see
    /// [`crate::wakeup`]).
    pub fn wakeups(&self, topics: &[&str], shutdown: crate::shutdown::Shutdown) -> anyhow::Result<crate::wakeup::Wakeups> {
        let subscriber = crate::redis_client::subscriber_client(&self.redis_url, self.redis_ca_file.as_deref())?;
        let channel = crate::keys::Keys::new(&self.redis_key_prefix).published_channel();
        Ok(crate::wakeup::Wakeups::start(subscriber, channel, topics, shutdown))
    }

    /// The three topics the API publishes to.
    pub fn topics(&self) -> [&str; 3] {
        [&self.feed_topic, &self.events_topic, &self.analytics_topic]
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

/// Which partitions of a topic this replica of a consumer role applies: those whose
/// number `p` satisfies `p mod replicas == replica`. Assigned explicitly rather than by a
/// consumer group, so a restarted process resumes at once instead of waiting for the
/// broker to notice the old member died (see the README, "Partition ownership").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// How many replicas of the role run (`CONSUMER_REPLICAS`, default 1).
    pub replicas: u32,
    /// This replica's number, `0..replicas` (`CONSUMER_REPLICA`, default 0); a
    /// Kubernetes StatefulSet gives it as the pod index.
    pub replica: u32,
}

impl Default for Assignment {
    fn default() -> Self {
        Self { replicas: 1, replica: 0 }
    }
}

impl Assignment {
    /// Reads `CONSUMER_REPLICAS` and `CONSUMER_REPLICA`.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::new(env_or("CONSUMER_REPLICAS", 1)?, env_or("CONSUMER_REPLICA", 0)?)
    }

    /// Replica `replica` of `replicas`; an error unless `replica < replicas`.
    pub fn new(replicas: u32, replica: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(replicas >= 1, "CONSUMER_REPLICAS={replicas} must be at least 1");
        anyhow::ensure!(replica < replicas, "CONSUMER_REPLICA={replica} must be below CONSUMER_REPLICAS={replicas}");
        Ok(Self { replicas, replica })
    }

    /// Whether this replica applies `partition`.
    pub fn owns(&self, partition: i32) -> bool {
        partition >= 0 && partition as u32 % self.replicas == self.replica
    }
}

/// How the friends feeds are kept: what the fan-out does, and what the API reads and
/// rebuilds by (both read the same variables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedSettings {
    /// Entries a feed (and an author's set) keeps in Redis (`FEED_MAX_LEN`, default
    /// [`crate::feed::DEFAULT_MAX_LEN`]); older ones are read from PostgreSQL.
    pub max_len: usize,
    /// Followers from which an author is hot (`HOT_AUTHOR_FOLLOWERS`, default 10,000):
    /// its entries are no longer pushed, but merged into its readers' feeds when read.
    /// It is normal again below [`FeedSettings::normal_below`] (80% of it), so an author
    /// near the line does not flip back and forth.
    pub hot_followers: u64,
    /// Readers who have neither read their feed nor followed anyone for this long are
    /// not pushed to (`FEED_ACTIVE_HOURS`, default 168, a week); their next read
    /// catches up from PostgreSQL.
    pub active_for: Duration,
}

impl FeedSettings {
    /// Reads `FEED_MAX_LEN`, `HOT_AUTHOR_FOLLOWERS` and `FEED_ACTIVE_HOURS`.
    pub fn from_env() -> anyhow::Result<Self> {
        let settings = Self {
            max_len: env_or("FEED_MAX_LEN", crate::feed::DEFAULT_MAX_LEN)?,
            hot_followers: env_or("HOT_AUTHOR_FOLLOWERS", 10_000)?,
            active_for: Duration::from_secs(3600 * env_or::<u64>("FEED_ACTIVE_HOURS", 168)?),
        };
        anyhow::ensure!(settings.max_len >= 1, "FEED_MAX_LEN must be at least 1");
        anyhow::ensure!(settings.hot_followers >= 1, "HOT_AUTHOR_FOLLOWERS must be at least 1");
        Ok(settings)
    }

    /// Below how many followers a hot author is normal again.
    pub fn normal_below(&self) -> u64 {
        (self.hot_followers * 4 / 5).max(1)
    }
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self { max_len: crate::feed::DEFAULT_MAX_LEN, hot_followers: 10_000, active_for: Duration::from_secs(3600 * 168) }
    }
}

/// Settings every consumer process shares.
#[derive(Clone, Copy, Debug)]
pub struct ConsumerConfig {
    /// The partitions this replica owns.
    pub assignment: Assignment,
    /// How long the broker may hold a fetch open waiting for data
    /// (`KAFKA_FETCH_WAIT_MS`, default 10). tansu answers a fetch only when it expires,
    /// so it bounds the pipeline's latency there; on Kafka it only bounds idle polling.
    pub fetch_wait: Duration,
    /// How long a partition may go without advancing while records wait before the
    /// consumer reports it stalled (`CONSUMER_STALL_AFTER_MS`, default 30000).
    pub stall_after: Duration,
    /// How long the consumer's loop may go without a turn (a poll, a retry, a batch)
    /// before its `/livez` fails and the orchestrator restarts it
    /// (`CONSUMER_STUCK_AFTER_MS`, default 60000). A store that is down does not count:
    /// the loop keeps turning while it waits, and a restart would not bring the store back.
    pub stuck_after: Duration,
}

impl ConsumerConfig {
    /// Reads the settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            assignment: Assignment::from_env()?,
            fetch_wait: env_millis("KAFKA_FETCH_WAIT_MS", 10)?,
            stall_after: env_millis("CONSUMER_STALL_AFTER_MS", 30_000)?,
            stuck_after: env_millis("CONSUMER_STUCK_AFTER_MS", 60_000)?,
        })
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            assignment: Assignment::default(),
            fetch_wait: Duration::from_millis(10),
            stall_after: Duration::from_secs(30),
            stuck_after: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_acknowledge_on_all_but_one_replica_and_keep_a_week() {
        assert_eq!(TopicSettings::default_min_insync(3), 2);
        assert_eq!(TopicSettings::default_min_insync(1), 1, "a single broker cannot ask for two");
        let production = TopicSettings { partitions: 6, replication: 3, min_insync_replicas: 2, retention_hours: 168 };
        assert_eq!(
            production.checked().unwrap().configs(),
            [("min.insync.replicas", "2".to_string()), ("retention.ms", "604800000".to_string())]
        );
        assert!(TopicSettings { min_insync_replicas: 4, ..production }.checked().is_err(), "more than the replicas");
        assert!(TopicSettings { retention_hours: 0, ..production }.checked().is_err());
    }

    #[test]
    fn time_windows_include_their_bounds() {
        let now = chrono::Utc::now();
        let window = TimeWindow { max_age: chrono::TimeDelta::hours(1), max_ahead: chrono::TimeDelta::minutes(5) };
        assert!(window.contains(now, now));
        assert!(window.contains(now, now - chrono::TimeDelta::hours(1)));
        assert!(!window.contains(now, now - chrono::TimeDelta::minutes(61)));
        assert!(!window.contains(now, now + chrono::TimeDelta::minutes(6)));
    }

    #[test]
    fn replicas_split_partitions_without_overlap() {
        let replicas: Vec<Assignment> = (0..3).map(|i| Assignment::new(3, i).unwrap()).collect();
        for partition in 0..12 {
            assert_eq!(replicas.iter().filter(|a| a.owns(partition)).count(), 1, "partition {partition}");
        }
        assert!(Assignment::default().owns(5));
        assert!(Assignment::new(2, 2).is_err());
        assert!(Assignment::new(0, 0).is_err());
    }
}
