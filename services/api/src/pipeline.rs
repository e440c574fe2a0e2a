//! The API's side of the pipeline: publishing an event and, for read-your-writes,
//! waiting until the consumers its stream's reads depend on have applied it (writer and
//! fan-out for the feed topic, the writer for the others).

use crate::error::ApiError;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use feed_core::event::Envelope;
use feed_core::progress::{self, Marks};
use feed_core::redis_client::Redis;
use feed_core::shutdown::Shutdown;
use feed_core::telemetry::EVENT_LOG;
use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Header telling whether the write was visible to reads when the answer was sent:
/// `applied`, or `pending` when the read-your-writes bound expired.
pub const CONSISTENCY_HEADER: &str = "x-read-your-writes";

/// Header naming the event a write recorded, the id its log lines carry in every service.
pub const EVENT_ID_HEADER: &str = "x-event-id";

/// Proof that an event was acknowledged; attaches [`CONSISTENCY_HEADER`] and
/// [`EVENT_ID_HEADER`] to a response.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Whether the consumers the stream's reads depend on applied it before the answer.
    pub applied: bool,
    /// The recorded event's id.
    pub event_id: String,
}

impl Recorded {
    /// `body` with the consistency and event id headers.
    pub fn respond(self, body: impl IntoResponse) -> Response {
        let value = if self.applied { "applied" } else { "pending" };
        let mut response = body.into_response();
        let headers = response.headers_mut();
        headers.insert(HeaderName::from_static(CONSISTENCY_HEADER), HeaderValue::from_static(value));
        if let Ok(id) = HeaderValue::try_from(self.event_id) {
            headers.insert(HeaderName::from_static(EVENT_ID_HEADER), id);
        }
        response
    }
}

/// Where the broker stored an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Partition.
    pub partition: i32,
    /// Offset within it.
    pub offset: i64,
}

/// The `event_id` among record headers.
pub fn event_id<'a>(headers: &[(&str, &'a str)]) -> Option<&'a str> {
    headers.iter().find(|(name, _)| *name == "event_id").map(|(_, id)| *id)
}

/// Publishes records; one producer serves every topic.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    /// Where to announce each acknowledged record, so idle consumers fetch at once.
    announce: Option<(Redis, String)>,
}

impl Publisher {
    /// A publisher to `brokers` whose sends give up after `publish_timeout` (then 503).
    pub fn connect(kafka: &feed_core::kafka::Kafka, publish_timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self { producer: feed_core::kafka::producer(kafka, publish_timeout)?, announce: None })
    }

    /// The same, announcing every acknowledged record's topic on `channel` (see
    /// `feed_core::wakeup`).
    pub fn announcing(self, redis: Redis, channel: String) -> Self {
        Self { announce: Some((redis, channel)), ..self }
    }

    /// The underlying client, for health checks.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Sends one record and resolves once the broker acknowledged it (all in-sync
    /// replicas); 503 when it does not within the producer's delivery timeout.
    /// `headers` must include `event_id`, which is also logged.
    pub async fn publish(&self, topic: &str, key: &str, payload: &[u8], headers: &[(&str, &str)]) -> Result<Position, ApiError> {
        let event_id = event_id(headers).unwrap_or_default();
        let record = FutureRecord::to(topic).key(key).payload(payload).headers(feed_core::kafka::headers(headers.iter().copied()));
        match self.producer.send(record, Duration::from_millis(100)).await {
            Ok(delivery) => {
                metrics::counter!("feed_events_published_total", "topic" => topic.to_string()).increment(1);
                tracing::info!(target: EVENT_LOG, event_id, topic, partition = delivery.partition, offset = delivery.offset, "published");
                if let Some((redis, channel)) = &self.announce {
                    let (mut redis, channel, topic) = (redis.clone(), channel.clone(), topic.to_string());
                    // Not awaited: the answer does not wait for the consumers' wake-up call.
                    tokio::spawn(async move { feed_core::wakeup::announce(&mut redis, &channel, &topic).await });
                }
                Ok(Position { partition: delivery.partition, offset: delivery.offset })
            }
            Err((error, _)) => {
                metrics::counter!("feed_events_publish_failed_total", "topic" => topic.to_string()).increment(1);
                metrics::counter!("feed_kafka_errors_total", "client" => "producer").increment(1);
                tracing::error!(target: EVENT_LOG, event_id, topic, %error, "not acknowledged by the broker");
                Err(ApiError::Unavailable("Event log unavailable, the change was not recorded".into()))
            }
        }
    }
}

/// A topic the API writes to: its publisher, and the wait for the consumers a
/// client's next read depends on.
#[derive(Clone)]
pub struct Stream {
    topic: String,
    publisher: Publisher,
    read_your_writes: ReadYourWrites,
}

impl Stream {
    /// `topic`, published to by `publisher`, read-your-writes by `read_your_writes`.
    pub fn new(topic: &str, publisher: Publisher, read_your_writes: ReadYourWrites) -> Self {
        Self { topic: topic.to_string(), publisher, read_your_writes }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The publisher, for health checks.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Publishes `envelope` (its key, headers and value as the envelope defines them)
    /// and waits until the awaited groups applied it, at most the read-your-writes bound
    /// or `within`, if shorter. Tools call this directly; HTTP writes go through
    /// [`crate::AppState::record_on`], which adds the request's limits.
    pub async fn record(&self, envelope: &impl Envelope, within: Option<Duration>) -> Result<Recorded, ApiError> {
        let headers = envelope.headers();
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let position = self.publisher.publish(&self.topic, &envelope.key(), &envelope.to_bytes(), &pairs).await?;
        let applied = self.read_your_writes.wait(position, within).await;
        if !applied {
            metrics::counter!("feed_read_your_writes_expired_total").increment(1);
            tracing::warn!(?position, "read-your-writes wait expired");
        }
        Ok(Recorded { applied, event_id: envelope.id().to_string() })
    }

    /// Waits until the consumers this stream's reads depend on have applied every
    /// record below `next` on `partition`, at most `within`; `true` if they did.
    pub async fn wait_applied(&self, partition: i32, next: i64, within: Duration) -> bool {
        next <= 0 || self.read_your_writes.wait(Position { partition, offset: next - 1 }, Some(within)).await
    }
}

/// What every consumer has applied, as last announced: progress key → marks.
type Applied = HashMap<String, Marks>;

/// What the consumers have applied, kept current by their announcements on the progress
/// channel (see `feed_core::progress`). One subscription per API process serves every
/// wait; nothing is polled. At every (re)subscription the marks are read once, which
/// covers what was announced while it was not listening.
#[derive(Clone)]
pub struct Progress {
    applied: watch::Receiver<Applied>,
}

impl Progress {
    /// Subscribes to `channel` through `subscriber`, reading `keys` with `redis` at every
    /// (re)subscription; stops on `shutdown`.
    pub fn start(subscriber: redis::Client, redis: Redis, channel: String, keys: Vec<String>, shutdown: Shutdown) -> Self {
        let (sender, applied) = watch::channel(Applied::default());
        tokio::spawn(listen(subscriber, redis, channel, keys, sender, shutdown));
        Self { applied }
    }
}

/// The subscription's life: subscribe, read the marks, follow the announcements;
/// after any failure, again.
async fn listen(
    subscriber: redis::Client,
    mut redis: Redis,
    channel: String,
    keys: Vec<String>,
    applied: watch::Sender<Applied>,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let listened = async {
            let mut pubsub = subscriber.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.hgetall(key);
            }
            let read: Vec<Marks> = pipe.query_async(&mut redis).await?;
            applied.send_modify(|applied| applied.extend(keys.iter().cloned().zip(read)));
            backoff = Duration::from_millis(100);
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Ok(text) = message.get_payload::<String>() else { continue };
                if let Some((key, marks)) = progress::parse_announcement(&text) {
                    if keys.iter().any(|k| k == key) {
                        applied.send_modify(|applied| applied.entry(key.to_string()).or_default().extend(marks));
                    }
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ended = listened => match ended {
                Ok(()) => tracing::warn!("progress subscription ended; subscribing again"),
                Err(error) => tracing::warn!(%error, retry_in = ?backoff, "cannot follow pipeline progress"),
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {},
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Waits for the consumers a stream's reads depend on to apply a published position.
#[derive(Clone)]
pub struct ReadYourWrites {
    progress: Progress,
    keys: Arc<Vec<String>>,
    timeout: Duration,
}

impl ReadYourWrites {
    /// Waits on the consumers whose progress keys are `keys`, at most `timeout`.
    pub fn new(progress: Progress, keys: Vec<String>, timeout: Duration) -> Self {
        Self { progress, keys: Arc::new(keys), timeout }
    }

    /// Waits until every awaited consumer has applied `position`, at most the
    /// configured bound (or `within`, if shorter: what is left of the request's
    /// deadline). `true` if they did; `false` when the bound expired (the event is
    /// still durable in the log and will be applied, only later).
    pub async fn wait(&self, position: Position, within: Option<Duration>) -> bool {
        let bound = within.map_or(self.timeout, |within| within.min(self.timeout));
        let mut applied = self.progress.applied.clone();
        let keys = self.keys.clone();
        let done = |applied: &Applied| {
            keys.iter().all(|key| applied.get(key).is_some_and(|marks| progress::covers(marks, position.partition, position.offset)))
        };
        let waited = tokio::time::timeout(bound, applied.wait_for(done)).await;
        matches!(waited, Ok(Ok(_)))
    }
}
