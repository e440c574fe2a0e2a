//! Analytics hits into the `analytics_hits` hypertable, and the exact hourly rollup in
//! the same statement: only hits that were not already stored count, so re-delivery
//! and replays leave the counts unchanged, and late hits update their own hour. Hits
//! older than the analytics retention are not written: their raw rows may be gone, and
//! counting them again would change an hour's counts.

use crate::sink::{Table, Tx};
use chrono::{DateTime, TimeDelta, Utc};
use feed_core::config::TimeWindow;
use feed_core::streams::AnalyticsHit;
use uuid::Uuid;

/// Writes hits and maintains `analytics_hourly`.
pub struct AnalyticsTable {
    /// Hits outside it (which the API refuses; another producer may not) get no
    /// partition of their own, so they cannot make the table grow partitions at will.
    window: TimeWindow,
    /// How long raw hits are kept (`RETENTION_ANALYTICS_DAYS`), if not forever.
    keep: Option<TimeDelta>,
}

impl AnalyticsTable {
    /// A table that makes partitions only for hits inside `window` and writes none older
    /// than `keep`.
    pub fn new(window: TimeWindow, keep: Option<TimeDelta>) -> Self {
        Self { window, keep }
    }

    /// Whether a hit at `time` is past retention at `now`.
    fn expired(&self, now: DateTime<Utc>, time: DateTime<Utc>) -> bool {
        self.keep.is_some_and(|keep| time < now - keep)
    }
}

const INSERT_AND_ROLL_UP: &str = "
WITH new_hits AS (
    INSERT INTO analytics_hits (time, event_id, user_id, event)
    SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::text[], $4::text[])
    ON CONFLICT DO NOTHING
    RETURNING date_trunc('hour', time, 'UTC') AS hour, user_id, event
), new_users AS (
    INSERT INTO analytics_hourly_users (time, user_id)
    SELECT DISTINCT hour, user_id FROM new_hits
    ON CONFLICT DO NOTHING
    RETURNING time AS hour
), deltas AS (
    SELECT hour, sum(users) AS users, sum(clicks) AS clicks, sum(impressions) AS impressions
    FROM (
        SELECT hour, 0 AS users,
               count(*) FILTER (WHERE event = 'click') AS clicks,
               count(*) FILTER (WHERE event = 'impression') AS impressions
        FROM new_hits GROUP BY hour
        UNION ALL
        SELECT hour, count(*), 0, 0 FROM new_users GROUP BY hour
    ) d
    GROUP BY hour
)
INSERT INTO analytics_hourly AS h (hour, unique_users, clicks, impressions)
SELECT hour, users, clicks, impressions FROM deltas
ON CONFLICT (hour) DO UPDATE SET
    unique_users = h.unique_users + EXCLUDED.unique_users,
    clicks = h.clicks + EXCLUDED.clicks,
    impressions = h.impressions + EXCLUDED.impressions";

impl Table<AnalyticsHit> for AnalyticsTable {
    const NAME: &'static str = "analytics_hits";
    const ALSO_PARTITIONED: &'static [&'static str] = &["analytics_hourly_users"];

    fn row_times(&self, hits: &[&AnalyticsHit]) -> Vec<DateTime<Utc>> {
        let now = Utc::now();
        hits.iter().map(|h| h.timestamp).filter(|t| self.window.contains(now, *t)).collect()
    }

    async fn write(&mut self, tx: &mut Tx<'_>, hits: &[&AnalyticsHit]) -> anyhow::Result<u64> {
        let now = Utc::now();
        let (hits, expired): (Vec<&AnalyticsHit>, Vec<&AnalyticsHit>) = hits.iter().partition(|h| !self.expired(now, h.timestamp));
        if !expired.is_empty() {
            tracing::warn!(hits = expired.len(), "hits older than the analytics retention not written");
            metrics::counter!("feed_writer_expired_total", "table" => Self::NAME).increment(expired.len() as u64);
        }
        if hits.is_empty() {
            return Ok(0);
        }
        let times: Vec<DateTime<Utc>> = hits.iter().map(|h| h.timestamp).collect();
        let ids: Vec<Uuid> = hits.iter().map(|h| h.event_id).collect();
        let users: Vec<&str> = hits.iter().map(|h| h.user.as_str()).collect();
        let kinds: Vec<&str> = hits.iter().map(|h| h.event.as_str()).collect();
        sqlx::query(INSERT_AND_ROLL_UP).bind(times).bind(ids).bind(users).bind(kinds).execute(&mut **tx).await?;
        Ok(hits.len() as u64)
    }
}
