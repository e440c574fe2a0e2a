//! How one batch of feed events lands in PostgreSQL: set-based inserts in the batch's
//! transaction, every statement idempotent.
//!
//! The bulk of a batch — its posts' `objects` rows and its `activities` rows — is first
//! tried as plain inserts in a savepoint: the batch's offsets are stored in the same
//! transaction, so a crash never redelivers an applied batch, and a row can already be
//! there only after a replay or a producer's duplicate. Then (a unique violation) the
//! savepoint is rolled back and the same rows are inserted skipping what exists.
//! `ON CONFLICT DO NOTHING` on every batch cost a third of the writer's time.

use crate::sink::{Table, Tx};
use chrono::{DateTime, Utc};
use feed_core::event::{Event, EventType};
use sqlx::types::Json;
use sqlx::Connection;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Writes feed events into the `activities` hypertable and the projections.
#[derive(Default)]
pub struct FeedTable;

/// The events that are activities (shown in feeds and stored in `activities`).
fn activities<'a>(events: &[&'a Event]) -> Vec<&'a Event> {
    events.iter().copied().filter(|e| e.verb().is_some()).collect()
}

impl Table<Event> for FeedTable {
    const NAME: &'static str = "activities";

    fn row_times(&self, events: &[&Event]) -> Vec<DateTime<Utc>> {
        activities(events).iter().map(|e| e.time).collect()
    }

    async fn write(&mut self, tx: &mut Tx<'_>, events: &[&Event]) -> anyhow::Result<u64> {
        let activities = activities(events);
        insert_users(tx, events).await?;
        rotate_keys(tx, events).await?;
        apply_follows(tx, events).await?;
        let mut attempt = (**tx).begin().await?;
        match insert_rows(&mut attempt, events, &activities, Existing::Fail).await {
            Ok(()) => attempt.commit().await?,
            Err(error) if is_unique_violation(&error) => {
                attempt.rollback().await?;
                insert_rows(tx, events, &activities, Existing::Skip).await?;
            }
            Err(error) => return Err(error.into()),
        }
        apply_deletes(tx, events).await?;
        Ok(activities.len() as u64)
    }
}

/// What an insert does with a row whose key already exists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Fail with a unique violation (the fast path).
    Fail,
    /// Leave it and insert the rest.
    Skip,
}

impl Existing {
    fn clause(self) -> &'static str {
        match self {
            Existing::Fail => "",
            Existing::Skip => "ON CONFLICT DO NOTHING",
        }
    }
}

/// The posts' objects, then the activities.
async fn insert_rows(tx: &mut Tx<'_>, events: &[&Event], activities: &[&Event], existing: Existing) -> sqlx::Result<()> {
    insert_objects(tx, events, existing).await?;
    insert_activities(tx, activities, existing).await
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

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

async fn insert_objects(tx: &mut Tx<'_>, events: &[&Event], existing: Existing) -> sqlx::Result<()> {
    let posts: Vec<(&Event, feed_core::event::ObjectRef)> =
        events.iter().filter(|e| e.kind == EventType::Post).filter_map(|e| e.object.map(|o| (*e, o))).collect();
    if posts.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = posts.iter().map(|(_, o)| o.kind.as_str()).collect();
    let ids: Vec<i64> = posts.iter().map(|(_, o)| o.id).collect();
    let owners: Vec<i64> = posts.iter().map(|(e, _)| e.actor.id).collect();
    let contents: Vec<&str> = posts.iter().map(|(e, _)| e.payload_str("content").unwrap_or_default()).collect();
    let times: Vec<DateTime<Utc>> = posts.iter().map(|(e, _)| e.time).collect();
    sqlx::query(&format!(
        "INSERT INTO objects (kind, id, owner_id, content, created_at)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::timestamptz[]) AS r(k, i, o, c, t)
         WHERE NOT EXISTS (SELECT 1 FROM deleted_objects d WHERE d.kind = r.k AND d.id = r.i)
         {}",
        existing.clause()
    ))
    .bind(kinds)
    .bind(ids)
    .bind(owners)
    .bind(contents)
    .bind(times)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Each pair ends in the state of its newest event by (time, event id), whatever order
/// the events are applied in: `follow_versions` remembers the newest applied, and only
/// a newer event changes `follows`.
async fn apply_follows(tx: &mut Tx<'_>, events: &[&Event]) -> sqlx::Result<()> {
    let mut newest: BTreeMap<(i64, i64), (bool, DateTime<Utc>, Uuid)> = BTreeMap::new();
    for event in events {
        let follows = match event.kind {
            EventType::Follow => true,
            EventType::Unfollow => false,
            _ => continue,
        };
        let Some(target) = &event.target else { continue };
        let version = (follows, event.time, event.event_id);
        newest
            .entry((event.actor.id, target.id))
            .and_modify(|v| {
                if (v.1, v.2) < (version.1, version.2) {
                    *v = version;
                }
            })
            .or_insert(version);
    }
    if newest.is_empty() {
        return Ok(());
    }
    let (mut followers, mut followees, mut following, mut times, mut ids) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((follower, followee), (follows, time, id)) in newest {
        followers.push(follower);
        followees.push(followee);
        following.push(follows);
        times.push(time);
        ids.push(id);
    }
    sqlx::query(
        "WITH won AS (
             INSERT INTO follow_versions AS v (follower_id, followee_id, following, time, event_id)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bool[], $4::timestamptz[], $5::uuid[])
             ON CONFLICT (follower_id, followee_id) DO UPDATE
                 SET following = EXCLUDED.following, time = EXCLUDED.time, event_id = EXCLUDED.event_id
                 WHERE (v.time, v.event_id) < (EXCLUDED.time, EXCLUDED.event_id)
             RETURNING v.follower_id, v.followee_id, v.following, v.time
         ), added AS (
             INSERT INTO follows (follower_id, followee_id, since)
             SELECT follower_id, followee_id, time FROM won WHERE following
             ON CONFLICT DO NOTHING
         )
         DELETE FROM follows f USING won w
         WHERE NOT w.following AND f.follower_id = w.follower_id AND f.followee_id = w.followee_id",
    )
    .bind(followers)
    .bind(followees)
    .bind(following)
    .bind(times)
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_activities(tx: &mut Tx<'_>, events: &[&Event], existing: Existing) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.time).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let actor_ids: Vec<i64> = events.iter().map(|e| e.actor.id).collect();
    let actor_names: Vec<&str> = events.iter().map(|e| e.actor.name.as_str()).collect();
    let verbs: Vec<&str> = events.iter().map(|e| e.verb().unwrap_or_default()).collect();
    let object_types: Vec<Option<&str>> = events.iter().map(|e| e.object.map(|o| o.kind.as_str())).collect();
    let object_ids: Vec<Option<i64>> = events.iter().map(|e| e.object.map(|o| o.id)).collect();
    let target_ids: Vec<Option<i64>> = events.iter().map(|e| e.target.as_ref().map(|t| t.id)).collect();
    let target_names: Vec<Option<&str>> = events.iter().map(|e| e.target.as_ref().map(|t| t.name.as_str())).collect();
    let payloads: Vec<Json<&serde_json::Value>> = events.iter().map(|e| Json(&e.payload)).collect();
    sqlx::query(&format!(
        "INSERT INTO activities
            (time, event_id, actor_id, actor_name, verb, object_type, object_id, target_id, target_name, payload)
         SELECT t, id, a, an, v, ot, oi, ti, tn, CASE WHEN jsonb_typeof(p) = 'object' THEN p ELSE '{{}}'::jsonb END
         FROM UNNEST($1::timestamptz[], $2::uuid[], $3::bigint[], $4::text[], $5::text[],
                     $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::jsonb[])
              AS r(t, id, a, an, v, ot, oi, ti, tn, p)
         WHERE r.oi IS NULL OR NOT EXISTS (SELECT 1 FROM deleted_objects d WHERE d.kind = r.ot AND d.id = r.oi)
         {}",
        existing.clause()
    ))
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

/// Deletes objects with their posts, likes and shares, leaving a tombstone that keeps
/// them from coming back (see `insert_objects` and `insert_activities`). Runs after the
/// batch's inserts, so a like in the same batch as its object's delete goes too.
async fn apply_deletes(tx: &mut Tx<'_>, events: &[&Event]) -> sqlx::Result<()> {
    let deleted: Vec<(&Event, feed_core::event::ObjectRef)> =
        events.iter().filter(|e| e.kind == EventType::Deleted).filter_map(|e| e.object.map(|o| (*e, o))).collect();
    if deleted.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = deleted.iter().map(|(_, o)| o.kind.as_str()).collect();
    let ids: Vec<i64> = deleted.iter().map(|(_, o)| o.id).collect();
    let times: Vec<DateTime<Utc>> = deleted.iter().map(|(e, _)| e.time).collect();
    sqlx::query(
        "WITH gone AS (
             INSERT INTO deleted_objects (kind, id, deleted_at)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::timestamptz[])
             ON CONFLICT DO NOTHING
         ), objects_gone AS (
             DELETE FROM objects o USING UNNEST($1::text[], $2::bigint[]) AS r(k, i)
             WHERE o.kind = r.k AND o.id = r.i
         )
         DELETE FROM activities a USING UNNEST($1::text[], $2::bigint[]) AS r(k, i)
         WHERE a.object_type = r.k AND a.object_id = r.i",
    )
    .bind(kinds)
    .bind(ids)
    .bind(times)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
