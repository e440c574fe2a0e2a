//! The API's settings, from environment variables (see the README's table).

use crate::{server, shedding};
use feed_core::config::{env_millis, env_or, CommonConfig, FeedSettings};
use std::net::SocketAddr;
use std::time::Duration;

/// The API's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shared settings (stores, broker, topic, groups).
    pub common: CommonConfig,
    /// `LISTEN_ADDR` (default `127.0.0.1:5000`, the reference's port); port 0 picks one.
    pub listen_addr: SocketAddr,
    /// `PUBLISH_TIMEOUT_MS` (default 5000): how long to wait for the broker's
    /// acknowledgement before answering 503.
    pub publish_timeout: Duration,
    /// `WRITE_DEADLINE_MS` (default 10000): how long a write may take in all. A write
    /// that cannot start publishing at least `publish_timeout` before it answers 503 +
    /// `Retry-After` (nothing recorded); the read-your-writes wait gets what is left.
    /// Must exceed `publish_timeout`.
    pub write_deadline: Duration,
    /// `READ_YOUR_WRITES_TIMEOUT_MS` (default 5000): how long a write waits for the
    /// consumers before answering anyway.
    pub read_your_writes_timeout: Duration,
    /// `DEMO_USERS` (default false): create ivan, nico and eric with keys
    /// abc123, abc124 and abc125 at start, if they do not exist.
    pub demo_users: bool,
    /// `MAX_BODY_BYTES` (default 65536): larger bodies get 413.
    pub max_body_bytes: usize,
    /// `DB_POOL_SIZE` (default 16).
    pub db_pool_size: u32,
    /// `BODY_CACHE_ENTRIES` (default 100000): feed entries' bodies kept in memory (about
    /// 200 bytes each), so a feed page costs Redis its refs and only the bodies not seen.
    pub body_cache_entries: u64,
    /// How the fan-out keeps the feeds (`FEED_MAX_LEN`, `HOT_AUTHOR_FOLLOWERS`,
    /// `FEED_ACTIVE_HOURS`): the API catches returning readers up by them.
    pub feed: FeedSettings,
    /// Connection count and read timeouts (`MAX_CONNECTIONS`, `HEADER_READ_TIMEOUT_MS`,
    /// `BODY_READ_TIMEOUT_MS`).
    pub limits: server::Limits,
    /// Rate limits and writes in flight (`RATE_LIMIT_PER_KEY`, `RATE_LIMIT_PER_ADDRESS`,
    /// `MAX_PENDING_WRITES`).
    pub shedding: shedding::Settings,
    /// `SHUTDOWN_DELAY_MS` (default 0): after SIGTERM, how long the API goes on serving
    /// while `/readyz` answers 503, so load balancers stop sending it traffic before it
    /// stops accepting (where a `preStop` sleep cannot be used).
    pub shutdown_delay: Duration,
}

impl Config {
    /// Reads the settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let publish_timeout = env_millis("PUBLISH_TIMEOUT_MS", 5000)?;
        let write_deadline = env_millis("WRITE_DEADLINE_MS", 10_000)?;
        anyhow::ensure!(
            write_deadline > publish_timeout,
            "WRITE_DEADLINE_MS ({write_deadline:?}) must exceed PUBLISH_TIMEOUT_MS ({publish_timeout:?})"
        );
        Ok(Self {
            common: CommonConfig::from_env()?,
            listen_addr: env_or("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 5000)))?,
            publish_timeout,
            write_deadline,
            read_your_writes_timeout: env_millis("READ_YOUR_WRITES_TIMEOUT_MS", 5000)?,
            demo_users: env_or("DEMO_USERS", false)?,
            max_body_bytes: env_or("MAX_BODY_BYTES", 64 * 1024)?,
            db_pool_size: env_or("DB_POOL_SIZE", 16)?,
            feed: FeedSettings::from_env()?,
            body_cache_entries: env_or("BODY_CACHE_ENTRIES", 100_000)?,
            limits: server::Limits {
                max_connections: env_or("MAX_CONNECTIONS", 1024)?,
                header_read_timeout: env_millis("HEADER_READ_TIMEOUT_MS", 10_000)?,
                body_read_timeout: env_millis("BODY_READ_TIMEOUT_MS", 10_000)?,
            },
            shedding: shedding::Settings {
                per_key: env_or("RATE_LIMIT_PER_KEY", 0)?,
                per_address: env_or("RATE_LIMIT_PER_ADDRESS", 0)?,
                max_pending_writes: env_or("MAX_PENDING_WRITES", 1024)?,
            },
            shutdown_delay: env_millis("SHUTDOWN_DELAY_MS", 0)?,
        })
    }
}
