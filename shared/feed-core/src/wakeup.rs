//! How the API tells idle consumers that it published: after each acknowledged record
//! it announces the topic on one pub/sub channel
//! ([`crate::keys::Keys::published_channel`]), and every consumer process follows that
//! channel. A consumer with nothing to do pauses its partitions — no fetches at all,
//! which matters on brokers such as tansu that answer a fetch only when its wait expires
//! — and resumes at once on an announcement for its topic (see [`crate::consumer`]).
//!
//! Announcements are an optimisation, not the contract: a paused consumer also looks
//! once every [`IDLE_LOOK`] by itself, so records produced by anyone else (tools, other
//! producers) and announcements lost while Redis was away are consumed too, later.

use crate::shutdown::Shutdown;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a paused consumer looks for records nobody announced.
pub const IDLE_LOOK: Duration = Duration::from_secs(5);

/// The announcements of one process's topics: one subscription, a counter per topic
/// that rises with every announcement.
#[derive(Clone)]
pub struct Wakeups {
    topics: Arc<HashMap<String, watch::Sender<u64>>>,
}

impl Wakeups {
    /// Follows `channel` through `subscriber` for `topics`, until `shutdown`; a
    /// subscription that fails is tried again.
    pub fn start(subscriber: redis::Client, channel: String, topics: &[&str], shutdown: Shutdown) -> Self {
        let topics: HashMap<String, watch::Sender<u64>> = topics.iter().map(|t| (t.to_string(), watch::channel(0).0)).collect();
        let this = Self { topics: Arc::new(topics) };
        tokio::spawn(this.clone().listen(subscriber, channel, shutdown));
        this
    }

    /// Wakeups that never come: the consumer then only looks every [`IDLE_LOOK`].
    pub fn none() -> Self {
        Self { topics: Arc::new(HashMap::new()) }
    }

    /// A receiver that changes whenever `topic` is announced.
    pub fn of(&self, topic: &str) -> Option<watch::Receiver<u64>> {
        self.topics.get(topic).map(watch::Sender::subscribe)
    }

    async fn listen(self, subscriber: redis::Client, channel: String, shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let listened = async {
                let mut pubsub = subscriber.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                backoff = Duration::from_millis(100);
                // Announcements missed while not subscribed: wake everyone once.
                self.topics.values().for_each(|t| t.send_modify(|n| *n += 1));
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    if let Some(topic) = message.get_payload::<String>().ok().and_then(|t| self.topics.get(&t)) {
                        topic.send_modify(|n| *n += 1);
                    }
                }
                Ok::<(), redis::RedisError>(())
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                ended = listened => if let Err(error) = ended {
                    tracing::warn!(%error, retry_in = ?backoff, "cannot follow publish announcements; looking every {IDLE_LOOK:?}");
                },
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {},
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Announces that `topic` has new records (the API, after each acknowledgement). Best
/// effort: a failure costs a consumer at most [`IDLE_LOOK`] of latency.
pub async fn announce<C: redis::aio::ConnectionLike + Send>(conn: &mut C, channel: &str, topic: &str) {
    if let Err(error) = redis::cmd("PUBLISH").arg(channel).arg(topic).query_async::<i64>(conn).await {
        tracing::debug!(%error, "cannot announce a publish");
    }
}
