//! How one batch of feed events lands in PostgreSQL: one transaction, set-based
//! inserts, every statement idempotent.

use crate::partitions::Partitions;
use chrono::{DateTime, Utc};
use feed_core::consumer::{BatchHandler, Record};
use feed_core::event::{Event, EventType};
use sqlx::types::Json;
use sqlx::PgPool;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Writes feed events into the `activities` hypertable and the projections.
pub struct FeedWriter {
    pool: PgPool,
    partitions: Partitions,
}

impl FeedWriter {
    /// A writer on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, partitions: Partitions::default() }
    }
}

impl BatchHandler<Event> for FeedWriter {
    fn is_permanent(&self, error: &anyhow::Error) -> bool {
        crate::is_permanent(error)
    }

    async fn apply(&mut self, records: &[Record<Event>]) -> anyhow::Result<()> {
        let events: Vec<&Event> = records.iter().map(|r| &r.event).collect();
        let activities: Vec<&Event> = events.iter().copied().filter(|e| e.kind.verb().is_some()).collect();
        let times: Vec<DateTime<Utc>> = activities.iter().map(|e| e.time).collect();
        self.partitions.ensure(&self.pool, "activities", &times).await?;

        let mut tx = self.pool.begin().await?;
        insert_users(&mut tx, &events).await?;
        rotate_keys(&mut tx, &events).await?;
        insert_objects(&mut tx, &events).await?;
        apply_follows(&mut tx, &events).await?;
        insert_activities(&mut tx, &activities).await?;
        tx.commit().await?;
        metrics::counter!("feed_writer_rows_total", "table" => "activities").increment(activities.len() as u64);
        Ok(())
    }
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

async fn insert_users(tx: &mut Tx<'_>, events: &[&Event]) -> sqlx::Result<()> {
    let created: Vec<&&Event> = events.iter().filter(|e| e.kind == EventType::UserCreated).collect();
    if created.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = created.iter().map(|e| e.actor.id).collect();
    let names: Vec<&str> = created.iter().map(|e| e.actor.name.as_str()).collect();
    let hashes: Vec<&str> = created.iter().map(|e| e.payload_str("key_hash").unwrap_or_default()).collect();
    let times: Vec<DateTime<Utc>> = created.iter().map(|e| e.time).collect();
    sqlx::query(
        "INSERT INTO users (id, name, key_hash, created_at, updated_at)
         SELECT id, name, key_hash, t, t
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, name, key_hash, t)
         ON CONFLICT DO NOTHING",
    )
    .bind(ids)
    .bind(names)
    .bind(hashes)
    .bind(times)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A user's rotations share the user's partition, so within a batch the last one wins;
/// `updated_at` only moves forward, so replaying an older rotation changes nothing.
async fn rotate_keys(tx: &mut Tx<'_>, events: &[&Event]) -> sqlx::Result<()> {
    let mut last: BTreeMap<i64, (&str, DateTime<Utc>)> = BTreeMap::new();
    for event in events.iter().filter(|e| e.kind == EventType::KeyRotated) {
        if let Some(hash) = event.payload_str("key_hash") {
            last.insert(event.actor.id, (hash, event.time));
        }
    }
    if last.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = last.keys().copied().collect();
    let hashes: Vec<&str> = last.values().map(|(hash, _)| *hash).collect();
    let times: Vec<DateTime<Utc>> = last.values().map(|(_, time)| *time).collect();
    sqlx::query(
        "UPDATE users SET key_hash = r.key_hash, updated_at = r.t
         FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[]) AS r(id, key_hash, t)
         WHERE users.id = r.id AND users.updated_at <= r.t",
    )
    .bind(ids)
    .bind(hashes)
    .bind(times)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_objects(tx: &mut Tx<'_>, events: &[&Event]) -> sqlx::Result<()> {
    let posts: Vec<(&Event, feed_core::event::ObjectRef)> = events
        .iter()
        .filter(|e| e.kind == EventType::Post)
        .filter_map(|e| e.object.map(|o| (*e, o)))
        .collect();
    if posts.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = posts.iter().map(|(_, o)| o.kind.as_str()).collect();
    let ids: Vec<i64> = posts.iter().map(|(_, o)| o.id).collect();
    let owners: Vec<i64> = posts.iter().map(|(e, _)| e.actor.id).collect();
    let contents: Vec<&str> = posts.iter().map(|(e, _)| e.payload_str("content").unwrap_or_default()).collect();
    let times: Vec<DateTime<Utc>> = posts.iter().map(|(e, _)| e.time).collect();
    sqlx::query(
        "INSERT INTO objects (kind, id, owner_id, content, created_at)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[])
         ON CONFLICT DO NOTHING",
    )
    .bind(kinds)
    .bind(ids)
    .bind(owners)
    .bind(contents)
    .bind(times)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Follows and unfollows of the same pair come in offset order (same actor, same
/// partition), so within a batch the last one decides the pair's state.
async fn apply_follows(tx: &mut Tx<'_>, events: &[&Event]) -> sqlx::Result<()> {
    let mut last: BTreeMap<(i64, i64), (bool, DateTime<Utc>)> = BTreeMap::new();
    for event in events {
        let follows = match event.kind {
            EventType::Follow => true,
            EventType::Unfollow => false,
            _ => continue,
        };
        if let Some(target) = &event.target {
            last.insert((event.actor.id, target.id), (follows, event.time));
        }
    }
    let (mut add_from, mut add_to, mut add_since, mut del_from, mut del_to) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((follower, followee), (follows, time)) in last {
        if follows {
            add_from.push(follower);
            add_to.push(followee);
            add_since.push(time);
        } else {
            del_from.push(follower);
            del_to.push(followee);
        }
    }
    if !add_from.is_empty() {
        sqlx::query(
            "INSERT INTO follows (follower_id, followee_id, since)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::timestamptz[])
             ON CONFLICT DO NOTHING",
        )
        .bind(add_from)
        .bind(add_to)
        .bind(add_since)
        .execute(&mut **tx)
        .await?;
    }
    if !del_from.is_empty() {
        sqlx::query(
            "DELETE FROM follows f USING UNNEST($1::bigint[], $2::bigint[]) AS d(follower_id, followee_id)
             WHERE f.follower_id = d.follower_id AND f.followee_id = d.followee_id",
        )
        .bind(del_from)
        .bind(del_to)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_activities(tx: &mut Tx<'_>, events: &[&Event]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.time).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let actor_ids: Vec<i64> = events.iter().map(|e| e.actor.id).collect();
    let actor_names: Vec<&str> = events.iter().map(|e| e.actor.name.as_str()).collect();
    let verbs: Vec<&str> = events.iter().map(|e| e.kind.verb().unwrap_or_default()).collect();
    let object_types: Vec<Option<&str>> = events.iter().map(|e| e.object.map(|o| o.kind.as_str())).collect();
    let object_ids: Vec<Option<i64>> = events.iter().map(|e| e.object.map(|o| o.id)).collect();
    let target_ids: Vec<Option<i64>> = events.iter().map(|e| e.target.as_ref().map(|t| t.id)).collect();
    let target_names: Vec<Option<&str>> = events.iter().map(|e| e.target.as_ref().map(|t| t.name.as_str())).collect();
    let payloads: Vec<Json<&serde_json::Value>> = events.iter().map(|e| Json(&e.payload)).collect();
    sqlx::query(
        "INSERT INTO activities
            (time, event_id, actor_id, actor_name, verb, object_type, object_id, target_id, target_name, payload)
         SELECT t, id, a, an, v, ot, oi, ti, tn, CASE WHEN jsonb_typeof(p) = 'object' THEN p ELSE '{}'::jsonb END
         FROM UNNEST($1::timestamptz[], $2::uuid[], $3::bigint[], $4::text[], $5::text[],
                     $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::jsonb[])
              AS r(t, id, a, an, v, ot, oi, ti, tn, p)
         ON CONFLICT DO NOTHING",
    )
    .bind(times)
    .bind(ids)
    .bind(actor_ids)
    .bind(actor_names)
    .bind(verbs)
    .bind(object_types)
    .bind(object_ids)
    .bind(target_ids)
    .bind(target_names)
    .bind(payloads)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
