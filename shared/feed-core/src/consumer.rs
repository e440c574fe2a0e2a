//! The loop every consumer runs: read a batch from the partitions this replica owns,
//! hand it to a [`Sink`], which applies it and stores the next offsets in the same
//! atomic write, and repeat.
//!
//! The sink, not the broker, owns the offsets (the writer in a PostgreSQL table, the
//! fan-out in its Redis progress hash). So:
//! - a process killed at any point resumes exactly where its last durable write ended,
//!   as soon as it restarts: partitions are assigned explicitly
//!   ([`crate::config::Assignment`]), there is no group membership for a broker to
//!   time out first;
//! - nothing is applied twice: a sink skips records below its stored offsets, inside
//!   the same write, so a redelivered record, or one applied meanwhile by another
//!   replica that wrongly owns the same partition, changes nothing.
//!
//! Idle costs nothing: a consumer that received nothing for [`STAY_ACTIVE`] (and whose
//! partitions have nothing waiting, by their high watermarks) stops fetching, and starts
//! again when the API announces a publish to its topic ([`crate::wakeup`]) or, in case
//! nobody announces, when a look at the high watermarks every
//! [`crate::wakeup::IDLE_LOOK`] finds records waiting.
//!
//! Poison records do not stop a partition: a record that does not decode, or that keeps
//! failing for any reason but an unreachable store ([`MAX_ATTEMPTS`] tries), goes to the
//! dead-letter topic `<topic>.dead-letter` with headers naming its source (topic,
//! partition, offset, consumer group, event id) and the error, and the partition keeps
//! flowing. A store that is down ([`Sink::is_unavailable`]) is waited out, with the batch
//! in hand, however long it takes; nothing is dead-lettered for it.

use crate::config::{Assignment, ConsumerConfig};
use crate::event::Envelope;
use crate::health::Positions;
use crate::kafka::AssignedConsumer;
use crate::shutdown::Shutdown;
use crate::telemetry::EVENT_LOG;
use crate::wakeup::Wakeups;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
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

/// What a sink did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The records were applied (those not applied before) and the offsets stored.
    Applied,
    /// Nothing was written: the sink's stored offsets moved under this consumer (another
    /// replica applied the partition further, or the fan-out's feeds were rebuilt). The
    /// loop asks the sink where to resume and seeks there.
    Moved,
}

/// Where a consumer's records go, and where it keeps how far it got.
pub trait Sink<T>: Send {
    /// Per partition, the next offset this sink has not applied; a partition it never
    /// applied is absent (read from the oldest record kept).
    fn resume_from(&mut self, partitions: &[i32]) -> impl Future<Output = anyhow::Result<HashMap<i32, i64>>> + Send;

    /// Applies `records` (offset order per partition; may be empty) and stores `next`
    /// (partition → next offset) as where to resume, in one atomic write. Records below
    /// the offsets already stored are skipped.
    fn apply(&mut self, records: &[Record<T>], next: &[(i32, i64)]) -> impl Future<Output = anyhow::Result<Stored>> + Send;

    /// Asked while no records arrive: whether the stored offsets moved since
    /// [`Sink::resume_from`] (then the loop resumes again). Default: they never do.
    fn offsets_moved(&mut self) -> impl Future<Output = bool> + Send {
        async { false }
    }

    /// Whether `error` says the store cannot be reached (refused or lost connection, pool
    /// timeout, server shutting down or out of resources): the batch is then retried until
    /// the store is back. Any other error is retried [`MAX_ATTEMPTS`] times, then the batch
    /// is applied record by record and the records that keep failing are dead-lettered.
    fn is_unavailable(&self, error: &anyhow::Error) -> bool;
}

/// How often a batch (or a record) that fails while its store is reachable is tried
/// before its records are taken to be at fault.
pub const MAX_ATTEMPTS: u32 = 5;

/// Where a batch starts on `partition`: its first record there, or `next` when it has
/// none there (only offsets to store). A sink whose stored offset is past this has had
/// the batch applied by someone else.
pub fn first_offset<T>(records: &[Record<T>], partition: i32, next: i64) -> i64 {
    records.iter().filter(|r| r.partition == partition).map(|r| r.offset).min().unwrap_or(next)
}

/// How big a batch may grow and how long to wait for it to fill.
#[derive(Clone, Copy, Debug)]
pub struct BatchSettings {
    /// Most records in one batch.
    pub max_records: usize,
    /// How long to wait for more records once one has arrived.
    pub linger: Duration,
}

/// How often an idle consumer asks its sink whether its offsets moved.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How long a consumer keeps fetching after its last record or wake-up before it pauses.
pub const STAY_ACTIVE: Duration = Duration::from_millis(500);

/// How often the topic's partitions are looked up again (partitions can be added).
const METADATA_REFRESH: Duration = Duration::from_secs(30);

/// Longest pause between retries of a failing store or broker.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long stopping may wait for the Kafka clients to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The dead-letter topic of `topic`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dead-letter")
}

/// A consumer of the partitions of one topic that one replica owns.
pub struct BatchConsumer<T> {
    consumer: std::sync::Arc<AssignedConsumer>,
    kafka: crate::kafka::Kafka,
    topic: String,
    group: String,
    settings: BatchSettings,
    assignment: Assignment,
    /// Per owned partition, the next offset to apply (what the sink stored, advanced as
    /// batches are applied). Shared with the lag metric and `/health`.
    positions: Positions,
    /// The partitions currently assigned, and when they were looked up.
    owned: Vec<i32>,
    looked_up: Option<Instant>,
    /// Made on the first dead letter: an idle producer is not free (its polling thread).
    dead_letters: std::sync::OnceLock<FutureProducer>,
    /// Changes when the API announces a publish to the topic.
    wake: Option<watch::Receiver<u64>>,
    /// Whether the owned partitions are paused (idle: no fetches).
    paused: bool,
    /// Until when to keep fetching (when not paused), or since when paused.
    idle_at: Instant,
    /// When the sink was last asked whether its offsets moved.
    checked_at: Instant,
    records: PhantomData<fn() -> T>,
}

/// What waiting for a batch ended with.
enum Next {
    Batch(Vec<Raw>),
    /// The sink's offsets moved: resume from them.
    Resume,
    /// Time to look the topic's partitions up again.
    Refresh,
    Shutdown,
}

/// How applying records ended.
enum Outcome {
    Applied,
    Moved,
    ShuttingDown,
    Permanent(String),
}

impl<T: Envelope + Send + Sync> BatchConsumer<T> {
    /// A consumer of `topic` named `group` (the name its sink keys offsets and progress
    /// by, and metrics' `group` label), woken by `wakeups`. Connects lazily: the broker
    /// need not be up.
    pub fn connect(
        kafka: &crate::kafka::Kafka,
        group: &str,
        topic: &str,
        settings: BatchSettings,
        config: ConsumerConfig,
        wakeups: &Wakeups,
    ) -> anyhow::Result<Self> {
        let positions = Positions::register(group, topic, config.stall_after, config.stuck_after);
        Ok(Self {
            consumer: std::sync::Arc::new(crate::kafka::assigned_consumer(kafka, group, config.fetch_wait, positions.clone())?),
            kafka: kafka.clone(),
            topic: topic.to_string(),
            group: group.to_string(),
            settings,
            assignment: config.assignment,
            positions,
            owned: Vec::new(),
            looked_up: None,
            dead_letters: std::sync::OnceLock::new(),
            wake: wakeups.of(topic),
            paused: false,
            idle_at: Instant::now() + STAY_ACTIVE,
            checked_at: Instant::now(),
            records: PhantomData,
        })
    }

    /// Runs until `shutdown` is cancelled; the batch in hand is finished first, unless
    /// its store is down (it is then applied by the next run). Broker and store outages
    /// are waited out.
    pub async fn run<S: Sink<T>>(mut self, mut sink: S, shutdown: Shutdown) -> anyhow::Result<()> {
        let mut resume = true;
        loop {
            if resume || self.metadata_due() {
                if !self.resume(&mut sink, resume, &shutdown).await {
                    break;
                }
                resume = false;
            }
            let batch = match self.next_batch(&mut sink, &shutdown).await {
                Next::Batch(batch) => batch,
                Next::Resume => {
                    resume = true;
                    continue;
                }
                Next::Refresh => continue,
                Next::Shutdown => break,
            };
            for raw in &batch {
                self.positions.seen(raw.partition, raw.offset);
            }
            let started = std::time::Instant::now();
            match self.apply(&mut sink, &batch, &shutdown).await {
                Outcome::Applied => {}
                Outcome::Moved => {
                    resume = true;
                    continue;
                }
                Outcome::ShuttingDown => break,
                Outcome::Permanent(error) => {
                    self.close().await;
                    anyhow::bail!("cannot store offsets: {error}");
                }
            }
            self.positions.turn();
            self.log_applied(&batch);
            self.advance(&batch);
            self.idle_at = Instant::now() + STAY_ACTIVE;
            let labels = [("topic", self.topic.clone()), ("group", self.group.clone())];
            metrics::histogram!("feed_consumer_batch_records", &labels).record(batch.len() as f64);
            metrics::histogram!("feed_consumer_batch_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
            metrics::counter!("feed_consumer_records_total", &labels).increment(batch.len() as u64);
        }
        tracing::info!(topic = %self.topic, group = %self.group, "consumer stopped");
        self.close().await;
        Ok(())
    }

    /// Looks up the topic's partitions and, if they changed or `always`, assigns the
    /// owned ones at the offsets the sink stored. Retries until it succeeds; `false` if
    /// shutdown came first.
    async fn resume<S: Sink<T>>(&mut self, sink: &mut S, always: bool, shutdown: &Shutdown) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            // A resume may be long (the fan-out rebuilding its feeds): stopping drops it,
            // which is safe (a rebuild cut short is done again by whoever resumes next).
            let tried = tokio::select! {
                _ = shutdown.cancelled() => return false,
                tried = self.try_resume(sink, always) => tried,
            };
            match tried {
                Ok(()) => return true,
                Err(error) => {
                    metrics::counter!("feed_consumer_resume_errors_total", "topic" => self.topic.clone(), "group" => self.group.clone())
                        .increment(1);
                    tracing::warn!(topic = %self.topic, group = %self.group, error = %format!("{error:#}"), retry_in = ?backoff, "cannot resume yet");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn try_resume<S: Sink<T>>(&mut self, sink: &mut S, always: bool) -> anyhow::Result<()> {
        let (kafka, topic) = (self.kafka.clone(), self.topic.clone());
        let partitions =
            tokio::task::spawn_blocking(move || crate::kafka::topic_partitions(&kafka, &topic, Duration::from_secs(5))).await??;
        let owned: Vec<i32> = partitions.into_iter().filter(|p| self.assignment.owns(*p)).collect();
        if !always && owned == self.owned {
            self.looked_up = Some(Instant::now());
            return Ok(());
        }
        let stored = sink.resume_from(&owned).await?;
        let mut list = TopicPartitionList::new();
        for partition in &owned {
            let offset = stored.get(partition).map_or(Offset::Beginning, |o| Offset::Offset(*o));
            list.add_partition_offset(&self.topic, *partition, offset)?;
        }
        self.consumer.assign(&list)?;
        (self.paused, self.idle_at) = (false, Instant::now() + STAY_ACTIVE);
        let positions: HashMap<i32, i64> = owned.iter().map(|p| (*p, stored.get(p).copied().unwrap_or(0))).collect();
        tracing::info!(topic = %self.topic, group = %self.group, ?positions, "resuming from the sink's offsets");
        self.positions.reset(&positions);
        self.owned = owned;
        self.looked_up = Some(Instant::now());
        Ok(())
    }

    /// Whether the topic's partitions are due to be looked up again.
    fn metadata_due(&self) -> bool {
        self.looked_up.is_none_or(|at| at.elapsed() > METADATA_REFRESH)
    }

    /// Waits for a first record, then gathers more for up to `linger` (0: only what has
    /// arrived already). Records below the positions (prefetched before a seek) are
    /// dropped. While idle it pauses and resumes (see the module documentation), and asks
    /// the sink every [`IDLE_CHECK`] whether its offsets moved.
    async fn next_batch<S: Sink<T>>(&mut self, sink: &mut S, shutdown: &Shutdown) -> Next {
        let first = loop {
            self.positions.turn();
            let decide_at = if self.paused { self.idle_at + crate::wakeup::IDLE_LOOK } else { self.idle_at };
            tokio::select! {
                _ = shutdown.cancelled() => return Next::Shutdown,
                m = self.consumer.recv() => match m {
                    Ok(message) if self.is_due(&message) => break Raw::from(&message),
                    Ok(_) => {}
                    // Broker outages surface here; librdkafka reconnects by itself.
                    Err(error) => {
                        metrics::counter!("feed_kafka_errors_total", "client" => "consumer").increment(1);
                        tracing::warn!(topic = %self.topic, %error, "consumer error, retrying");
                        sleep(Duration::from_millis(500)).await;
                    }
                },
                _ = changed(&mut self.wake) => self.set_paused(false, STAY_ACTIVE),
                _ = tokio::time::sleep_until(decide_at) => {
                    // Paused: look whether records wait. Fetching: stop, unless records
                    // wait (a fetch that has not come back yet).
                    let waiting = self.records_waiting().await;
                    if waiting {
                        self.set_paused(false, STAY_ACTIVE);
                    } else if self.paused {
                        self.idle_at = Instant::now();
                    } else {
                        self.set_paused(true, Duration::ZERO);
                    }
                }
                _ = tokio::time::sleep_until(self.checked_at + IDLE_CHECK) => {
                    self.checked_at = Instant::now();
                    if sink.offsets_moved().await {
                        return Next::Resume;
                    }
                    if self.metadata_due() {
                        return Next::Refresh;
                    }
                }
            }
        };
        let mut batch = vec![first];
        let deadline = Instant::now() + self.settings.linger;
        while batch.len() < self.settings.max_records {
            match timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) if self.is_due(&message) => batch.push(Raw::from(&message)),
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Next::Batch(batch)
    }

    /// Whether an owned partition has records past this consumer's position, by the
    /// broker's high watermarks (one cheap request each, no fetch); `true` when the
    /// broker cannot tell, so a doubt resumes fetching.
    async fn records_waiting(&self) -> bool {
        let (consumer, topic) = (self.consumer.clone(), self.topic.clone());
        let positions: Vec<(i32, i64)> = self.owned.iter().map(|p| (*p, self.positions.next(*p).unwrap_or(0))).collect();
        let looked = tokio::task::spawn_blocking(move || {
            positions.iter().any(|(partition, next)| {
                consumer.fetch_watermarks(&topic, *partition, Duration::from_secs(2)).map_or(true, |(_, high)| high > *next)
            })
        });
        looked.await.unwrap_or(true)
    }

    /// Stops fetching (the owned partitions unassigned), or fetches again from the
    /// positions (assigned at them) and keeps fetching for at least `stay`. Assigning at
    /// explicit offsets, rather than pausing, leaves nothing to what a paused fetch left
    /// behind.
    fn set_paused(&mut self, paused: bool, stay: Duration) {
        let now = Instant::now();
        if paused != self.paused {
            let done = if paused {
                self.consumer.unassign()
            } else {
                let mut list = TopicPartitionList::new();
                let added: Result<(), _> = self.owned.iter().try_for_each(|partition| {
                    let next = self.positions.next(*partition).map_or(Offset::Beginning, Offset::Offset);
                    list.add_partition_offset(&self.topic, *partition, next)
                });
                added.and_then(|()| self.consumer.assign(&list))
            };
            if let Err(error) = done {
                tracing::warn!(topic = %self.topic, %error, paused, "cannot stop or start fetching");
                return;
            }
            tracing::debug!(topic = %self.topic, paused, "fetching stopped or started");
        }
        self.paused = paused;
        self.idle_at = if paused { now } else { self.idle_at.max(now + stay) };
    }

    /// Whether `message` is on an owned partition at or past its position.
    fn is_due<M: Message>(&self, message: &M) -> bool {
        self.positions.next(message.partition()).is_some_and(|next| message.offset() >= next)
    }

    /// Dead-letters what does not decode, then applies the rest; a permanent failure
    /// makes it apply record by record and dead-letter the ones that keep failing. The
    /// offsets stored cover the whole batch, dead letters included.
    async fn apply<S: Sink<T>>(&self, sink: &mut S, batch: &[Raw], shutdown: &Shutdown) -> Outcome {
        let next = next_offsets(batch);
        let mut records = Vec::with_capacity(batch.len());
        for raw in batch {
            match T::decode(&raw.payload) {
                Ok(event) => records.push(Record { partition: raw.partition, offset: raw.offset, event }),
                Err(error) => {
                    if !self.dead_letter(raw, &error.to_string(), shutdown).await {
                        return Outcome::ShuttingDown;
                    }
                }
            }
        }
        match self.retry_transient(sink, &records, &next, shutdown).await {
            Outcome::Permanent(_) => {}
            other => return other,
        }
        for record in &records {
            let own = [(record.partition, record.offset + 1)];
            match self.retry_transient(sink, std::slice::from_ref(record), &own, shutdown).await {
                Outcome::Applied => {}
                Outcome::Permanent(error) => {
                    let Some(raw) = batch.iter().find(|r| r.partition == record.partition && r.offset == record.offset) else {
                        continue;
                    };
                    if !self.dead_letter(raw, &error, shutdown).await {
                        return Outcome::ShuttingDown;
                    }
                }
                other => return other,
            }
        }
        // Only offsets now: the dead letters' and the records' after them.
        match self.retry_transient(sink, &[], &next, shutdown).await {
            Outcome::Permanent(error) => {
                tracing::error!(topic = %self.topic, group = %self.group, %error, "cannot store offsets; stopping");
                Outcome::Permanent(error)
            }
            other => other,
        }
    }

    /// Applies until success, shutdown, moved offsets, or [`MAX_ATTEMPTS`] failures with
    /// the store reachable (`Permanent`); while the store is unreachable it retries with
    /// backoff for as long as it takes.
    async fn retry_transient<S: Sink<T>>(&self, sink: &mut S, records: &[Record<T>], next: &[(i32, i64)], shutdown: &Shutdown) -> Outcome {
        let mut backoff = Duration::from_millis(50);
        let mut failures = 0;
        loop {
            self.positions.turn();
            match sink.apply(records, next).await {
                Ok(Stored::Applied) => return Outcome::Applied,
                Ok(Stored::Moved) => {
                    tracing::warn!(topic = %self.topic, group = %self.group, "the sink's offsets moved; resuming from them");
                    return Outcome::Moved;
                }
                Err(error) => {
                    let unavailable = sink.is_unavailable(&error);
                    if !unavailable {
                        failures += 1;
                        if failures >= MAX_ATTEMPTS {
                            return Outcome::Permanent(format!("{error:#}"));
                        }
                    }
                    metrics::counter!("feed_consumer_apply_errors_total", "topic" => self.topic.clone(), "group" => self.group.clone())
                        .increment(1);
                    tracing::warn!(error = %format!("{error:#}"), unavailable, records = records.len(), retry_in = ?backoff, "batch failed, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Outcome::ShuttingDown,
                        _ = sleep(backoff) => {},
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Publishes `raw` to the dead-letter topic with its source and the error, retrying
    /// until the broker acknowledges; `false` if shutdown came first. A crash between the
    /// letter and the offsets' store sends the letter again on restart.
    async fn dead_letter(&self, raw: &Raw, error: &str, shutdown: &Shutdown) -> bool {
        let topic = dead_letter_topic(&self.topic);
        let (partition, offset) = (raw.partition.to_string(), raw.offset.to_string());
        loop {
            self.positions.turn();
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
            let sent = match self.dead_letter_producer() {
                Ok(producer) => producer.send(record, Duration::from_secs(5)).await.map_err(|(e, _)| e.to_string()),
                Err(error) => Err(format!("{error:#}")),
            };
            match sent {
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
                Err(send_error) => {
                    tracing::warn!(error = %send_error, "dead-letter publish failed, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = sleep(Duration::from_millis(500)) => {},
                    }
                }
            }
        }
    }

    /// The dead-letter producer, made on first use.
    fn dead_letter_producer(&self) -> anyhow::Result<&FutureProducer> {
        if let Some(producer) = self.dead_letters.get() {
            return Ok(producer);
        }
        let producer = crate::kafka::producer(&self.kafka, Duration::from_secs(30))?;
        Ok(self.dead_letters.get_or_init(|| producer))
    }

    /// One [`EVENT_LOG`] line per record, so an event can be followed by its id.
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

    /// Moves the positions past an applied batch.
    fn advance(&self, batch: &[Raw]) {
        for (partition, next) in next_offsets(batch) {
            self.positions.advance(partition, next);
        }
    }

    /// Closes the Kafka clients off the async threads, for at most [`CLOSE_TIMEOUT`]:
    /// librdkafka's close may wait for an unreachable broker. Offsets live in the sink,
    /// so giving up loses nothing.
    async fn close(self) {
        let Self { consumer, dead_letters, topic, .. } = self;
        // The last reference unless a watermark look is still under way (bounded).
        let closing = tokio::task::spawn_blocking(move || drop((consumer, dead_letters.into_inner())));
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            tracing::warn!(%topic, "broker unreachable: stopped without closing the Kafka client");
        }
    }
}

/// Resolves when `wake` changes; never if there is none (or it closed).
async fn changed(wake: &mut Option<watch::Receiver<u64>>) {
    let Some(receiver) = wake else { return std::future::pending().await };
    if receiver.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Per partition in `batch`, the offset after its last record.
fn next_offsets(batch: &[Raw]) -> Vec<(i32, i64)> {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for raw in batch {
        let entry = last.entry(raw.partition).or_insert(raw.offset);
        *entry = (*entry).max(raw.offset);
    }
    last.into_iter().map(|(p, o)| (p, o + 1)).collect()
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
            headers.iter().find(|h| h.key == "event_id").and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok()).map(str::to_string)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(partition: i32, offset: i64) -> Raw {
        Raw { partition, offset, key: None, payload: Vec::new(), event_id: None, dead_lettered: AtomicBool::new(false) }
    }

    #[test]
    fn next_offsets_are_one_past_each_partitions_last_record() {
        let batch = [raw(1, 7), raw(0, 3), raw(1, 9), raw(0, 4)];
        assert_eq!(next_offsets(&batch), vec![(0, 5), (1, 10)]);
        assert!(next_offsets(&[]).is_empty());
    }
}
