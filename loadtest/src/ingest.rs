//! The writer against the database's own ingest speed, on both storage modes in one run:
//! raw `COPY` of activity rows into `activities`, then the writer's sink (rows, objects
//! and offsets in one transaction, idempotent) on batches of 1 to 1,000 posts, into a
//! fresh database on TimescaleDB hypertables and one on native partitions. Rounds
//! alternate between the modes so the machine's noise falls on both alike.

use feed_core::db::Storage;

/// What to measure.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// A PostgreSQL URL; the benchmark creates (and drops) its databases there.
    pub postgres_url: String,
    /// The Redis the writer's sink raises its progress marks in.
    pub redis_url: String,
    /// Rows per measurement.
    pub rows: usize,
    /// Measurements per mode; the report gives their median.
    pub rounds: usize,
}

/// One storage mode's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModeResult {
    /// "timescaledb hypertables" or "native partitions".
    pub storage: String,
    /// Median raw COPY rate, rows/s.
    pub raw_copy: f64,
    /// Median writer rate per batch size, rows/s.
    pub writer: Vec<(usize, f64)>,
    /// Every round's (raw COPY, writer at the largest batch), rows/s.
    pub rounds: Vec<(f64, f64)>,
}

impl ModeResult {
    /// The writer at its largest batch over raw COPY.
    pub fn ratio(&self) -> f64 {
        self.writer.last().map_or(0.0, |(_, rate)| rate / self.raw_copy)
    }
}

/// Runs the benchmark: hypertables (where TimescaleDB can be created) and native partitions.
pub async fn run(config: &IngestConfig) -> anyhow::Result<Vec<ModeResult>> {
    let redis = feed_core::redis_client::Redis::connect(&config.redis_url, false, None).await?;
    let admin = feed_core::db::connect(&config.postgres_url, 1).await?;
    let mut modes = Vec::new();
    for native in [false, true] {
        let name = format!("feed_ingest_{}_{}", if native { "native" } else { "ts" }, &uuid::Uuid::new_v4().simple().to_string()[..8]);
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
        if native {
            sqlx::query(&format!("ALTER DATABASE {name} SET feed.storage = 'native'")).execute(&admin).await?;
        }
        let db = feed_core::db::connect(&e2e::with_database(&config.postgres_url, &name), 4).await?;
        let storage = feed_core::db::migrate(&db).await?;
        sqlx::query("SELECT feed_ensure_partition('activities', now())").execute(&db).await?;
        modes.push((name, db, storage, Vec::new()));
    }
    for _ in 0..config.rounds {
        for (_, db, _, rounds) in modes.iter_mut() {
            let copy = crate::bench::raw_copy(db, config.rows).await?;
            let writer = crate::bench::writer_by_batch(db, &redis, config.rows).await?;
            rounds.push((copy, writer));
        }
    }
    let mut results = Vec::new();
    for (name, db, storage, rounds) in modes {
        results.push(summarise(storage, &rounds));
        db.close().await;
        sqlx::query(&format!("DROP DATABASE {name}")).execute(&admin).await?;
    }
    Ok(results)
}

fn summarise(storage: Storage, rounds: &[(f64, Vec<(usize, f64)>)]) -> ModeResult {
    let raw_copy = median(rounds.iter().map(|(copy, _)| *copy).collect());
    let sizes: Vec<usize> = rounds.first().map(|(_, w)| w.iter().map(|(n, _)| *n).collect()).unwrap_or_default();
    let writer = sizes.iter().enumerate().map(|(i, size)| (*size, median(rounds.iter().map(|(_, w)| w[i].1).collect()))).collect();
    let rounds = rounds.iter().map(|(copy, w)| (*copy, w.last().map_or(0.0, |(_, rate)| *rate))).collect();
    ModeResult { storage: storage.as_str().to_string(), raw_copy, writer, rounds }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The report as Markdown.
pub fn markdown(results: &[ModeResult], config: &IngestConfig, command: &str) -> String {
    let mut s = String::from("# The writer against raw COPY\n\n");
    s.push_str(&format!("Command: `{command}`\n\n"));
    s.push_str(&format!(
        "{} rows per measurement (batches of 1, 10 and 100: 200 batches each), median of {} rounds alternating between the \
         modes, fresh databases; the writer's sink writes the posts' `activities` rows, their `objects` rows and its offsets \
         in one transaction per batch, then raises its progress mark in Redis.\n\n",
        config.rows, config.rounds
    ));
    s.push_str(
        "| storage | raw COPY | writer, batches of 1 | 10 | 100 | 1000 | writer / COPY (goal ≥ 0.5) |\n|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let cells: Vec<String> = r.writer.iter().map(|(_, rate)| format!("{rate:.0}/s")).collect();
        s.push_str(&format!("| {} | {:.0}/s | {} | {:.3} |\n", r.storage, r.raw_copy, cells.join(" | "), r.ratio()));
    }
    s.push_str("\nRounds (raw COPY, writer at 1000, their ratio), rows/s:\n\n");
    for r in results {
        let rounds: Vec<String> = r.rounds.iter().map(|(c, w)| format!("({c:.0}, {w:.0}, {:.2})", w / c)).collect();
        s.push_str(&format!("- {}: {}\n", r.storage, rounds.join(", ")));
    }
    s
}
