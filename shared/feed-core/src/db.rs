//! PostgreSQL pool and migrations (the `migrations/` folder at the repository root).

use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

/// Opens a pool; fails fast when the database cannot be reached.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
    Ok(pool)
}

/// How the time-partitioned tables (`activities`, `generic_events`, `analytics_hits`,
/// `analytics_hourly_users`) are stored; chosen once, by the first migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// TimescaleDB hypertables: chunks made and dropped by TimescaleDB.
    Hypertables,
    /// The fallback without TimescaleDB: native range partitions, weekly, made on demand
    /// by the writer (`feed_ensure_partition`).
    NativePartitions,
}

impl Storage {
    /// The name operators see in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Hypertables => "timescaledb hypertables",
            Storage::NativePartitions => "native partitions",
        }
    }
}

/// The storage mode of a migrated database.
pub async fn storage(pool: &PgPool) -> sqlx::Result<Storage> {
    let mode: String = sqlx::query_scalar("SELECT feed_storage()").fetch_one(pool).await?;
    Ok(if mode == "native" { Storage::NativePartitions } else { Storage::Hypertables })
}

/// Migrations whose text was corrected after release, with the checksum they were first
/// applied with: a database migrated before keeps working (its schema is what the
/// corrected text makes there). 20261123000001 used to choose hypertables when TimescaleDB
/// was merely installed, which fails where it is not preloaded.
const CORRECTED: &[(i64, &str)] =
    &[(20261123000001, "7691e64577e6bef875f494963a4c4b23c8f7df39ae2b53d385f7997bca665599c6f7e0102951d64631fe2e22709a5832")];

/// Applies pending migrations and logs the storage mode they chose. Safe to run from
/// several processes at once: sqlx takes an advisory lock.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Storage> {
    let migrator = sqlx::migrate!("../../migrations");
    accept_corrections(pool, &migrator).await?;
    migrator.run(pool).await?;
    let storage = storage(pool).await?;
    tracing::info!(storage = storage.as_str(), "database migrated");
    Ok(storage)
}

/// Records the corrected checksums of [`CORRECTED`] migrations applied with their
/// original text, so sqlx does not refuse them as modified.
async fn accept_corrections(pool: &PgPool, migrator: &sqlx::migrate::Migrator) -> anyhow::Result<()> {
    let applied: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text").fetch_one(pool).await?;
    if applied.is_none() {
        return Ok(());
    }
    for (version, original) in CORRECTED {
        let Some(migration) = migrator.iter().find(|m| m.version == *version) else { continue };
        let original = hex::decode(original)?;
        sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2 AND checksum = $3")
            .bind(migration.checksum.as_ref())
            .bind(version)
            .bind(original)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Whether an error says PostgreSQL cannot be reached or cannot work right now
/// (connection or pool failures; SQLSTATE classes 08 connection exception, 53
/// insufficient resources, 57P operator intervention such as a shutdown, 58 system
/// error): worth waiting out, unlike an error about the statement or its data.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| ["08", "53", "57P", "58"].iter().any(|class| c.starts_with(class))),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}
