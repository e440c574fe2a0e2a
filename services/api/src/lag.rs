//! `feed_pipeline_lag{group, topic, partition}`: how many records each consumer has yet
//! to apply, measured from outside the consumers when `/metrics` is scraped — the
//! broker's high watermarks less the progress marks the consumers keep in Redis. The
//! consumers' own `feed_consumer_lag` disappears with them; this one keeps growing while
//! a consumer is down, so an alert on it fires for a dead consumer too.

use crate::AppState;
use std::time::Duration;

/// How long a scrape waits for the broker's watermarks.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// A consumer whose lag the API reports.
#[derive(Clone, Debug)]
pub struct Watched {
    /// The topic it consumes.
    pub topic: String,
    /// Its name (`WRITER_GROUP`, `FANOUT_GROUP`, ...).
    pub group: String,
    /// Where it keeps its progress marks ([`feed_core::keys::Keys::progress`]).
    pub progress_key: String,
}

/// Sets the lag gauges of every watched consumer; a topic whose watermarks the broker
/// does not give sets `feed_pipeline_watermarks_up{topic}` to 0 and keeps its last lag.
pub async fn record(state: &AppState) {
    let producer = state.feed.publisher().producer().clone();
    let mut topics: Vec<&str> = state.watched.iter().map(|w| w.topic.as_str()).collect();
    topics.dedup();
    for topic in topics {
        let (producer, name) = (producer.clone(), topic.to_string());
        let highs = tokio::task::spawn_blocking(move || {
            feed_core::kafka::high_watermarks_of(rdkafka::producer::Producer::client(&producer), &name, WATERMARK_TIMEOUT)
        })
        .await;
        let highs = match highs {
            Ok(Ok(highs)) => highs,
            Ok(Err(error)) => {
                tracing::debug!(topic, error = %format!("{error:#}"), "no watermarks for the lag gauge");
                metrics::gauge!("feed_pipeline_watermarks_up", "topic" => topic.to_string()).set(0.0);
                continue;
            }
            Err(_) => continue,
        };
        metrics::gauge!("feed_pipeline_watermarks_up", "topic" => topic.to_string()).set(1.0);
        for watched in state.watched.iter().filter(|w| w.topic == topic) {
            let Ok(marks) = feed_core::progress::read(&mut state.redis.clone(), &watched.progress_key).await else { continue };
            for (partition, high) in &highs {
                let lag = (high - marks.get(partition).copied().unwrap_or(0)).max(0);
                let labels = [("group", watched.group.clone()), ("topic", topic.to_string()), ("partition", partition.to_string())];
                metrics::gauge!("feed_pipeline_lag", &labels).set(lag as f64);
            }
        }
    }
}
