//! The writer's [`Sink`]: one transaction per batch that locks the consumer's offsets,
//! writes the rows through a [`Table`], and stores the next offsets. Once it commits,
//! the progress marks the API's read-your-writes waits on are raised in Redis.

use crate::native_partitions::NativePartitions;
use crate::offsets;
use chrono::{DateTime, Utc};
use feed_core::consumer::{first_offset, Record, Sink, Stored};
use feed_core::keys::Keys;
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::HashMap;
use std::future::Future;

/// A transaction on the writer's database.
pub type Tx<'a> = Transaction<'a, Postgres>;

/// What one stream's records become in PostgreSQL.
pub trait Table<T>: Send {
    /// The time-partitioned table the records land in (also the `table` label of
    /// `feed_writer_rows_total`).
    const NAME: &'static str;

    /// Other time-partitioned tables the rows of a record land in, with the same times.
    const ALSO_PARTITIONED: &'static [&'static str] = &[];

    /// The times of the rows `records` add to [`Table::NAME`] whose native partitions
    /// must exist (rows outside them land in the table's default partition).
    fn row_times(&self, records: &[&T]) -> Vec<DateTime<Utc>>;

    /// Writes the rows of `records` in `tx`, idempotently; the number of records written.
    fn write(&mut self, tx: &mut Tx<'_>, records: &[&T]) -> impl Future<Output = anyhow::Result<u64>> + Send;
}

/// Applies batches of one topic to PostgreSQL through `table`.
pub struct PgSink<W> {
    pool: PgPool,
    consumer: String,
    topic: String,
    table: W,
    partitions: NativePartitions,
    redis: feed_core::redis_client::Redis,
    progress_key: String,
    progress_channel: String,
}

impl<W> PgSink<W> {
    /// A sink for `consumer` (the writer's name on `topic`), publishing its progress
    /// under `keys`.
    pub fn new(pool: PgPool, consumer: &str, topic: &str, table: W, redis: feed_core::redis_client::Redis, keys: &Keys) -> Self {
        Self {
            progress_key: keys.progress(consumer, topic),
            progress_channel: keys.progress_channel(),
            pool,
            consumer: consumer.to_string(),
            topic: topic.to_string(),
            table,
            partitions: NativePartitions::default(),
            redis,
        }
    }
}

impl<T: Sync, W: Table<T>> Sink<T> for PgSink<W> {
    async fn resume_from(&mut self, partitions: &[i32]) -> anyhow::Result<HashMap<i32, i64>> {
        let mut stored = offsets::load(&self.pool, &self.consumer, &self.topic).await?;
        stored.retain(|p, _| partitions.contains(p));
        Ok(stored)
    }

    async fn apply(&mut self, records: &[Record<T>], next: &[(i32, i64)]) -> anyhow::Result<Stored> {
        let partitions: Vec<i32> = next.iter().map(|(p, _)| *p).collect();
        let rows: Vec<&T> = records.iter().map(|r| &r.event).collect();
        // Native partitions are made outside the batch's transaction (a no-op on hypertables).
        self.partitions.ensure_for::<T, W>(&self.pool, self.table.row_times(&rows)).await?;
        let mut tx = self.pool.begin().await?;
        let stored = offsets::lock(&mut tx, &self.consumer, &self.topic, &partitions).await?;
        if moved(&stored, records, next) {
            tracing::warn!(consumer = %self.consumer, topic = %self.topic, ?stored, "another writer applied these partitions further");
            return Ok(Stored::Moved);
        }
        let written = if rows.is_empty() { 0 } else { self.table.write(&mut tx, &rows).await? };
        offsets::store(&mut *tx, &self.consumer, &self.topic, next, true).await?;
        tx.commit().await?;
        metrics::counter!("feed_writer_rows_total", "table" => W::NAME).increment(written);
        if let Err(error) = feed_core::progress::mark_applied(&mut self.redis, &self.progress_key, &self.progress_channel, next).await {
            // Only read-your-writes waits are affected; they time out and say so.
            tracing::warn!(%error, "could not publish progress");
        }
        Ok(Stored::Applied)
    }

    fn is_unavailable(&self, error: &anyhow::Error) -> bool {
        crate::is_unavailable(error)
    }
}

/// Writes `records` through `table` in a transaction of their own, without offsets: how
/// tools load a data set straight into the tables, as the writer would have (same rows,
/// same idempotence), without sending it through the broker. Returns the records written.
pub async fn write_directly<T: Sync, W: Table<T>>(pool: &PgPool, table: &mut W, records: &[&T]) -> anyhow::Result<u64> {
    NativePartitions::default().ensure_for::<T, W>(pool, table.row_times(records)).await?;
    let mut tx = pool.begin().await?;
    let written = table.write(&mut tx, records).await?;
    tx.commit().await?;
    Ok(written)
}

/// Whether the stored offsets are past where this batch starts on some partition: then
/// someone else applied records this consumer was about to apply.
fn moved<T>(stored: &HashMap<i32, i64>, records: &[Record<T>], next: &[(i32, i64)]) -> bool {
    next.iter().any(|(partition, next)| stored.get(partition).is_some_and(|s| *s > first_offset(records, *partition, *next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64) -> Record<()> {
        Record { partition, offset, event: () }
    }

    #[test]
    fn a_batch_starting_at_or_past_the_stored_offset_has_not_moved() {
        let stored: HashMap<i32, i64> = [(0, 5), (1, 0)].into_iter().collect();
        assert!(!moved(&stored, &[record(0, 5), record(0, 6)], &[(0, 7)]));
        assert!(!moved(&stored, &[record(0, 9)], &[(0, 10)]), "a gap (dead letters, compaction) is fine");
        assert!(moved(&stored, &[record(0, 4), record(0, 5)], &[(0, 6)]));
        assert!(!moved::<()>(&stored, &[], &[(0, 5)]));
        assert!(moved::<()>(&stored, &[], &[(0, 4)]));
        assert!(!moved(&HashMap::new(), &[record(2, 0)], &[(2, 1)]));
    }
}
