//! The loop both consumer groups run: take a batch, apply it downstream, and only then
//! store its offsets and publish progress. A crash anywhere before the store means the
//! batch is delivered again, so every [`BatchHandler`] must be idempotent.

use crate::event::Decode;
use crate::progress;
use crate::shutdown::Shutdown;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;
use tokio::time::{sleep, timeout_at, Instant};

/// One decoded record with where it came from.
#[derive(Debug, Clone)]
pub struct Record<T> {
    /// Partition the record was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// The decoded event.
    pub event: T,
}

/// Applies a batch of events downstream. `apply` must be idempotent: after a crash the
/// same records come again. An error makes the loop retry the same batch.
pub trait BatchHandler<T>: Send {
    /// Applies `records` (in offset order per partition) durably.
    fn apply(&mut self, records: &[Record<T>]) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// How big a batch may grow and how long to wait for it to fill.
#[derive(Clone, Copy, Debug)]
pub struct BatchSettings {
    /// Most records in one batch.
    pub max_records: usize,
    /// How long to wait for more records once one has arrived.
    pub linger: Duration,
}

/// A subscribed consumer of records of type `T`, plus what it needs to report progress.
pub struct BatchConsumer<T> {
    consumer: StreamConsumer,
    topic: String,
    settings: BatchSettings,
    redis: redis::aio::ConnectionManager,
    progress_key: String,
    records: PhantomData<fn() -> T>,
}

impl<T: Decode + Send + Sync> BatchConsumer<T> {
    /// Subscribes `consumer` to `topic`; progress goes to the Redis hash `progress_key`.
    pub fn new(
        consumer: StreamConsumer,
        topic: &str,
        settings: BatchSettings,
        redis: redis::aio::ConnectionManager,
        progress_key: String,
    ) -> anyhow::Result<Self> {
        consumer.subscribe(&[topic])?;
        Ok(Self { consumer, topic: topic.to_string(), settings, redis, progress_key, records: PhantomData })
    }

    /// A consumer in `group` on `topic`, reporting progress under the group's key.
    pub fn connect(
        brokers: &str,
        group: &str,
        topic: &str,
        settings: BatchSettings,
        redis: redis::aio::ConnectionManager,
        keys: &crate::feed::Keys,
    ) -> anyhow::Result<Self> {
        let consumer = crate::kafka::consumer(brokers, group)?;
        Self::new(consumer, topic, settings, redis, keys.progress(group, topic))
    }

    /// Runs until `shutdown` is cancelled, then commits what was applied and leaves the
    /// group. Returns early only on an unrecoverable consumer error.
    pub async fn run<H: BatchHandler<T>>(mut self, mut handler: H, shutdown: Shutdown) -> anyhow::Result<()> {
        while let Some(batch) = self.next_batch(&shutdown).await? {
            let records = self.decode(&batch);
            if !self.apply_with_retry(&mut handler, &records, &shutdown).await {
                break; // shutting down with the batch unapplied: it will be redelivered
            }
            self.acknowledge(&batch).await;
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "nothing to commit at shutdown");
        }
        self.consumer.unsubscribe();
        tracing::info!(topic = %self.topic, "consumer stopped");
        Ok(())
    }

    /// Waits for a first record, then gathers more for up to `linger`. `None` on shutdown.
    async fn next_batch(&self, shutdown: &Shutdown) -> anyhow::Result<Option<Vec<Raw>>> {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            m = self.consumer.recv() => m?,
        };
        let mut batch = vec![Raw::from(&first)];
        let deadline = Instant::now() + self.settings.linger;
        while batch.len() < self.settings.max_records {
            match timeout_at(deadline, self.consumer.recv()).await {
                Ok(message) => batch.push(Raw::from(&message?)),
                Err(_) => break,
            }
        }
        Ok(Some(batch))
    }

    fn decode(&self, batch: &[Raw]) -> Vec<Record<T>> {
        batch
            .iter()
            .filter_map(|raw| match T::decode(&raw.payload) {
                Ok(event) => Some(Record { partition: raw.partition, offset: raw.offset, event }),
                Err(error) => {
                    tracing::error!(
                        topic = %self.topic, partition = raw.partition, offset = raw.offset,
                        %error, "skipping a record that is not a valid event"
                    );
                    None
                }
            })
            .collect()
    }

    /// Applies until success; `false` if shutdown came first.
    async fn apply_with_retry<H: BatchHandler<T>>(
        &self,
        handler: &mut H,
        records: &[Record<T>],
        shutdown: &Shutdown,
    ) -> bool {
        let mut backoff = Duration::from_millis(50);
        loop {
            match handler.apply(records).await {
                Ok(()) => return true,
                Err(error) => {
                    tracing::warn!(%error, records = records.len(), retry_in = ?backoff, "batch failed, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = sleep(backoff) => {},
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Stores the batch's offsets for the next commit and publishes the progress marks.
    async fn acknowledge(&mut self, batch: &[Raw]) {
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for raw in batch {
            let entry = last.entry(raw.partition).or_insert(raw.offset);
            *entry = (*entry).max(raw.offset);
        }
        for (partition, offset) in &last {
            // Fails only if the partition was revoked meanwhile; its new owner re-applies.
            if let Err(error) = self.consumer.store_offset(&self.topic, *partition, *offset) {
                tracing::warn!(%error, partition, offset, "could not store offset");
            }
        }
        let marks: Vec<(i32, i64)> = last.into_iter().map(|(p, o)| (p, o + 1)).collect();
        if let Err(error) = progress::mark_applied(&mut self.redis, &self.progress_key, &marks).await {
            // Only read-your-writes waits are affected; they time out and say so.
            tracing::warn!(%error, "could not publish progress");
        }
    }
}

/// The parts of a Kafka message the loop keeps after releasing it.
struct Raw {
    partition: i32,
    offset: i64,
    payload: Vec<u8>,
}

impl<M: Message> From<&M> for Raw {
    fn from(message: &M) -> Self {
        Raw {
            partition: message.partition(),
            offset: message.offset(),
            payload: message.payload().unwrap_or_default().to_vec(),
        }
    }
}
