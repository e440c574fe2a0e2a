//! Kafka clients, configured the same way everywhere.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Watches a consumer's group membership, so a member that lost its partitions and was
/// never given any back can be noticed. (Seen with tansu: after a session timeout on a
/// saturated machine, the rejoining member waited forever; a new member joins at once.)
/// It also turns librdkafka's statistics into the `feed_consumer_lag` gauge.
#[derive(Default)]
pub struct GroupContext {
    group: String,
    revoked_since: Mutex<Option<Instant>>,
}

impl GroupContext {
    /// How long the member has been between a revocation and the next assignment.
    pub fn unassigned_for(&self) -> Option<Duration> {
        self.revoked_since.lock().ok()?.map(|since| since.elapsed())
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                // -1 is the internal UA partition, and lag is -1 until known.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(
                        "feed_consumer_lag",
                        "topic" => topic.clone(), "partition" => partition.to_string(), "group" => self.group.clone()
                    )
                    .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Revoke(_), Ok(mut since)) = (rebalance, self.revoked_since.lock()) {
            since.get_or_insert_with(Instant::now);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Assign(_), Ok(mut since)) = (rebalance, self.revoked_since.lock()) {
            *since = None;
        }
    }
}

/// A group consumer with a [`GroupContext`].
pub type GroupConsumer = StreamConsumer<GroupContext>;

/// A group consumer that stores offsets only when told to (after the downstream write is
/// durable) and auto-commits what was stored.
pub fn consumer(brokers: &str, group: &str) -> anyhow::Result<GroupConsumer> {
    let consumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Generous: on a saturated machine a slow heartbeat answer must not trigger a
        // rebalance, which stalls a tansu group until the rebalance timeout (below).
        .set("session.timeout.ms", "45000")
        .set("heartbeat.interval.ms", "3000")
        // Also the rebalance timeout: how long a rejoin may wait for lost members.
        .set("max.poll.interval.ms", "60000")
        // How long the broker may hold a fetch open waiting for data. tansu answers
        // a fetch only when this expires, so it bounds the pipeline's latency.
        .set("fetch.wait.max.ms", fetch_wait_ms().to_string())
        .set("statistics.interval.ms", "5000")
        .create_with_context(GroupContext { group: group.to_string(), ..GroupContext::default() })?;
    Ok(consumer)
}

/// `KAFKA_FETCH_WAIT_MS` (default 10).
fn fetch_wait_ms() -> u64 {
    crate::config::env_or("KAFKA_FETCH_WAIT_MS", 10).unwrap_or(10)
}

/// Creates `topics` with `partitions` partitions each; existing topics are left alone.
pub async fn create_topics(brokers: &str, topics: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
        }
    }
    Ok(())
}
