//! Generic events into the `generic_events` hypertable; re-delivery is absorbed by the
//! unique `(id, time)`.

use crate::sink::{Table, Tx};
use chrono::{DateTime, Utc};
use feed_core::streams::GenericEvent;
use sqlx::types::Json;
use uuid::Uuid;

/// Writes generic events.
#[derive(Default)]
pub struct GenericEventsTable;

impl Table<GenericEvent> for GenericEventsTable {
    const NAME: &'static str = "generic_events";

    fn row_times(&self, events: &[&GenericEvent]) -> Vec<DateTime<Utc>> {
        events.iter().map(|e| e.created_at).collect()
    }

    async fn write(&mut self, tx: &mut Tx<'_>, events: &[&GenericEvent]) -> anyhow::Result<u64> {
        let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.created_at).collect();
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
        .execute(&mut **tx)
        .await?;
        Ok(events.len() as u64)
    }
}
