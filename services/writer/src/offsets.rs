//! The writer's offsets in PostgreSQL (`consumer_offsets`): where each consumer resumes,
//! stored in the transaction that writes the rows.

use sqlx::{PgExecutor, Postgres, Transaction};
use std::collections::HashMap;

/// Per partition, the next offset `consumer` has not applied on `topic`; partitions it
/// never applied are absent. Also read by the fan-out's rebuild (inside its snapshot)
/// and by `feedctl`.
pub async fn load<'e>(db: impl PgExecutor<'e>, consumer: &str, topic: &str) -> sqlx::Result<HashMap<i32, i64>> {
    let rows: Vec<(i32, i64)> = sqlx::query_as("SELECT partition, next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2")
        .bind(consumer)
        .bind(topic)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Like [`load`] for `partitions`, but locks the rows (creating missing ones at 0) until `tx` ends, so two
/// writers that both think they own a partition apply it one after the other, and the
/// second sees how far the first got.
pub async fn lock(tx: &mut Transaction<'_, Postgres>, consumer: &str, topic: &str, partitions: &[i32]) -> sqlx::Result<HashMap<i32, i64>> {
    let mut sorted = partitions.to_vec();
    sorted.sort_unstable(); // one lock order everywhere: no deadlocks between writers
    sqlx::query(
        "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset)
         SELECT $1, $2, p, 0 FROM UNNEST($3::int[]) AS p ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(topic)
    .bind(&sorted)
    .execute(&mut **tx)
    .await?;
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM consumer_offsets
         WHERE consumer = $1 AND topic = $2 AND partition = ANY($3) ORDER BY partition FOR UPDATE",
    )
    .bind(consumer)
    .bind(topic)
    .bind(&sorted)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Sets where `consumer` resumes on each partition of `offsets`. Inside a transaction
/// after [`lock`] it only moves forward; from `feedctl replay` it may move anywhere.
pub async fn store<'e>(
    db: impl PgExecutor<'e>,
    consumer: &str,
    topic: &str,
    offsets: &[(i32, i64)],
    forward_only: bool,
) -> sqlx::Result<()> {
    let (partitions, next): (Vec<i32>, Vec<i64>) = offsets.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO consumer_offsets AS c (consumer, topic, partition, next_offset)
         SELECT $1, $2, p, n FROM UNNEST($3::int[], $4::bigint[]) AS o(p, n)
         ON CONFLICT (consumer, topic, partition) DO UPDATE
         SET next_offset = CASE WHEN $5 THEN greatest(c.next_offset, EXCLUDED.next_offset) ELSE EXCLUDED.next_offset END,
             updated_at = now()",
    )
    .bind(consumer)
    .bind(topic)
    .bind(partitions)
    .bind(next)
    .bind(forward_only)
    .execute(db)
    .await?;
    Ok(())
}
