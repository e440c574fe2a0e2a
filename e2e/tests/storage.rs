//! How the time-partitioned tables are stored (TimescaleDB hypertables, or native
//! partitions where TimescaleDB cannot be used), retention on both, and chunk exclusion
//! in the product's own queries.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use chrono::{DateTime, TimeDelta, Utc};
use e2e::{daemons, Stack, StackOptions};
use feed_core::activities::{self, Verbs};
use feed_core::db::Storage;
use feed_core::generic_events::Filter;
use feed_core::streams::{AnalyticsHit, GenericEvent, HitKind};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use writer::retention::Retention;

const TIME_TABLES: [&str; 4] = ["activities", "generic_events", "analytics_hits", "analytics_hourly_users"];

async fn start(native_partitions: bool) -> Stack {
    Stack::start_with(StackOptions { demo_users: true, native_partitions, ..StackOptions::default() }).await
}

/// Whether the shared PostgreSQL can create TimescaleDB (installed and preloaded).
async fn timescaledb_usable(db: &PgPool) -> bool {
    let preloaded: String = sqlx::query_scalar("SHOW shared_preload_libraries").fetch_one(db).await.unwrap();
    let available: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')").fetch_one(db).await.unwrap();
    preloaded.contains("timescaledb") && available
}

/// How `table` is stored: "hypertable", "partitioned" or something else.
async fn kind_of(db: &PgPool, table: &str) -> String {
    let partitioned: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = $1::regclass)")
        .bind(table)
        .fetch_one(db)
        .await
        .unwrap();
    if partitioned {
        return "partitioned".into();
    }
    let timescaledb: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')").fetch_one(db).await.unwrap();
    if !timescaledb {
        return "plain".into();
    }
    let hypertable: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = $1)")
            .bind(table)
            .fetch_one(db)
            .await
            .unwrap();
    if hypertable { "hypertable" } else { "plain" }.into()
}

/// The chunks (hypertable) or partitions (native, the DEFAULT one included) of `table`.
async fn pieces(db: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass").bind(table).fetch_one(db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrations_use_hypertables_where_timescaledb_can_be_created_and_native_partitions_when_asked() {
    let stack = start(false).await;
    let usable = timescaledb_usable(&stack.db).await;
    if std::env::var("FEED_TEST_TIMESCALEDB").is_ok_and(|v| v == "required") {
        assert!(usable, "the test command installed TimescaleDB, yet PostgreSQL cannot create it");
    }
    let native = std::env::var("FEED_TEST_STORAGE").is_ok_and(|s| s == "native");
    let expected = if usable && !native { Storage::Hypertables } else { Storage::NativePartitions };
    assert_eq!(stack.storage, expected);
    let kind = if expected == Storage::Hypertables { "hypertable" } else { "partitioned" };
    for table in TIME_TABLES {
        assert_eq!(kind_of(&stack.db, table).await, kind, "{table}");
    }
    stack.stop().await;

    let stack = start(true).await;
    assert_eq!(stack.storage, Storage::NativePartitions);
    for table in TIME_TABLES {
        assert_eq!(kind_of(&stack.db, table).await, "partitioned", "{table}");
    }
    // The writer makes weekly partitions as rows arrive: nothing lands in the default.
    let (status, body) = stack.post("/post", "abc123", json!({"type": "post", "content": "native"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let in_default: i64 = sqlx::query_scalar("SELECT count(*) FROM activities_default").fetch_one(&stack.db).await.unwrap();
    assert_eq!((in_default, pieces(&stack.db, "activities").await), (0, 2));
    stack.stop().await;
}

/// A PostgreSQL where TimescaleDB is installed but not preloaded: `CREATE EXTENSION`
/// fails there, and the migrations must fall back rather than fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timescaledb_installed_but_not_preloaded_falls_back_to_native_partitions() {
    let postgres = daemons::Postgres::start_without_timescaledb();
    let stack = Stack::start_with(StackOptions { postgres_url: Some(postgres.url()), ..StackOptions::default() }).await;
    assert_eq!(stack.storage, Storage::NativePartitions);
    let extension: Option<String> =
        sqlx::query_scalar("SELECT extname::text FROM pg_extension WHERE extname = 'timescaledb'").fetch_optional(&stack.db).await.unwrap();
    assert_eq!(extension, None);
    let (status, body) = stack.post("/post", "abc123", json!({"type": "post", "content": "fallback"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, feed) = stack.get("/feed/my", Some("abc123")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&feed["my_feed"][0]["actor_name"], &feed["my_feed"][0]["verb"]), (&json!("ivan"), &json!("post")), "{feed}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_hypertables() {
    retention_drops_whole_chunks_and_keeps_current_data_and_rollups(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_native_partitions() {
    retention_drops_whole_chunks_and_keeps_current_data_and_rollups(true).await;
}

fn old_event(created_at: DateTime<Utc>, message: &str) -> GenericEvent {
    let mut event = GenericEvent::new("old".into(), json!({}), "old@example.com".into(), "production".into(), message.into());
    event.created_at = created_at;
    event
}

/// Writes `hits` as the writer does, keeping (when `keep` is set) only those inside it.
async fn write_hits(db: &PgPool, hits: &[AnalyticsHit], keep: Option<TimeDelta>) {
    let window = feed_core::config::TimeWindow { max_age: TimeDelta::hours(168), max_ahead: TimeDelta::minutes(60) };
    let mut table = writer::analytics::AnalyticsTable::new(window, keep);
    writer::sink::write_directly(db, &mut table, &hits.iter().collect::<Vec<_>>()).await.unwrap();
}

/// Makes sure native partitions exist for `times` (a no-op on hypertables): the writer
/// makes them only for times the API accepts.
async fn ensure_partitions(db: &PgPool, table: &str, times: &[DateTime<Utc>]) {
    sqlx::query("SELECT feed_ensure_partition($1::regclass, t) FROM UNNEST($2::timestamptz[]) t")
        .bind(table)
        .bind(times)
        .execute(db)
        .await
        .unwrap();
}

async fn rollups(db: &PgPool) -> Vec<(DateTime<Utc>, i64, i64, i64)> {
    sqlx::query_as("SELECT hour, unique_users, clicks, impressions FROM analytics_hourly ORDER BY hour").fetch_all(db).await.unwrap()
}

async fn count(db: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

async fn retention_drops_whole_chunks_and_keeps_current_data_and_rollups(native: bool) {
    let stack = start(native).await;
    let db = &stack.db;
    let now = Utc::now();

    // Current data, through the API and the pipeline.
    let (status, body) = stack
        .post_anonymous(
            "/events",
            &json!({"component": "c", "data": {}, "email": "new@example.com", "environment": "production", "message": "kept"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack.post("/post", "abc123", json!({"type": "post", "content": "kept"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (ago, user, event) in [(0, "u1", "click"), (0, "u2", "impression"), (3, "u1", "click")] {
        let ts = (now - TimeDelta::days(ago)).timestamp_millis();
        let (status, _) = stack.send_text(reqwest::Method::POST, &format!("/analytics?timestamp={ts}&user={user}&event={event}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    // Old data, as earlier writers left it: events of 120 and 200 days ago, hits of 20
    // and 40 days ago (with their rollups), an activity of 400 days ago.
    let old_events: Vec<GenericEvent> = [120, 200].iter().map(|d| old_event(now - TimeDelta::days(*d), &format!("{d} days old"))).collect();
    ensure_partitions(db, "generic_events", &old_events.iter().map(|e| e.created_at).collect::<Vec<_>>()).await;
    let mut table = writer::generic_events::GenericEventsTable;
    writer::sink::write_directly(db, &mut table, &old_events.iter().collect::<Vec<_>>()).await.unwrap();
    let old_hits: Vec<AnalyticsHit> =
        [20, 40].iter().map(|d| AnalyticsHit::new(now - TimeDelta::days(*d), format!("old{d}"), HitKind::Click)).collect();
    let hit_times: Vec<DateTime<Utc>> = old_hits.iter().map(|h| h.timestamp).collect();
    ensure_partitions(db, "analytics_hits", &hit_times).await;
    ensure_partitions(db, "analytics_hourly_users", &hit_times).await;
    write_hits(db, &old_hits, None).await;
    let ancient = now - TimeDelta::days(400);
    ensure_partitions(db, "activities", &[ancient]).await;
    sqlx::query("INSERT INTO activities (time, event_id, actor_id, actor_name, verb) VALUES ($1, gen_random_uuid(), 1, 'ivan', 'post')")
        .bind(ancient)
        .execute(db)
        .await
        .unwrap();

    let rollups_before = rollups(db).await;
    assert_eq!(rollups_before.len(), 4, "{rollups_before:?}");
    let pieces_before: Vec<i64> = futures::future::join_all(TIME_TABLES.map(|t| pieces(db, t))).await;
    let current_hour = now.timestamp_millis() - now.timestamp_millis() % 3_600_000;
    let (_, counts_before) = stack.send_text(reqwest::Method::GET, &format!("/analytics?timestamp={current_hour}")).await;

    let dropped = writer::retention::run(db, &Retention::default(), now).await.unwrap().expect("no other run");
    let dropped: std::collections::HashMap<&str, i32> = dropped.into_iter().collect();
    assert_eq!(dropped.get("activities"), None, "activities are kept by default");
    for table in ["generic_events", "analytics_hits", "analytics_hourly_users"] {
        assert_eq!(dropped[table], 2, "{table}: one chunk or partition per old batch");
    }

    // Old rows gone, by whole chunks; current ones and every hourly count intact.
    assert_eq!(count(db, "SELECT count(*) FROM generic_events WHERE time < now() - interval '100 days'").await, 0);
    assert_eq!(count(db, "SELECT count(*) FROM generic_events WHERE time > now() - interval '1 day'").await, 1);
    assert_eq!(count(db, "SELECT count(*) FROM analytics_hits WHERE time < now() - interval '10 days'").await, 0);
    assert_eq!(count(db, "SELECT count(*) FROM analytics_hits").await, 3);
    assert_eq!(count(db, "SELECT count(*) FROM analytics_hourly_users WHERE time < now() - interval '10 days'").await, 0);
    assert_eq!(count(db, "SELECT count(*) FROM activities").await, 2, "the 400-day-old activity and today's post");
    assert_eq!(rollups(db).await, rollups_before, "the hourly counts stay, of dropped hours too");
    let pieces_after: Vec<i64> = futures::future::join_all(TIME_TABLES.map(|t| pieces(db, t))).await;
    assert_eq!(pieces_after[0], pieces_before[0]);
    for i in 1..4 {
        assert_eq!(pieces_after[i], pieces_before[i] - 2, "{}", TIME_TABLES[i]);
    }
    let (status, counts_after) = stack.send_text(reqwest::Method::GET, &format!("/analytics?timestamp={current_hour}")).await;
    assert_eq!((status, counts_after), (StatusCode::OK, counts_before));
    let (_, events) = stack.get("/events?email=new@example.com", None).await;
    assert_eq!(events["events"].as_array().map(Vec::len), Some(1), "{events}");

    // A replay of a dropped hour's hit is not counted again, and a second run drops nothing.
    write_hits(db, &old_hits, Some(TimeDelta::days(7))).await;
    assert_eq!(rollups(db).await, rollups_before);
    assert_eq!(count(db, "SELECT count(*) FROM analytics_hits").await, 3);
    let again = writer::retention::run(db, &Retention::default(), now).await.unwrap().expect("no other run");
    assert!(again.iter().all(|(_, n)| *n == 0), "{again:?}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_exclusion_on_hypertables() {
    time_bounded_reads_touch_only_their_chunks(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_pruning_on_native_partitions() {
    time_bounded_reads_touch_only_their_chunks(true).await;
}

/// With half a year of activities and 90 days of generic events (26 and 13 weekly
/// chunks), the routes' own queries read only the chunks their time bounds reach.
async fn time_bounded_reads_touch_only_their_chunks(native: bool) {
    let stack = start(native).await;
    let db = &stack.db;
    let weeks_of = |n: i64| (0..n).map(|w| Utc::now() - TimeDelta::weeks(w)).collect::<Vec<_>>();
    ensure_partitions(db, "activities", &weeks_of(27)).await;
    ensure_partitions(db, "generic_events", &weeks_of(14)).await;
    // Users 1-3 (the demo users) post every 30 minutes for 26 weeks; an event every 10 minutes for 13.
    sqlx::query(
        "INSERT INTO activities (time, event_id, actor_id, actor_name, verb, object_type, object_id)
         SELECT now() - make_interval(mins => i * 30), gen_random_uuid(), 1 + i % 3, 'ivan', 'post', 'post', i
         FROM generate_series(1, 26 * 7 * 48) i",
    )
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO generic_events (time, id, component, data, email, environment, message)
         SELECT now() - make_interval(mins => i * 10), gen_random_uuid(), 'c' || (i % 20), '{}', 'user' || (i % 100) || '@example.com',
                'production', 'message ' || i
         FROM generate_series(1, 13 * 7 * 144) i",
    )
    .execute(db)
    .await
    .unwrap();
    sqlx::query("INSERT INTO follows (follower_id, followee_id, since) VALUES (2, 1, now()), (2, 3, now()) ON CONFLICT DO NOTHING")
        .execute(db)
        .await
        .unwrap();
    sqlx::query("ANALYZE activities").execute(db).await.unwrap();
    sqlx::query("ANALYZE generic_events").execute(db).await.unwrap();
    let (activity_chunks, event_chunks) = (pieces(db, "activities").await, pieces(db, "generic_events").await);
    assert!(activity_chunks >= 26 && event_chunks >= 13, "{activity_chunks} {event_chunks}");

    // GET /events?from=<a day ago>, and a later page of it.
    let day_ago = Utc::now() - TimeDelta::days(1);
    let filter = Filter { from: Some(day_ago), limit: 51, ..Filter::default() };
    let read = events_plan_chunks(db, &filter).await;
    assert!(read.len() <= 2, "a day's events read {} of {event_chunks} chunks: {read:?}", read.len());
    let after = feed_core::activities::Position { time: Utc::now() - TimeDelta::days(60), event_id: uuid::Uuid::max() };
    let filter = Filter { after: Some(after), limit: 51, ..Filter::default() };
    let read = events_plan_chunks(db, &filter).await;
    let older = reaching_back_to(db, "generic_events", after.time).await;
    assert!(
        bounded(native, read.len(), older),
        "a page 60 days back read {} of {event_chunks} chunks ({older} older): {read:?}",
        read.len()
    );

    // /feed/my (and the reference's feeds) paging 100 days back.
    let after = feed_core::activities::Position { time: Utc::now() - TimeDelta::days(100), event_id: uuid::Uuid::max() };
    let plan = explain(
        sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {}", activities::authored_query(Verbs::All, true)))
            .bind(1_i64)
            .bind(Some(after.time))
            .bind(Some(after.event_id))
            .bind(21_i64)
            .bind(0_i64),
        db,
    )
    .await;
    let read = executed_relations(&plan, "activities");
    let older = reaching_back_to(db, "activities", after.time).await;
    assert!(
        bounded(native, read.len(), older),
        "a page 100 days back read {} of {activity_chunks} chunks ({older} older): {read:?}\n{plan}",
        read.len()
    );

    // The friends feed past Redis: a one-hour window 100 days back.
    let plan = explain(
        sqlx::query_scalar(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {}", activities::friends_query(true, true)))
            .bind(2_i64)
            .bind(Some(after.time))
            .bind(Some(after.event_id))
            .bind(21_i64)
            .bind(0_i64)
            .bind(Some(after.time - TimeDelta::hours(1))),
        db,
    )
    .await;
    let read = executed_relations(&plan, "activities");
    assert!(read.len() <= 2, "a friends window 100 days back read {} of {activity_chunks} chunks: {read:?}\n{plan}", read.len());
    stack.stop().await;
}

/// Whether a page read only chunks older than its start: on a hypertable TimescaleDB's
/// ordered append stops after the first chunk or two that fill the page; native
/// partitioning (with its DEFAULT partition) merges every older partition, but never a
/// newer one. `older` is how many chunks or partitions begin before the start.
fn bounded(native: bool, read: usize, older: usize) -> bool {
    if native {
        read <= older + 1
    } else {
        read <= 2
    }
}

/// How many chunks or partitions of `table` begin at or before `time` (the DEFAULT
/// partition counts: it may hold anything).
async fn reaching_back_to(db: &PgPool, table: &str, time: DateTime<Utc>) -> usize {
    let sql = if kind_of(db, table).await == "hypertable" {
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = $1 AND range_start <= $2"
    } else {
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = $1::regclass
           AND (pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
                OR substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']+)''\\)')::timestamptz <= $2)"
    };
    let n: i64 = sqlx::query_scalar(sql).bind(table).bind(time).fetch_one(db).await.unwrap();
    n as usize
}

async fn explain<'q>(
    query: sqlx::query::QueryScalar<'q, sqlx::Postgres, sqlx::types::Json<Value>, sqlx::postgres::PgArguments>,
    db: &PgPool,
) -> Value {
    query.fetch_one(db).await.unwrap().0
}

/// The chunks or partitions of `generic_events` the route's query for `filter` reads.
async fn events_plan_chunks(db: &PgPool, filter: &Filter) -> Vec<String> {
    let mut sql = sqlx::QueryBuilder::new("EXPLAIN (ANALYZE, FORMAT JSON) ");
    feed_core::generic_events::push_query(&mut sql, filter);
    let plan: sqlx::types::Json<Value> = sql.build_query_scalar().fetch_one(db).await.unwrap();
    executed_relations(&plan.0, "generic_events")
}

/// The chunks or partitions of `table` a plan (EXPLAIN ANALYZE, FORMAT JSON) scanned at
/// least once: chunks excluded at plan time are absent, those excluded at run time show
/// zero loops.
fn executed_relations(plan: &Value, table: &str) -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut nodes = vec![plan];
    while let Some(node) = nodes.pop() {
        match node {
            Value::Array(items) => nodes.extend(items),
            Value::Object(map) => {
                let relation = map.get("Relation Name").and_then(Value::as_str);
                let loops = map.get("Actual Loops").and_then(Value::as_i64).unwrap_or(0);
                if let Some(relation) = relation.filter(|r| *r != table && loops > 0) {
                    // Chunks are `_hyper_<n>_<m>_chunk`; partitions `<table>_<week>` or `<table>_default`.
                    if relation.starts_with("_hyper_") || relation.starts_with(&format!("{table}_")) {
                        found.insert(relation.to_string());
                    }
                }
                nodes.extend(map.values());
            }
            _ => {}
        }
    }
    found.into_iter().collect()
}
