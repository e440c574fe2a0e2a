//! Creating users and events in bulk: through the pipeline (published on the feed
//! topic), or straight into PostgreSQL with the writer's own code, after which the
//! fan-out's own rebuild fills Redis ([`Seeder::direct`]). tansu, the local broker,
//! slows down as its store grows (measured here: from ~730 to ~190 acknowledged posts/s
//! after ~30,000 records), so the benchmarks seed large data sets directly and keep the
//! broker's log for the traffic they measure.

use feed_core::config::CommonConfig;
use feed_core::event::{Event, EventType, UserRef};
use futures::stream::{FuturesUnordered, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;
use std::time::Duration;

/// The app key of a generated user: predictable on purpose, so load tests can
/// authenticate as any of them. Never use generated data in production.
pub fn key_for(name: &str) -> String {
    format!("key-{name}")
}

/// Publishes events fast (batching producer, many records in flight), or writes them
/// straight into the tables.
pub struct Seeder {
    producer: FutureProducer,
    /// Write straight into PostgreSQL instead of publishing.
    direct: bool,
    /// The feed topic.
    pub topic: String,
    /// The product's database (sequences for ids, reads of existing users).
    pub db: PgPool,
}

impl Seeder {
    /// A seeder for the stack described by `common`.
    pub async fn connect(common: &CommonConfig) -> anyhow::Result<Self> {
        let producer = common
            .kafka
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.messages", "500000")
            .set("message.timeout.ms", "60000")
            .create()?;
        let db = feed_core::db::connect(&common.database_url, 4).await?;
        Ok(Self { producer, direct: false, topic: common.feed_topic.clone(), db })
    }

    /// A seeder that writes straight into PostgreSQL with the writer's table code (the
    /// caller rebuilds the Redis feeds afterwards, see [`Seeder::rebuild_feeds`]).
    pub async fn direct(common: &CommonConfig) -> anyhow::Result<Self> {
        Ok(Self { direct: true, ..Self::connect(common).await? })
    }

    /// Rebuilds the Redis feeds of `users` (everyone's when `None`) from PostgreSQL with
    /// the fan-out's own rebuild (keeping feeds as `settings` say), after a direct seeding.
    pub async fn rebuild_feeds(
        &self,
        common: &CommonConfig,
        settings: feed_core::config::FeedSettings,
        users: Option<Vec<i64>>,
    ) -> anyhow::Result<()> {
        // Fresh statistics and visibility map first: without them the feed queries read
        // the heap for every index entry (measured: 4 users rebuilt per second, then 90).
        sqlx::query("VACUUM ANALYZE").execute(&self.db).await?;
        let mut rebuilder = fanout::rebuild::Rebuilder::new(self.db.clone(), common.redis().await?, common, settings);
        let scope = users.map_or(fanout::rebuild::Scope::All, fanout::rebuild::Scope::Users);
        let progress = bar(0, "rebuild");
        loop {
            let done = rebuilder
                .rebuild(scope.clone(), |done, total| {
                    progress.set_length(total);
                    progress.set_position(done);
                })
                .await?;
            if done.is_some() {
                progress.finish();
                return Ok(());
            }
            // Another rebuild (the fan-out's own, at start) is under way.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Publishes `events` (at most `in_flight` unacknowledged), or writes them in
    /// batches of 1,000 when direct, advancing `progress`.
    pub async fn publish(&self, events: impl IntoIterator<Item = Event>, progress: &ProgressBar) -> anyhow::Result<()> {
        if self.direct {
            let events: Vec<Event> = events.into_iter().collect();
            for chunk in events.chunks(1000) {
                let refs: Vec<&Event> = chunk.iter().collect();
                writer::sink::write_directly(&self.db, &mut writer::feed::FeedTable, &refs).await?;
                progress.inc(chunk.len() as u64);
            }
            return Ok(());
        }
        let in_flight_max = 20_000;
        let mut in_flight = FuturesUnordered::new();
        for event in events {
            if in_flight.len() >= in_flight_max {
                in_flight.next().await.expect("non-empty")?;
            }
            let producer = self.producer.clone();
            let topic = self.topic.clone();
            in_flight.push(async move { feed_core::kafka::send(&producer, &topic, &event, Duration::from_secs(30)).await });
            progress.inc(1);
        }
        while let Some(result) = in_flight.next().await {
            result?;
        }
        Ok(())
    }

    /// Makes sure users named `names` exist (creating the missing ones with
    /// [`key_for`] keys) and returns them in the same order.
    pub async fn ensure_users(&self, names: &[String], progress: &ProgressBar) -> anyhow::Result<Vec<UserRef>> {
        let existing: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM users WHERE name = ANY($1)").bind(names).fetch_all(&self.db).await?;
        let existing: std::collections::HashMap<String, i64> = existing.into_iter().map(|(id, n)| (n, id)).collect();
        let missing: Vec<&String> = names.iter().filter(|n| !existing.contains_key(*n)).collect();
        let ids: Vec<i64> = sqlx::query_scalar("SELECT nextval('user_ids') FROM generate_series(1, $1)")
            .bind(missing.len() as i64)
            .fetch_all(&self.db)
            .await?;
        let mut created = std::collections::HashMap::new();
        let events: Vec<Event> = missing
            .iter()
            .zip(ids)
            .map(|(name, id)| {
                let user = UserRef { id, name: (*name).clone() };
                created.insert(user.name.clone(), id);
                let key_hash = api::auth::hash_key(&key_for(name));
                Event::new(EventType::UserCreated, user, None, None, serde_json::json!({ "key_hash": key_hash }))
            })
            .collect();
        self.publish(events, progress).await?;
        Ok(names
            .iter()
            .map(|n| UserRef { id: existing.get(n).or_else(|| created.get(n)).copied().unwrap_or_default(), name: n.clone() })
            .collect())
    }

    /// Reserves `n` consecutive-in-order ids of an object sequence (`post_ids`, `photo_ids`).
    pub async fn object_ids(&self, sequence: &str, n: usize) -> anyhow::Result<Vec<i64>> {
        Ok(sqlx::query_scalar(&format!("SELECT nextval('{sequence}') FROM generate_series(1, $1)"))
            .bind(n as i64)
            .fetch_all(&self.db)
            .await?)
    }

    /// Waits until `group` has applied everything on the feed topic, showing progress.
    pub async fn wait_applied(&self, common: &CommonConfig, group: &str, label: &str) -> anyhow::Result<()> {
        let mut redis = common.redis().await?;
        let key = feed_core::keys::Keys::new(&common.redis_key_prefix).progress(group, &common.feed_topic);
        let high = high_watermarks(&common.kafka, &common.feed_topic).await?;
        let total: i64 = high.values().sum();
        let bar = bar(total as u64, label);
        loop {
            let marks = feed_core::progress::read(&mut redis, &key).await?;
            let done: i64 = high.iter().map(|(p, h)| marks.get(p).copied().unwrap_or(0).min(*h)).sum();
            bar.set_position(done as u64);
            if done >= total {
                bar.finish();
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Per partition, the next offset of `topic` (retried: a busy broker may time out).
pub async fn high_watermarks(kafka: &feed_core::kafka::Kafka, topic: &str) -> anyhow::Result<std::collections::HashMap<i32, i64>> {
    let mut attempt = 0;
    loop {
        match feed_core::kafka::fetch_high_watermarks(kafka, topic, Duration::from_secs(10)).await {
            Ok(marks) => return Ok(marks),
            Err(error) if attempt < 5 => {
                attempt += 1;
                eprintln!("watermarks of {topic}: {error}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A progress bar with a rate. When stderr is not a terminal (CI, `nohup`), where a bar
/// would not draw, a plain line is printed every 5 seconds instead.
pub fn bar(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let (weak, label) = (bar.downgrade(), label.to_string());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            match weak.upgrade() {
                Some(bar) if !bar.is_finished() => {
                    let rate = bar.position() as f64 / bar.elapsed().as_secs_f64().max(0.001);
                    eprintln!("{label}: {}/{len} ({rate:.0}/s)", bar.position());
                }
                _ => return,
            }
        });
    }
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}
