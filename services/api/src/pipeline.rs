//! The API's side of the pipeline: publishing an event and, for read-your-writes,
//! waiting until both consumer groups have applied it.

use crate::error::ApiError;
use feed_core::event::Event;
use feed_core::progress::{self, Marks};
use feed_core::shutdown::Shutdown;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Where the broker stored an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Partition.
    pub partition: i32,
    /// Offset within it.
    pub offset: i64,
}

/// Publishes events on the feed topic.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    topic: String,
}

impl Publisher {
    /// A publisher on `topic`.
    pub fn new(producer: FutureProducer, topic: String) -> Self {
        Self { producer, topic }
    }

    /// Sends `event` and resolves once the broker acknowledged it (all in-sync replicas);
    /// 503 when the broker does not within the producer's delivery timeout.
    pub async fn publish(&self, event: &Event) -> Result<Position, ApiError> {
        let payload = event.to_bytes();
        let key = event.key();
        let event_id = event.event_id.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "event_id", value: Some(event_id.as_str()) })
            .insert(Header { key: "event_type", value: Some(event.kind.verb().unwrap_or("user_created")) })
            .insert(Header { key: "schema_version", value: Some("1") });
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload).headers(headers);
        match self.producer.send(record, Duration::from_millis(100)).await {
            Ok(delivery) => {
                tracing::debug!(event_id, partition = delivery.partition, offset = delivery.offset, "event published");
                Ok(Position { partition: delivery.partition, offset: delivery.offset })
            }
            Err((error, _)) => {
                tracing::error!(event_id, %error, "event not acknowledged by the broker");
                Err(ApiError::unavailable("Event log unavailable, the change was not recorded"))
            }
        }
    }
}

/// What the consumer groups have applied, as last read from Redis.
#[derive(Clone, Debug, Default)]
struct Applied {
    writer: Marks,
    fanout: Marks,
}

/// Waits for the consumer groups to apply a published position.
///
/// One background task polls the groups' progress marks in Redis, only while someone is
/// waiting, and broadcasts them; any number of requests wait on that one poll.
#[derive(Clone)]
pub struct ReadYourWrites {
    applied: watch::Sender<Applied>,
    wake: Arc<Notify>,
    timeout: Duration,
}

impl ReadYourWrites {
    /// Starts the poller; it reads the marks under `writer_key` and `fanout_key` every
    /// `poll` while requests wait, and stops on `shutdown`.
    pub fn start(
        redis: redis::aio::ConnectionManager,
        writer_key: String,
        fanout_key: String,
        poll: Duration,
        timeout: Duration,
        shutdown: Shutdown,
    ) -> Self {
        let (applied, _) = watch::channel(Applied::default());
        let wake = Arc::new(Notify::new());
        let this = Self { applied, wake, timeout };
        tokio::spawn(this.clone().poll(redis, writer_key, fanout_key, poll, shutdown));
        this
    }

    async fn poll(
        self,
        mut redis: redis::aio::ConnectionManager,
        writer_key: String,
        fanout_key: String,
        interval: Duration,
        shutdown: Shutdown,
    ) {
        loop {
            if self.applied.receiver_count() == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake.notified() => {},
                }
            }
            let both = redis::pipe().hgetall(&writer_key).hgetall(&fanout_key).query_async(&mut redis).await;
            match both {
                Ok((writer, fanout)) => {
                    self.applied.send_replace(Applied { writer, fanout });
                }
                Err(error) => tracing::warn!(%error, "cannot read pipeline progress"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {},
            }
        }
    }

    /// Waits until the writer and the fan-out have both applied `position`, at most the
    /// configured bound. `true` if they did; `false` when the bound expired (the event is
    /// still durable in the log and will be applied, only later).
    pub async fn wait(&self, position: Position) -> bool {
        let mut applied = self.applied.subscribe();
        self.wake.notify_one();
        let done = |a: &Applied| {
            progress::covers(&a.writer, position.partition, position.offset)
                && progress::covers(&a.fanout, position.partition, position.offset)
        };
        let result = tokio::time::timeout(self.timeout, applied.wait_for(done)).await;
        let applied = matches!(result, Ok(Ok(_)));
        if !applied {
            tracing::warn!(?position, timeout = ?self.timeout, "read-your-writes wait expired");
        }
        applied
    }
}
