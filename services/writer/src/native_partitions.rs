//! Native partitions on demand (see `feed_ensure_partition` in the migrations); a no-op
//! on TimescaleDB hypertables, which make their own chunks.

use crate::sink::Table;
use chrono::{DateTime, Duration, DurationRound, Utc};
use sqlx::PgPool;
use std::collections::HashSet;

/// Remembers which (table, day) partitions are known to exist, so the database is asked
/// once per day of data rather than once per batch.
#[derive(Default)]
pub struct NativePartitions {
    ensured: HashSet<(&'static str, DateTime<Utc>)>,
}

impl NativePartitions {
    /// Makes sure every table a `W` writes into has partitions for `times` (its
    /// [`Table::row_times`]).
    pub async fn ensure_for<T, W: Table<T>>(&mut self, pool: &PgPool, times: Vec<DateTime<Utc>>) -> sqlx::Result<()> {
        for name in std::iter::once(W::NAME).chain(W::ALSO_PARTITIONED.iter().copied()) {
            self.ensure(pool, name, &times).await?;
        }
        Ok(())
    }

    /// Makes sure `table` has a partition for each of `times`.
    pub async fn ensure(&mut self, pool: &PgPool, table: &'static str, times: &[DateTime<Utc>]) -> sqlx::Result<()> {
        for &time in times {
            let day = time.duration_trunc(Duration::days(1)).unwrap_or(time);
            if self.ensured.insert((table, day)) {
                sqlx::query("SELECT feed_ensure_partition($1::regclass, $2)").bind(table).bind(time).execute(pool).await?;
            }
        }
        Ok(())
    }
}
