//! The loop every consumer group runs: take a batch, apply it downstream, and only then
//! store its offsets and publish progress. A crash anywhere before the store means the
//! batch is delivered again, so every [`BatchHandler`] must be idempotent.
//!
//! Poison records do not stop a partition: a record that does not decode, or that the
//! handler rejects permanently, goes to the dead-letter topic `<topic>.dead-letter` with
//! headers naming its source (topic, partition, offset, consumer group, event id) and the error,
//! and the partition keeps flowing. Only once the dead letter is acknowledged is the
//! record's offset stored.

use crate::event::Decode;
use crate::progress;
use crate::telemetry::EVENT_LOG;
use crate::shutdown::Shutdown;
use crate::kafka::GroupConsumer;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
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

    /// Whether `error` will recur however often the same records are retried (bad data,
    /// as opposed to an unreachable store). The loop then applies the batch record by
    /// record and dead-letters the ones that fail. Default: every error is transient.
    fn is_permanent(&self, _error: &anyhow::Error) -> bool {
        false
    }
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
    consumer: GroupConsumer,
    brokers: String,
    topic: String,
    group: String,
    settings: BatchSettings,
    redis: redis::aio::ConnectionManager,
    progress_key: String,
    dead_letters: FutureProducer,
    records: PhantomData<fn() -> T>,
}

/// How long a member may sit without partitions after a revocation before it rejoins.
const REJOIN_AFTER: Duration = Duration::from_secs(30);

/// How long stopping may wait for the Kafka clients to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The dead-letter topic of `topic`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dead-letter")
}

impl<T: Decode + Send + Sync> BatchConsumer<T> {
    /// A consumer in `group` subscribed to `topic`, reporting progress under the group's
    /// key in Redis. Creates the dead-letter topic if it is missing.
    pub async fn connect(
        brokers: &str,
        group: &str,
        topic: &str,
        settings: BatchSettings,
        redis: redis::aio::ConnectionManager,
        keys: &crate::feed::Keys,
    ) -> anyhow::Result<Self> {
        let consumer = crate::kafka::consumer(brokers, group)?;
        consumer.subscribe(&[topic])?;
        let dead_letter = dead_letter_topic(topic);
        if let Err(error) = crate::kafka::create_topics(brokers, &[&dead_letter], 1).await {
            tracing::warn!(%error, topic = dead_letter, "could not create the dead-letter topic");
        }
        Ok(Self {
            consumer,
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            group: group.to_string(),
            settings,
            redis,
            progress_key: keys.progress(group, topic),
            dead_letters: crate::kafka::producer(brokers, Duration::from_secs(30))?,
            records: PhantomData,
        })
    }

    /// Runs until `shutdown` is cancelled, then commits what was applied and leaves the
    /// group. Broker outages are waited out; it returns early only if a replacement
    /// consumer cannot even be created.
    pub async fn run<H: BatchHandler<T>>(mut self, mut handler: H, shutdown: Shutdown) -> anyhow::Result<()> {
        while let Some(batch) = self.next_batch(&shutdown).await? {
            let started = std::time::Instant::now();
            let (records, undecodable) = self.decode(&batch);
            for (raw, error) in undecodable {
                if !self.dead_letter(raw, &error, &shutdown).await {
                    break;
                }
            }
            if shutdown.is_cancelled() || !self.apply_with_retry(&mut handler, &records, &batch, &shutdown).await {
                break; // shutting down with the batch unapplied: it will be redelivered
            }
            self.log_applied(&batch);
            self.acknowledge(&batch).await;
            let labels = [("topic", self.topic.clone()), ("group", self.group.clone())];
            metrics::histogram!("feed_consumer_batch_records", &labels).record(batch.len() as f64);
            metrics::histogram!("feed_consumer_batch_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
            metrics::counter!("feed_consumer_records_total", &labels).increment(batch.len() as u64);
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "nothing to commit at shutdown");
        }
        self.consumer.unsubscribe();
        tracing::info!(topic = %self.topic, "consumer stopped");
        self.close().await;
        Ok(())
    }

    /// Closes the Kafka clients off the async threads, for at most [`CLOSE_TIMEOUT`]:
    /// librdkafka's close waits for the group coordinator, forever if the broker is gone.
    /// Offsets are committed by then, so giving up loses nothing.
    async fn close(self) {
        let Self { consumer, dead_letters, topic, .. } = self;
        let closing = tokio::task::spawn_blocking(move || drop((consumer, dead_letters)));
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            tracing::warn!(%topic, "broker unreachable: stopped without closing the Kafka client (offsets were committed)");
        }
    }

    /// Waits for a first record, then gathers more for up to `linger`. `None` on shutdown.
    /// While waiting, rejoins as a new member if the group left this one without
    /// partitions for [`REJOIN_AFTER`] (nothing uncommitted is lost: offsets are only
    /// stored for applied batches).
    async fn next_batch(&mut self, shutdown: &Shutdown) -> anyhow::Result<Option<Vec<Raw>>> {
        let first = loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                m = self.consumer.recv() => match m {
                    Ok(message) => break message,
                    // Broker outages surface here; librdkafka reconnects by itself.
                    Err(error) => {
                        metrics::counter!("feed_kafka_errors_total", "client" => "consumer").increment(1);
                        tracing::warn!(topic = %self.topic, %error, "consumer error, retrying");
                        sleep(Duration::from_millis(500)).await;
                    }
                },
                _ = sleep(Duration::from_secs(5)) => {
                    if self.consumer.context().unassigned_for().is_some_and(|d| d > REJOIN_AFTER) {
                        tracing::warn!(topic = %self.topic, group = %self.group, "no partitions since a revocation; rejoining as a new member");
                        let fresh = crate::kafka::consumer(&self.brokers, &self.group)?;
                        fresh.subscribe(&[&self.topic])?;
                        // Closing the stuck member may block on its coordinator.
                        let stuck = std::mem::replace(&mut self.consumer, fresh);
                        tokio::task::spawn_blocking(move || drop(stuck));
                    }
                }
            }
        };
        let mut batch = vec![Raw::from(&first)];
        let deadline = Instant::now() + self.settings.linger;
        while batch.len() < self.settings.max_records {
            match timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(Raw::from(&message)),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Ok(Some(batch))
    }

    /// The records that decode, and the ones that do not with why.
    fn decode<'a>(&self, batch: &'a [Raw]) -> (Vec<Record<T>>, Vec<(&'a Raw, String)>) {
        let mut records = Vec::with_capacity(batch.len());
        let mut undecodable = Vec::new();
        for raw in batch {
            match T::decode(&raw.payload) {
                Ok(event) => records.push(Record { partition: raw.partition, offset: raw.offset, event }),
                Err(error) => undecodable.push((raw, error.to_string())),
            }
        }
        (records, undecodable)
    }

    /// Applies until success; `false` if shutdown came first. A permanent error makes it
    /// apply record by record and dead-letter the records that keep failing.
    async fn apply_with_retry<H: BatchHandler<T>>(
        &self,
        handler: &mut H,
        records: &[Record<T>],
        batch: &[Raw],
        shutdown: &Shutdown,
    ) -> bool {
        match self.retry_transient(handler, records, shutdown).await {
            Outcome::Applied => true,
            Outcome::ShuttingDown => false,
            Outcome::Permanent(_) if records.len() > 1 => {
                for record in records {
                    match self.retry_transient(handler, std::slice::from_ref(record), shutdown).await {
                        Outcome::Applied => {}
                        Outcome::ShuttingDown => return false,
                        Outcome::Permanent(error) => {
                            if let Some(raw) = raw_of(batch, record) {
                                if !self.dead_letter(raw, &error, shutdown).await {
                                    return false;
                                }
                            }
                        }
                    }
                }
                true
            }
            Outcome::Permanent(error) => match records.first().and_then(|record| raw_of(batch, record)) {
                Some(raw) => self.dead_letter(raw, &error, shutdown).await,
                None => true,
            },
        }
    }

    /// Retries transient failures with backoff until success, shutdown, or a permanent
    /// failure.
    async fn retry_transient<H: BatchHandler<T>>(&self, handler: &mut H, records: &[Record<T>], shutdown: &Shutdown) -> Outcome {
        let mut backoff = Duration::from_millis(50);
        loop {
            match handler.apply(records).await {
                Ok(()) => return Outcome::Applied,
                Err(error) if handler.is_permanent(&error) => return Outcome::Permanent(format!("{error:#}")),
                Err(error) => {
                    metrics::counter!("feed_consumer_apply_errors_total", "topic" => self.topic.clone(), "group" => self.group.clone())
                        .increment(1);
                    tracing::warn!(error = %format!("{error:#}"), records = records.len(), retry_in = ?backoff, "batch failed, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Outcome::ShuttingDown,
                        _ = sleep(backoff) => {},
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Publishes `raw` to the dead-letter topic with its source and the error, retrying
    /// until the broker acknowledges; `false` if shutdown came first.
    async fn dead_letter(&self, raw: &Raw, error: &str, shutdown: &Shutdown) -> bool {
        let topic = dead_letter_topic(&self.topic);
        let (partition, offset) = (raw.partition.to_string(), raw.offset.to_string());
        loop {
            let mut pairs = vec![
                ("source_topic", self.topic.as_str()),
                ("source_partition", partition.as_str()),
                ("source_offset", offset.as_str()),
                ("consumer_group", self.group.as_str()),
                ("error", error),
            ];
            pairs.extend(raw.event_id.as_deref().map(|id| ("event_id", id)));
            let headers = crate::kafka::headers(pairs);
            let mut record = FutureRecord::to(&topic).payload(&raw.payload).headers(headers);
            if let Some(key) = &raw.key {
                record = record.key(key);
            }
            match self.dead_letters.send(record, Duration::from_secs(5)).await {
                Ok(_) => {
                    metrics::counter!("feed_consumer_dead_letters_total", "topic" => self.topic.clone(), "group" => self.group.clone())
                        .increment(1);
                    raw.dead_lettered.store(true, Ordering::Relaxed);
                    tracing::error!(
                        target: EVENT_LOG,
                        event_id = raw.event_id.as_deref().unwrap_or("-"),
                        topic = %self.topic, partition = raw.partition, offset = raw.offset, group = %self.group,
                        error, "dead-lettered"
                    );
                    return true;
                }
                Err((send_error, _)) => {
                    tracing::warn!(error = %send_error, "dead-letter publish failed, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = sleep(Duration::from_millis(500)) => {},
                    }
                }
            }
        }
    }

    /// One [`EVENT_LOG`] line per record, so an event can be followed by its id.
    /// Written before the progress marks, so whoever saw a record applied finds its line.
    fn log_applied(&self, batch: &[Raw]) {
        if !tracing::enabled!(target: EVENT_LOG, tracing::Level::INFO) {
            return;
        }
        for raw in batch.iter().filter(|raw| !raw.dead_lettered.load(Ordering::Relaxed)) {
            tracing::info!(
                target: EVENT_LOG,
                event_id = raw.event_id.as_deref().unwrap_or("-"),
                topic = %self.topic, partition = raw.partition, offset = raw.offset, group = %self.group,
                "applied"
            );
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

/// The raw message a decoded record came from (its bytes are what is dead-lettered).
fn raw_of<'a, T>(batch: &'a [Raw], record: &Record<T>) -> Option<&'a Raw> {
    batch.iter().find(|r| r.partition == record.partition && r.offset == record.offset)
}

/// How applying records ended.
enum Outcome {
    Applied,
    ShuttingDown,
    Permanent(String),
}

/// The parts of a Kafka message the loop keeps after releasing it.
struct Raw {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    /// The `event_id` header, for logs (present on everything the product publishes).
    event_id: Option<String>,
    /// Set once the record went to the dead-letter topic instead of downstream.
    dead_lettered: AtomicBool,
}

impl<M: Message> From<&M> for Raw {
    fn from(message: &M) -> Self {
        let event_id = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == "event_id")
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_string)
        });
        Raw {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            event_id,
            dead_lettered: AtomicBool::new(false),
        }
    }
}
