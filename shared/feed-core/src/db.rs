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
