//! How far each consumer of this process got on each of its partitions: the offset it
//! applied (from its sink), the partition's high watermark (from librdkafka's
//! statistics) and when it last advanced. Read by the `feed_consumer_lag` and
//! `feed_consumer_stalled` metrics and by the consumers' `GET /health`, which answers 503
//! while a partition has records waiting and has not advanced for the stall bound.
//!
//! Also when the consumer's loop last turned, for `GET /livez` ([`stuck`]): a loop that
//! stopped turning (a call that never returns) is fixed by a restart, a stalled
//! partition (a store that is down) is not.

use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// One partition's progress.
#[derive(Clone, Copy, Debug)]
struct Partition {
    /// The next offset to apply.
    next: i64,
    /// The high watermark, once the statistics told it.
    high: Option<i64>,
    /// When `next` last moved (or the consumer resumed).
    advanced: Instant,
}

struct Inner {
    group: String,
    topic: String,
    stall_after: Duration,
    /// When its loop last turned, and how long it may go without.
    turned: Instant,
    stuck_after: Duration,
    /// Since when it has been trying to resume (`None` once it has).
    resuming_since: Option<Instant>,
    partitions: HashMap<i32, Partition>,
}

/// The progress of one consumer, shared by its loop and its statistics callback, and
/// registered for [`stalled`].
#[derive(Clone)]
pub struct Positions(Arc<Mutex<Inner>>);

/// A partition that has records waiting and has not advanced for the stall bound, or a
/// consumer that has not managed to resume (read its offsets) for that long.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Stalled {
    /// The consumer's name.
    pub group: String,
    /// Its topic.
    pub topic: String,
    /// The partition; `null` while the consumer has not resumed.
    pub partition: Option<i32>,
    /// Records published and not applied, where known.
    pub lag: Option<i64>,
    /// Seconds since it last advanced (or started resuming).
    pub seconds: u64,
}

fn registry() -> &'static Mutex<Vec<Weak<Mutex<Inner>>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Weak<Mutex<Inner>>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

impl Positions {
    /// The progress of consumer `group` on `topic`, stalled after `stall_after` without
    /// advancing while records wait, stuck after `stuck_after` without a turn of its loop.
    pub fn register(group: &str, topic: &str, stall_after: Duration, stuck_after: Duration) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            group: group.into(),
            topic: topic.into(),
            stall_after,
            turned: Instant::now(),
            stuck_after,
            resuming_since: Some(Instant::now()),
            partitions: HashMap::new(),
        }));
        if let Ok(mut registry) = registry().lock() {
            registry.retain(|w| w.strong_count() > 0);
            registry.push(Arc::downgrade(&inner));
        }
        Self(inner)
    }

    /// After (re)assignment: the partitions owned now and where each resumes.
    pub fn reset(&self, next: &HashMap<i32, i64>) {
        if let Ok(mut inner) = self.0.lock() {
            let now = Instant::now();
            inner.resuming_since = None;
            inner.partitions = next.iter().map(|(p, n)| (*p, Partition { next: *n, high: None, advanced: now })).collect();
        }
    }

    /// The next offset to apply on `partition`, if owned.
    pub fn next(&self, partition: i32) -> Option<i64> {
        self.0.lock().ok()?.partitions.get(&partition).map(|p| p.next)
    }

    /// `partition` applied everything below `next`.
    pub fn advance(&self, partition: i32, next: i64) {
        if let Ok(mut inner) = self.0.lock() {
            if let Some(p) = inner.partitions.get_mut(&partition) {
                p.next = next;
                p.advanced = Instant::now();
            }
        }
    }

    /// The high watermark of `partition`; returns its lag if the partition is owned.
    pub fn set_high(&self, partition: i32, high: i64) -> Option<i64> {
        let mut inner = self.0.lock().ok()?;
        let p = inner.partitions.get_mut(&partition)?;
        p.high = Some(high.max(p.high.unwrap_or(0)));
        Some((high - p.next).max(0))
    }

    /// A record at `offset` of `partition` was read, so the partition's end is past it
    /// (the statistics stop while a failing batch is retried, and with them the high
    /// watermark).
    pub fn seen(&self, partition: i32, offset: i64) {
        if let Ok(mut inner) = self.0.lock() {
            if let Some(p) = inner.partitions.get_mut(&partition) {
                p.high = Some(p.high.unwrap_or(0).max(offset + 1));
            }
        }
    }

    /// The consumer's loop turned: it polled, retried or applied.
    pub fn turn(&self) {
        if let Ok(mut inner) = self.0.lock() {
            inner.turned = Instant::now();
        }
    }

    /// This consumer's stalled partitions.
    pub fn stalled(&self) -> Vec<Stalled> {
        self.0.lock().map(|inner| stalled_in(&inner)).unwrap_or_default()
    }
}

fn stalled_in(inner: &Inner) -> Vec<Stalled> {
    if let Some(since) = inner.resuming_since.filter(|since| since.elapsed() >= inner.stall_after) {
        let (group, topic) = (inner.group.clone(), inner.topic.clone());
        return vec![Stalled { group, topic, partition: None, lag: None, seconds: since.elapsed().as_secs() }];
    }
    let mut out: Vec<Stalled> = inner
        .partitions
        .iter()
        .filter_map(|(partition, p)| {
            let lag = p.high? - p.next;
            (lag > 0 && p.advanced.elapsed() >= inner.stall_after).then(|| Stalled {
                group: inner.group.clone(),
                topic: inner.topic.clone(),
                partition: Some(*partition),
                lag: Some(lag),
                seconds: p.advanced.elapsed().as_secs(),
            })
        })
        .collect();
    out.sort_by_key(|s| s.partition);
    out
}

/// A consumer whose loop has not turned for its bound.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Stuck {
    /// The consumer's name.
    pub group: String,
    /// Its topic.
    pub topic: String,
    /// Seconds since its loop last turned.
    pub seconds: u64,
}

fn stuck_in(inner: &Inner) -> Option<Stuck> {
    // Resuming may be long (the fan-out rebuilding the feeds) and is reported as stalled.
    let stuck = inner.resuming_since.is_none() && inner.turned.elapsed() >= inner.stuck_after;
    stuck.then(|| Stuck { group: inner.group.clone(), topic: inner.topic.clone(), seconds: inner.turned.elapsed().as_secs() })
}

/// Every consumer of this process whose loop is stuck.
pub fn stuck() -> Vec<Stuck> {
    consumers().iter().filter_map(|c| c.lock().ok().and_then(|inner| stuck_in(&inner))).collect()
}

fn consumers() -> Vec<Arc<Mutex<Inner>>> {
    registry().lock().map(|r| r.iter().filter_map(Weak::upgrade).collect()).unwrap_or_default()
}

/// Every stalled partition of every consumer in this process.
pub fn stalled() -> Vec<Stalled> {
    consumers().iter().flat_map(|c| c.lock().map(|inner| stalled_in(&inner)).unwrap_or_default()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_stalls_only_with_records_waiting_and_no_progress() {
        let positions = Positions::register("g", "t", Duration::ZERO, Duration::from_secs(3600));
        assert_eq!(positions.stalled().iter().map(|s| s.partition).collect::<Vec<_>>(), vec![None], "not resumed yet");
        positions.reset(&[(0, 5), (1, 7)].into_iter().collect());
        assert!(positions.stalled().is_empty(), "no high watermark known yet");
        assert_eq!(positions.set_high(0, 5), Some(0));
        assert_eq!(positions.set_high(1, 9), Some(2));
        assert_eq!(positions.set_high(2, 9), None, "not owned");
        let stalled = positions.stalled();
        assert_eq!(stalled.iter().map(|s| (s.partition, s.lag)).collect::<Vec<_>>(), vec![(Some(1), Some(2))]);
        assert!(super::stalled().iter().any(|s| s.group == "g" && s.partition == Some(1)));
        positions.advance(1, 9);
        assert!(positions.stalled().is_empty());
        positions.seen(0, 5);
        assert_eq!(positions.stalled().iter().map(|s| (s.partition, s.lag)).collect::<Vec<_>>(), vec![(Some(0), Some(1))]);

        let patient = Positions::register("g2", "t", Duration::from_secs(3600), Duration::from_secs(3600));
        assert!(patient.stalled().is_empty(), "resuming, but not for an hour");
        patient.reset(&[(0, 0)].into_iter().collect());
        patient.set_high(0, 10);
        assert!(patient.stalled().is_empty(), "not for an hour");
    }

    #[test]
    fn a_loop_that_stops_turning_is_stuck_but_not_while_resuming() {
        let positions = Positions::register("stuck-g", "t", Duration::from_secs(3600), Duration::ZERO);
        let mine = || super::stuck().into_iter().filter(|s| s.group == "stuck-g").count();
        assert_eq!(mine(), 0, "resuming counts as stalled, not stuck");
        positions.reset(&[(0, 0)].into_iter().collect());
        assert_eq!(mine(), 1, "no turn within a zero bound");
        let lively = Positions::register("lively-g", "t", Duration::from_secs(3600), Duration::from_secs(3600));
        lively.reset(&[(0, 0)].into_iter().collect());
        lively.turn();
        assert!(super::stuck().iter().all(|s| s.group != "lively-g"));
    }
}
