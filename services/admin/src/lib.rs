//! What `feedctl` does, as functions tests can call.

use chrono::{DateTime, Utc};
use feed_core::config::CommonConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Lag of one partition for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Partition.
    pub partition: i32,
    /// The group's committed offset (`None` if it never committed).
    pub committed: Option<i64>,
    /// The next offset to be written.
    pub high: i64,
    /// Records not yet committed by the group.
    pub lag: i64,
}

fn client(brokers: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?)
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let topic_meta = metadata.topics().first().ok_or_else(|| anyhow::anyhow!("no topic {topic}"))?;
    Ok(topic_meta.partitions().iter().map(|p| p.id()).collect())
}

/// Committed offset, high watermark and lag of `group` on each partition of `topic`.
pub fn lag(brokers: &str, group: &str, topic: &str) -> anyhow::Result<Vec<PartitionLag>> {
    let consumer = client(brokers, group)?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions(&consumer, topic)? {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, TIMEOUT)?;
    let mut out = Vec::new();
    for element in committed.elements() {
        let (_, high) = consumer.fetch_watermarks(topic, element.partition(), TIMEOUT)?;
        let committed = match element.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        out.push(PartitionLag { partition: element.partition(), committed, high, lag: high - committed.unwrap_or(0) });
    }
    out.sort_by_key(|l| l.partition);
    Ok(out)
}

/// Where a replay starts.
#[derive(Debug, Clone, Copy)]
pub enum From {
    /// This offset on every partition.
    Offset(i64),
    /// The first record at or after this time on each partition.
    Time(DateTime<Utc>),
}

/// Commits start positions for a fresh `group` on `topic`, so a writer or fan-out started
/// with that group consumes from there. Returns the committed offsets.
pub fn prepare_replay(brokers: &str, group: &str, topic: &str, from: From) -> anyhow::Result<Vec<(i32, i64)>> {
    let consumer = client(brokers, group)?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions(&consumer, topic)? {
        match from {
            From::Offset(o) => tpl.add_partition_offset(topic, p, Offset::Offset(o))?,
            From::Time(t) => tpl.add_partition_offset(topic, p, Offset::Offset(t.timestamp_millis()))?,
        }
    }
    if let From::Time(_) = from {
        tpl = consumer.offsets_for_times(tpl, TIMEOUT)?;
    }
    // Past the end (no record after that time) means "from the end".
    let mut resolved = TopicPartitionList::new();
    let mut out = Vec::new();
    for element in tpl.elements() {
        let (low, high) = consumer.fetch_watermarks(topic, element.partition(), TIMEOUT)?;
        let offset = match element.offset() {
            Offset::Offset(o) => o.clamp(low, high),
            _ => high,
        };
        resolved.add_partition_offset(topic, element.partition(), Offset::Offset(offset))?;
        out.push((element.partition(), offset));
    }
    consumer.assign(&resolved)?;
    consumer.commit(&resolved, rdkafka::consumer::CommitMode::Sync)?;
    Ok(out)
}

/// Every consumer group of a deployment with its topic.
pub fn groups(common: &CommonConfig) -> Vec<(String, String)> {
    vec![
        (common.writer_group.clone(), common.feed_topic.clone()),
        (common.fanout_group.clone(), common.feed_topic.clone()),
        (common.events_writer_group(), common.events_topic.clone()),
        (common.analytics_writer_group(), common.analytics_topic.clone()),
    ]
}
