//! Retention: how long each store keeps its rows, and the job that drops what is older —
//! whole TimescaleDB chunks (`drop_chunks`) or whole native partitions, never row by row
//! (`feed_drop_older_than` in the migrations). Run by the writer every
//! `RETENTION_EVERY_MINUTES`, or by `feedctl retention` (the Kubernetes CronJob).
//!
//! Data leaves at chunk granularity: a chunk goes once its newest possible row is past the
//! horizon, so a store keeps up to one chunk interval (7 days for events, 1 day for hits;
//! a week on native partitions) more than its retention.

use chrono::{DateTime, TimeDelta, Utc};
use feed_core::config::{env_or, TimeWindow};
use sqlx::PgPool;
use std::time::Duration;

/// Which stores keep their rows for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// `RETENTION_ACTIVITIES_DAYS` (default 0: kept forever, since friends feeds and
    /// `/feed/my` reach back to a user's first activity).
    pub activities: Option<TimeDelta>,
    /// `RETENTION_EVENTS_DAYS` (default 90): generic events.
    pub generic_events: Option<TimeDelta>,
    /// `RETENTION_ANALYTICS_DAYS` (default 7): raw hits and the (hour, user) set behind
    /// `unique_users`; the hourly counts themselves stay. At least the analytics window
    /// (`ANALYTICS_MAX_AGE_HOURS`), so every hit the API accepts is kept and counted.
    pub analytics: Option<TimeDelta>,
    /// `RETENTION_EVERY_MINUTES` (default 60): how often the writer runs the job; 0 leaves
    /// it to `feedctl retention`.
    pub every: Option<Duration>,
}

/// The defaults, in days (0: kept forever) and minutes; written down once for
/// [`Retention::default`] and [`Retention::from_env`].
const ACTIVITIES_DAYS: i64 = 0;
const EVENTS_DAYS: i64 = 90;
const ANALYTICS_DAYS: i64 = 7;
const EVERY_MINUTES: u64 = 60;

/// `days` as a retention: `None` for 0, kept forever.
fn kept_for(days: i64) -> Option<TimeDelta> {
    (days > 0).then(|| TimeDelta::days(days))
}

/// The stores' default retentions, without a schedule: runs happen only when called
/// (the writer's `RETENTION_EVERY_MINUTES` defaults to 60).
impl Default for Retention {
    fn default() -> Self {
        Self {
            activities: kept_for(ACTIVITIES_DAYS),
            generic_events: kept_for(EVENTS_DAYS),
            analytics: kept_for(ANALYTICS_DAYS),
            every: None,
        }
    }
}

impl Retention {
    /// Reads the settings from the environment; `analytics_window` is the API's.
    pub fn from_env(analytics_window: TimeWindow) -> anyhow::Result<Self> {
        let days = |name: &str, default: i64| -> anyhow::Result<Option<TimeDelta>> {
            let days: i64 = env_or(name, default)?;
            anyhow::ensure!(days >= 0, "{name} must be 0 (keep forever) or a number of days, not {days}");
            Ok(kept_for(days))
        };
        let minutes: u64 = env_or("RETENTION_EVERY_MINUTES", EVERY_MINUTES)?;
        let retention = Self {
            activities: days("RETENTION_ACTIVITIES_DAYS", ACTIVITIES_DAYS)?,
            generic_events: days("RETENTION_EVENTS_DAYS", EVENTS_DAYS)?,
            analytics: days("RETENTION_ANALYTICS_DAYS", ANALYTICS_DAYS)?,
            every: (minutes > 0).then(|| Duration::from_secs(minutes * 60)),
        };
        if let Some(keep) = retention.analytics {
            anyhow::ensure!(
                keep >= analytics_window.max_age,
                "RETENTION_ANALYTICS_DAYS ({} days) must cover ANALYTICS_MAX_AGE_HOURS ({} hours): hits the API accepts would be dropped",
                keep.num_days(),
                analytics_window.max_age.num_hours()
            );
        }
        Ok(retention)
    }

    /// Each time-partitioned table with its retention, where it has one.
    fn tables(&self) -> Vec<(&'static str, TimeDelta)> {
        [
            ("activities", self.activities),
            ("generic_events", self.generic_events),
            ("analytics_hits", self.analytics),
            ("analytics_hourly_users", self.analytics),
        ]
        .into_iter()
        .filter_map(|(table, keep)| keep.map(|keep| (table, keep)))
        .collect()
    }
}

/// The advisory lock a run holds; arbitrary but fixed ("feedretn" in ASCII).
const LOCK: i64 = 0x6665_6564_7265_746e;

/// What one run dropped: chunks or partitions per table.
pub type Dropped = Vec<(&'static str, i32)>;

/// One run: drops, in every table with a retention, the chunks or partitions holding only
/// rows older than it. `None` when another process is running it (an advisory lock keeps
/// writer replicas and the CronJob from overlapping).
pub async fn run(pool: &PgPool, retention: &Retention, now: DateTime<Utc>) -> anyhow::Result<Option<Dropped>> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(LOCK).fetch_one(&mut *tx).await?;
    if !locked {
        return Ok(None);
    }
    // Dropping a native partition locks its parent: give up rather than queue inserts behind it.
    sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut *tx).await?;
    let mut dropped = Vec::new();
    for (table, keep) in retention.tables() {
        let n: i32 =
            sqlx::query_scalar("SELECT feed_drop_older_than($1::regclass, $2)").bind(table).bind(now - keep).fetch_one(&mut *tx).await?;
        metrics::counter!("feed_retention_dropped_total", "table" => table).increment(n as u64);
        dropped.push((table, n));
    }
    tx.commit().await?;
    Ok(Some(dropped))
}

/// Runs [`run`] every `retention.every` until `shutdown`; failures are logged and retried
/// at the next run.
pub async fn schedule(pool: PgPool, retention: Retention, shutdown: feed_core::shutdown::Shutdown) {
    let Some(every) = retention.every else { return };
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match run(&pool, &retention, Utc::now()).await {
            Ok(Some(dropped)) => tracing::info!(?dropped, "retention ran"),
            Ok(None) => tracing::debug!("retention is running elsewhere"),
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "retention failed; trying again at the next run"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_without_retention_are_left_alone() {
        let tables = Retention::default().tables();
        assert_eq!(
            tables,
            vec![
                ("generic_events", TimeDelta::days(90)),
                ("analytics_hits", TimeDelta::days(7)),
                ("analytics_hourly_users", TimeDelta::days(7))
            ]
        );
    }
}
