//! Kafka clients, configured the same way everywhere.

use crate::health::Positions;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::time::Duration;

/// A producer that never claims success for a record the brokers did not persist:
/// idempotent, `acks=all`, and giving up after `delivery_timeout` so callers can answer
/// 503 instead of hanging.
pub fn producer(brokers: &str, delivery_timeout: Duration) -> anyhow::Result<FutureProducer> {
    let producer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", delivery_timeout.as_millis().to_string())
        .set("socket.connection.setup.timeout.ms", "3000")
        .create()?;
    Ok(producer)
}

/// Record headers from name/value pairs.
pub fn headers<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> rdkafka::message::OwnedHeaders {
    pairs.into_iter().fold(rdkafka::message::OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(rdkafka::message::Header { key: key.as_ref(), value: Some(value.as_ref()) })
    })
}

/// Sends `envelope` to `topic` (its key, headers and value as the envelope defines them)
/// and waits for the acknowledgement, at most `timeout` queued: how tools publish.
pub async fn send(producer: &FutureProducer, topic: &str, envelope: &impl crate::event::Envelope, timeout: Duration) -> anyhow::Result<()> {
    let (key, payload) = (envelope.key(), envelope.to_bytes());
    let record = rdkafka::producer::FutureRecord::to(topic).key(&key).payload(&payload).headers(headers(envelope.headers()));
    producer.send(record, timeout).await.map_err(|(error, _)| anyhow::anyhow!("publish to {topic} failed: {error}"))?;
    Ok(())
}

/// Turns librdkafka's statistics into the `feed_consumer_lag` gauge (the partition's
/// high watermark less the offset the sink has applied — not a Kafka commit, which this
/// product does not use — so lag is 0 exactly when everything published is applied) and
/// `feed_consumer_stalled` (partitions with records waiting and no progress for the
/// stall bound; see [`crate::health`]).
pub struct LagContext {
    group: String,
    positions: Positions,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // Only owned partitions (-1 is librdkafka's internal one); the high
                // watermark is -1 until known.
                if p.hi_offset < 0 {
                    continue;
                }
                if let Some(lag) = self.positions.set_high(*partition, p.hi_offset) {
                    let labels = [("topic", topic.clone()), ("partition", partition.to_string()), ("group", self.group.clone())];
                    metrics::gauge!("feed_consumer_lag", &labels).set(lag as f64);
                }
            }
            let stalled = self.positions.stalled().len();
            metrics::gauge!("feed_consumer_stalled", "topic" => topic.clone(), "group" => self.group.clone()).set(stalled as f64);
        }
    }
}

impl ConsumerContext for LagContext {}

/// A consumer of explicitly assigned partitions (see [`crate::config::Assignment`]).
pub type AssignedConsumer = StreamConsumer<LagContext>;

/// A consumer that joins no group: the caller assigns partitions at the offsets its sink
/// stored, and nothing is ever committed to the broker. Without membership there is no
/// session to time out and no rebalance, so a process killed and restarted resumes as
/// soon as it has read its sink's offsets, on any broker. `group` labels metrics; it is
/// also the client's `group.id`, which librdkafka wants even for assigned partitions
/// (without `subscribe` nothing joins a group).
pub fn assigned_consumer(brokers: &str, group: &str, fetch_wait: Duration, positions: Positions) -> anyhow::Result<AssignedConsumer> {
    let consumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A stored offset that no longer exists (retention deleted it) restarts at the
        // oldest record still kept.
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", fetch_wait.as_millis().to_string())
        // Bounds what is prefetched while a sink is down and the loop does not read.
        .set("queued.max.messages.kbytes", "16384")
        .set("socket.connection.setup.timeout.ms", "3000")
        .set("statistics.interval.ms", "5000")
        .create_with_context(LagContext { group: group.to_string(), positions })?;
    Ok(consumer)
}

/// Creates `topics` with `partitions` partitions each, and each one's dead-letter topic
/// with one, all replicated `replication` times; existing topics are left alone, so every
/// service can call it at start.
pub async fn ensure_topics(brokers: &str, topics: &[&str], partitions: i32, replication: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).set("socket.connection.setup.timeout.ms", "3000").create()?;
    let dead_letters: Vec<String> = topics.iter().map(|t| crate::consumer::dead_letter_topic(t)).collect();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
        .chain(dead_letters.iter().map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(replication))))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5))).request_timeout(Some(Duration::from_secs(5)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// The partition numbers of `topic`, as the broker's metadata has them.
pub fn partitions<C: ConsumerContext, K: Consumer<C>>(consumer: &K, topic: &str, timeout: Duration) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let found = metadata.topics().first().ok_or_else(|| anyhow::anyhow!("no metadata for topic {topic}"))?;
    if let Some(error) = found.error() {
        anyhow::bail!("topic {topic}: {:?}", RDKafkaErrorCode::from(error));
    }
    let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    Ok(partitions)
}

/// A short-lived client for metadata and watermark look-ups.
fn metadata_client(brokers: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new().set("bootstrap.servers", brokers).create()?)
}

/// [`partitions`] through a client of its own. Blocks: call it from a blocking thread.
pub fn topic_partitions(brokers: &str, topic: &str, timeout: Duration) -> anyhow::Result<Vec<i32>> {
    partitions(&metadata_client(brokers)?, topic, timeout)
}

/// Per partition of `topic`, the offset the next record will get (the high watermark).
/// Blocks: call it from a blocking thread, or use [`fetch_high_watermarks`].
pub fn high_watermarks(brokers: &str, topic: &str, timeout: Duration) -> anyhow::Result<HashMap<i32, i64>> {
    let client = metadata_client(brokers)?;
    partitions(&client, topic, timeout)?.into_iter().map(|p| Ok((p, client.fetch_watermarks(topic, p, timeout)?.1))).collect()
}

/// [`high_watermarks`] from async code (on a blocking thread).
pub async fn fetch_high_watermarks(brokers: &str, topic: &str, timeout: Duration) -> anyhow::Result<HashMap<i32, i64>> {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || high_watermarks(&brokers, &topic, timeout)).await?
}
