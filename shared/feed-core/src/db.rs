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

/// Applies pending migrations. Safe to run from several processes at once: sqlx takes
/// an advisory lock.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("../../migrations").run(pool).await?;
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
