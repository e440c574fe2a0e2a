//! Generic events into the `generic_events` hypertable; re-delivery is absorbed by the
//! unique `(id, time)`.

use crate::partitions::Partitions;
use chrono::{DateTime, Utc};
use feed_core::consumer::{BatchHandler, Record};
use feed_core::streams::LoggedEvent;
use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

/// Writes generic events.
pub struct EventsWriter {
    pool: PgPool,
    partitions: Partitions,
}

impl EventsWriter {
    /// A writer on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, partitions: Partitions::default() }
    }
}

impl BatchHandler<LoggedEvent> for EventsWriter {
    fn is_permanent(&self, error: &anyhow::Error) -> bool {
        crate::is_permanent(error)
    }

    async fn apply(&mut self, records: &[Record<LoggedEvent>]) -> anyhow::Result<()> {
        let events: Vec<&LoggedEvent> = records.iter().map(|r| &r.event).collect();
        let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.created_at).collect();
        self.partitions.ensure(&self.pool, "generic_events", &times).await?;
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let components: Vec<&str> = events.iter().map(|e| e.component.as_str()).collect();
        let data: Vec<Json<&serde_json::Value>> = events.iter().map(|e| Json(&e.data)).collect();
        let emails: Vec<&str> = events.iter().map(|e| e.email.as_str()).collect();
        let environments: Vec<&str> = events.iter().map(|e| e.environment.as_str()).collect();
        let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
        sqlx::query(
            "INSERT INTO generic_events (time, id, component, data, email, environment, message)
             SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[], $7::text[])
             ON CONFLICT DO NOTHING",
        )
        .bind(times)
        .bind(ids)
        .bind(components)
        .bind(data)
        .bind(emails)
        .bind(environments)
        .bind(messages)
        .execute(&self.pool)
        .await?;
        metrics::counter!("feed_writer_rows_total", "table" => "generic_events").increment(records.len() as u64);
        Ok(())
    }
}
