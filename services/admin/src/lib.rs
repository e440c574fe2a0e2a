//! What `feedctl` does, as functions tests can call.
//!
//! Consumers keep their offsets in their sinks (the writer in PostgreSQL's
//! `consumer_offsets`, the fan-out in its Redis progress hash), so lag and replays are
//! read and written there, not in the broker's consumer groups.

use chrono::{DateTime, Utc};
use feed_core::config::CommonConfig;
use feed_core::keys::Keys;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Which kind of consumer a name belongs to, and so where its offsets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// A writer consumer: offsets in PostgreSQL.
    Writer,
    /// A fan-out consumer: offsets in Redis.
    Fanout,
}

/// The stores the consumers keep their offsets in.
#[derive(Clone)]
pub struct Stores {
    /// The Kafka brokers.
    pub kafka: feed_core::kafka::Kafka,
    /// The writer's database.
    pub db: sqlx::PgPool,
    /// The fan-out's Redis.
    pub redis: feed_core::redis_client::Redis,
    /// Redis key names.
    pub keys: Keys,
}

impl Stores {
    /// Connects to the stores named in `common`.
    pub async fn connect(common: &CommonConfig) -> anyhow::Result<Self> {
        Ok(Self {
            kafka: common.kafka.clone(),
            db: feed_core::db::connect(&common.database_url, 2).await?,
            redis: common.redis().await?,
            keys: Keys::new(&common.redis_key_prefix),
        })
    }

    /// Per partition, the next offset consumer `name` of `role` has not applied on `topic`.
    pub async fn applied(&self, role: Role, name: &str, topic: &str) -> anyhow::Result<HashMap<i32, i64>> {
        match role {
            Role::Writer => Ok(writer::offsets::load(&self.db, name, topic).await?),
            Role::Fanout => Ok(feed_core::progress::read(&mut self.redis.clone(), &self.keys.progress(name, topic)).await?),
        }
    }

    /// Sets where consumer `name` of `role` resumes on `topic` (it must not be running).
    pub async fn set_applied(&self, role: Role, name: &str, topic: &str, offsets: &[(i32, i64)]) -> anyhow::Result<()> {
        match role {
            Role::Writer => writer::offsets::store(&self.db, name, topic, offsets, false).await?,
            Role::Fanout => {
                let key = self.keys.progress(name, topic);
                let _: () = redis::cmd("HSET").arg(&key).arg(offsets).query_async(&mut self.redis.clone()).await?;
            }
        }
        Ok(())
    }
}

/// Lag of one partition for one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Partition.
    pub partition: i32,
    /// The next offset the consumer will apply (`None` if it never applied any).
    pub applied: Option<i64>,
    /// The next offset to be written.
    pub high: i64,
    /// Records published and not yet applied.
    pub lag: i64,
}

/// Applied offset, high watermark and lag of consumer `name` on each partition of `topic`.
pub async fn lag(stores: &Stores, role: Role, name: &str, topic: &str) -> anyhow::Result<Vec<PartitionLag>> {
    let applied = stores.applied(role, name, topic).await?;
    let high = feed_core::kafka::fetch_high_watermarks(&stores.kafka, topic, TIMEOUT).await?;
    let mut out: Vec<PartitionLag> = high
        .into_iter()
        .map(|(partition, high)| {
            let applied = applied.get(&partition).copied();
            PartitionLag { partition, applied, high, lag: (high - applied.unwrap_or(0)).max(0) }
        })
        .collect();
    out.sort_by_key(|l| l.partition);
    Ok(out)
}

/// Where a replay starts.
#[derive(Debug, Clone, Copy)]
pub enum ReplayStart {
    /// This offset on every partition.
    Offset(i64),
    /// The first record at or after this time on each partition.
    Time(DateTime<Utc>),
}

/// Sets the start of a replay for consumer `name` of `role` on `topic`, so a writer or
/// fan-out started with that name consumes from there. Returns the offsets set
/// (clamped to what each partition holds).
pub async fn prepare_replay(stores: &Stores, role: Role, name: &str, topic: &str, from: ReplayStart) -> anyhow::Result<Vec<(i32, i64)>> {
    let (kafka, t) = (stores.kafka.clone(), topic.to_string());
    let offsets = tokio::task::spawn_blocking(move || resolve(&kafka, &t, from)).await??;
    stores.set_applied(role, name, topic, &offsets).await?;
    Ok(offsets)
}

/// Per partition of `topic`, the offset `from` names, clamped to the partition's range.
fn resolve(kafka: &feed_core::kafka::Kafka, topic: &str, from: ReplayStart) -> anyhow::Result<Vec<(i32, i64)>> {
    let client = feed_core::kafka::metadata_client(kafka)?;
    let mut list = TopicPartitionList::new();
    for p in feed_core::kafka::partitions(&client, topic, TIMEOUT)? {
        match from {
            ReplayStart::Offset(o) => list.add_partition_offset(topic, p, Offset::Offset(o))?,
            ReplayStart::Time(t) => list.add_partition_offset(topic, p, Offset::Offset(t.timestamp_millis()))?,
        }
    }
    if let ReplayStart::Time(_) = from {
        list = client.offsets_for_times(list, TIMEOUT)?;
    }
    let mut out = Vec::new();
    for element in list.elements() {
        let (low, high) = client.fetch_watermarks(topic, element.partition(), TIMEOUT)?;
        // Past the end (no record after that time) means "from the end".
        let offset = match element.offset() {
            Offset::Offset(o) => o.clamp(low, high),
            _ => high,
        };
        out.push((element.partition(), offset));
    }
    Ok(out)
}

/// Every consumer of a deployment: its role, name and topic.
pub fn consumers(common: &CommonConfig) -> Vec<(Role, String, String)> {
    vec![
        (Role::Writer, common.writer_group.clone(), common.feed_topic.clone()),
        (Role::Fanout, common.fanout_group.clone(), common.feed_topic.clone()),
        (Role::Writer, common.events_writer_group(), common.events_topic.clone()),
        (Role::Writer, common.analytics_writer_group(), common.analytics_topic.clone()),
    ]
}
