//! Kafka clients, configured the same way everywhere: every client starts from
//! [`Kafka::client`], so the brokers and their TLS and SASL settings apply to all.

use crate::health::Positions;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::collections::HashMap;
use std::time::Duration;

/// Where the brokers are and how to authenticate to them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kafka {
    /// Comma-separated bootstrap servers (`KAFKA_BROKERS`).
    pub brokers: String,
    /// librdkafka properties for TLS and SASL, from the environment (see
    /// [`Kafka::SECURITY`]); empty for a plaintext broker.
    pub security: Vec<(&'static str, String)>,
}

impl Kafka {
    /// The environment variables that configure TLS and SASL, and the librdkafka
    /// property each sets. `KAFKA_SECURITY_PROTOCOL` is `plaintext` (default), `ssl`,
    /// `sasl_plaintext` or `sasl_ssl`; `KAFKA_SASL_MECHANISM` `PLAIN`, `SCRAM-SHA-256`
    /// or `SCRAM-SHA-512`; files are PEM.
    pub const SECURITY: [(&'static str, &'static str); 8] = [
        ("KAFKA_SECURITY_PROTOCOL", "security.protocol"),
        ("KAFKA_SASL_MECHANISM", "sasl.mechanism"),
        ("KAFKA_SASL_USERNAME", "sasl.username"),
        ("KAFKA_SASL_PASSWORD", "sasl.password"),
        ("KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
        ("KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.certificate.location"),
        ("KAFKA_SSL_KEY_LOCATION", "ssl.key.location"),
        ("KAFKA_SSL_KEY_PASSWORD", "ssl.key.password"),
    ];

    /// Plaintext brokers at `brokers`.
    pub fn plaintext(brokers: impl Into<String>) -> Self {
        Self { brokers: brokers.into(), security: Vec::new() }
    }

    /// `KAFKA_BROKERS` and the [`Kafka::SECURITY`] variables.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut security = Vec::new();
        for (variable, property) in Self::SECURITY {
            let value: String = crate::config::env_or(variable, String::new())?;
            if !value.is_empty() {
                security.push((property, value));
            }
        }
        if let Some((_, protocol)) = security.iter().find(|(p, _)| *p == "security.protocol") {
            let known = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
            anyhow::ensure!(
                known.contains(&protocol.to_ascii_lowercase().as_str()),
                "environment variable KAFKA_SECURITY_PROTOCOL={protocol:?} is invalid: expected one of {known:?}"
            );
        }
        Ok(Self { brokers: crate::config::env_or("KAFKA_BROKERS", "127.0.0.1:9092".to_string())?, security })
    }

    /// The variables [`Kafka::from_env`] reads back as `self`.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("KAFKA_BROKERS", self.brokers.clone())];
        for (variable, property) in Self::SECURITY {
            if let Some((_, value)) = self.security.iter().find(|(p, _)| *p == property) {
                env.push((variable, value.clone()));
            }
        }
        env
    }

    /// A client configuration for these brokers, with their security settings: what
    /// every client of the product starts from.
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers).set("socket.connection.setup.timeout.ms", "3000");
        for (property, value) in &self.security {
            config.set(*property, value);
        }
        config
    }
}

/// A producer that never claims success for a record the brokers did not persist:
/// idempotent, `acks=all`, and giving up after `delivery_timeout` so callers can answer
/// 503 instead of hanging.
pub fn producer(kafka: &Kafka, delivery_timeout: Duration) -> anyhow::Result<FutureProducer> {
    let producer = kafka
        .client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", delivery_timeout.as_millis().to_string())
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
pub fn assigned_consumer(kafka: &Kafka, group: &str, fetch_wait: Duration, positions: Positions) -> anyhow::Result<AssignedConsumer> {
    let consumer = kafka
        .client()
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
        .set("statistics.interval.ms", "5000")
        .create_with_context(LagContext { group: group.to_string(), positions })?;
    Ok(consumer)
}

/// Creates `topics` as `settings` say, and each one's dead-letter topic with one
/// partition; existing topics are left alone, so every service can call it at start.
pub async fn ensure_topics(kafka: &Kafka, topics: &[&str], settings: &crate::config::TopicSettings) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = kafka.client().create()?;
    let dead_letters: Vec<String> = topics.iter().map(|t| crate::consumer::dead_letter_topic(t)).collect();
    let configs = settings.configs();
    let new_topic = |name, partitions| {
        configs.iter().fold(NewTopic::new(name, partitions, TopicReplication::Fixed(settings.replication)), |topic, (key, value)| {
            topic.set(key, value)
        })
    };
    let new_topics: Vec<NewTopic<'_>> =
        topics.iter().map(|t| new_topic(t, settings.partitions)).chain(dead_letters.iter().map(|t| new_topic(t.as_str(), 1))).collect();
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
    partitions_of(consumer.client(), topic, timeout)
}

/// [`partitions`] through any client (a producer's, say).
pub fn partitions_of<C: ClientContext>(client: &rdkafka::client::Client<C>, topic: &str, timeout: Duration) -> anyhow::Result<Vec<i32>> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    let found = metadata.topics().first().ok_or_else(|| anyhow::anyhow!("no metadata for topic {topic}"))?;
    if let Some(error) = found.error() {
        anyhow::bail!("topic {topic}: {:?}", RDKafkaErrorCode::from(error));
    }
    let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    Ok(partitions)
}

/// A short-lived client for metadata, watermark and offset look-ups.
pub fn metadata_client(kafka: &Kafka) -> anyhow::Result<BaseConsumer> {
    Ok(kafka.client().create()?)
}

/// [`partitions`] through a client of its own. Blocks: call it from a blocking thread.
pub fn topic_partitions(kafka: &Kafka, topic: &str, timeout: Duration) -> anyhow::Result<Vec<i32>> {
    partitions(&metadata_client(kafka)?, topic, timeout)
}

/// Per partition of `topic`, the offset the next record will get (the high watermark).
/// Blocks: call it from a blocking thread, or use [`fetch_high_watermarks`].
pub fn high_watermarks(kafka: &Kafka, topic: &str, timeout: Duration) -> anyhow::Result<HashMap<i32, i64>> {
    high_watermarks_of(metadata_client(kafka)?.client(), topic, timeout)
}

/// [`high_watermarks`] through a client already open (a producer's, say). Blocks.
pub fn high_watermarks_of<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<HashMap<i32, i64>> {
    partitions_of(client, topic, timeout)?.into_iter().map(|p| Ok((p, client.fetch_watermarks(topic, p, timeout)?.1))).collect()
}

/// [`high_watermarks`] from async code (on a blocking thread).
pub async fn fetch_high_watermarks(kafka: &Kafka, topic: &str, timeout: Duration) -> anyhow::Result<HashMap<i32, i64>> {
    let (kafka, topic) = (kafka.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || high_watermarks(&kafka, &topic, timeout)).await?
}
