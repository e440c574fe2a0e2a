//! API: HTTP → topic.
//!
//! Validates requests, turns every change into an event on its topic (feed, generic
//! events, analytics), and serves reads: `/feed/friends` from the Redis feeds the
//! fan-out maintains (and PostgreSQL past them), everything else from the PostgreSQL
//! projections the writer maintains. A write succeeds (200, 201 or 204) only once the
//! broker acknowledged its event, after waiting (bounded) for the consumers its stream's
//! reads depend on to apply it, so the caller's next read sees its write (see
//! [`pipeline`]).

pub mod auth;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod json;
pub mod openapi;
pub mod pipeline;
pub mod routes;
pub mod server;
pub mod shedding;
pub mod users;

use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use feed_core::config::{env_millis, env_or, CommonConfig};
use feed_core::event::{Envelope, Event};
use feed_core::feed::Keys;
use feed_core::redis_pool::RedisPool;
use feed_core::shutdown::Shutdown;
use pipeline::{Publisher, ReadYourWrites, Stream};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

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
    /// consumer groups before answering anyway.
    pub read_your_writes_timeout: Duration,
    /// `PROGRESS_POLL_MS` (default 1): how often waiting writes re-read progress.
    pub progress_poll: Duration,
    /// `DEMO_USERS` (default false): create ivan, nico and eric with keys
    /// abc123, abc124 and abc125 at start, if they do not exist.
    pub demo_users: bool,
    /// `MAX_BODY_BYTES` (default 65536): larger bodies get 413.
    pub max_body_bytes: usize,
    /// `DB_POOL_SIZE` (default 16) and `REDIS_POOL_SIZE` (default 32).
    pub db_pool_size: u32,
    /// See `db_pool_size`.
    pub redis_pool_size: u32,
    /// Connection count and read timeouts (`MAX_CONNECTIONS`, `HEADER_READ_TIMEOUT_MS`,
    /// `BODY_READ_TIMEOUT_MS`).
    pub limits: server::Limits,
    /// Rate limits and writes in flight (`RATE_LIMIT_PER_KEY`, `RATE_LIMIT_PER_ADDRESS`,
    /// `MAX_PENDING_WRITES`).
    pub shedding: shedding::Settings,
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
            progress_poll: env_millis("PROGRESS_POLL_MS", 1)?,
            demo_users: env_or("DEMO_USERS", false)?,
            max_body_bytes: env_or("MAX_BODY_BYTES", 64 * 1024)?,
            db_pool_size: env_or("DB_POOL_SIZE", 16)?,
            redis_pool_size: env_or("REDIS_POOL_SIZE", 32)?,
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
        })
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// PostgreSQL projections (users, objects, follows, activities).
    pub db: PgPool,
    /// Redis, where the friends feeds live.
    pub redis: RedisPool,
    /// Redis key names.
    pub keys: Keys,
    /// Recently seen app keys.
    pub auth_cache: auth::AuthCache,
    /// Publishes records.
    pub publisher: Publisher,
    /// The feed topic; reads wait on the writer and the fan-out.
    pub feed: Stream,
    /// The generic events topic; reads wait on the writer.
    pub events: Stream,
    /// The analytics topic; reads wait on the writer.
    pub analytics: Stream,
    /// Which hit timestamps `POST /analytics` accepts.
    pub analytics_window: feed_core::config::TimeWindow,
    /// Rate limits and write slots.
    pub shedding: shedding::Shedding,
    /// How long a publish may take (the producer's delivery timeout).
    pub publish_timeout: Duration,
}

/// Header telling whether the write was visible to reads when the answer was sent:
/// `applied`, or `pending` when the read-your-writes bound expired.
pub const CONSISTENCY_HEADER: &str = "x-read-your-writes";

/// Header on `/feed/friends` answers while the feeds are being rebuilt from PostgreSQL
/// (Redis lost them): `true`, and the page may be incomplete.
pub const REBUILDING_HEADER: HeaderName = HeaderName::from_static("x-feed-rebuilding");

/// Header naming the event a write recorded, the id its log lines carry in every service.
pub const EVENT_ID_HEADER: &str = "x-event-id";

/// Proof that an event was acknowledged; attaches [`CONSISTENCY_HEADER`] and
/// [`EVENT_ID_HEADER`] to a response.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Whether the consumers the stream's reads depend on applied it before the answer.
    pub applied: bool,
    /// The recorded event's id.
    pub event_id: Option<String>,
}

impl Recorded {
    /// `body` with the consistency and event id headers.
    pub fn respond(self, body: impl IntoResponse) -> Response {
        let value = if self.applied { "applied" } else { "pending" };
        let mut response = body.into_response();
        let headers = response.headers_mut();
        headers.insert(HeaderName::from_static(CONSISTENCY_HEADER), HeaderValue::from_static(value));
        if let Some(id) = self.event_id.and_then(|id| HeaderValue::try_from(id).ok()) {
            headers.insert(HeaderName::from_static(EVENT_ID_HEADER), id);
        }
        response
    }
}

impl AppState {
    /// Connects to the stores (migrating PostgreSQL if configured) and the broker, and
    /// starts the progress pollers, which stop on `shutdown`. Also what tools such as
    /// `feedctl` use to act as the API does.
    pub async fn connect(config: &Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let common = &config.common;
        let db = feed_core::db::connect(&common.database_url, config.db_pool_size).await?;
        if common.run_migrations {
            feed_core::db::migrate(&db).await?;
        }
        let redis = feed_core::redis_pool::pool(&common.redis_url, config.redis_pool_size).await?;
        if let Err(error) = common.ensure_topics().await {
            // Writes answer 503 until the broker is back; the consumers create them too.
            tracing::warn!(error = %format!("{error:#}"), "cannot create the topics now");
        }
        let keys = Keys::new(&common.redis_key_prefix);
        let producer = feed_core::kafka::producer(&common.kafka_brokers, config.publish_timeout)?;
        let progress_redis = feed_core::redis_pool::manager(&common.redis_url).await?;
        let stream = |topic: &str, groups: &[&str]| Stream {
            topic: topic.to_string(),
            read_your_writes: ReadYourWrites::start(
                progress_redis.clone(),
                groups.iter().map(|group| keys.progress(group, topic)).collect(),
                config.progress_poll,
                config.read_your_writes_timeout,
                shutdown.clone(),
            ),
        };
        Ok(AppState {
            feed: stream(&common.feed_topic, &[&common.writer_group, &common.fanout_group]),
            events: stream(&common.events_topic, &[&common.events_writer_group()]),
            analytics: stream(&common.analytics_topic, &[&common.analytics_writer_group()]),
            db,
            redis,
            keys,
            auth_cache: auth::auth_cache(),
            publisher: Publisher::new(producer),
            analytics_window: common.analytics_window,
            shedding: shedding::Shedding::new(config.shedding),
            publish_timeout: config.publish_timeout,
        })
    }

    /// Publishes a feed `event` and waits (bounded) until the pipeline has applied it.
    pub async fn record(&self, event: &Event) -> Result<Recorded, error::ApiError> {
        self.record_on(&self.feed, event).await
    }

    /// Publishes `envelope` on `stream` and waits (bounded) until the consumers its
    /// reads depend on have applied it: every write goes through here.
    pub async fn record_on(&self, stream: &Stream, envelope: &impl Envelope) -> Result<Recorded, error::ApiError> {
        let _slot = self.shedding.write_slot()?;
        let scope = deadline::current();
        if let Some(scope) = &scope {
            scope.check_before_publish(self.publish_timeout)?;
        }
        let headers = envelope.headers();
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let position = self.publisher.publish(&stream.topic, &envelope.key(), &envelope.to_bytes(), &pairs).await?;
        let applied = stream.read_your_writes.wait(position, scope.map(|s| s.remaining())).await;
        Ok(Recorded { applied, event_id: Some(envelope.id().to_string()) })
    }
}

/// A bound, ready-to-serve API.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    shutdown_hook: Shutdown,
    limits: server::Limits,
}

impl Application {
    /// Connects to the stores and the broker, seeds demo users if asked, and binds the
    /// listener. The broker need not be up: writes answer 503 until it is.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        feed_core::metrics::handle();
        let shutdown_hook = Shutdown::new();
        let state = AppState::connect(&config, shutdown_hook.clone()).await?;
        if config.demo_users {
            users::seed_demo_users(&state).await?;
        }
        let router = routes::router(state.clone(), config.max_body_bytes, config.limits.body_read_timeout, config.write_deadline);
        let listener = TcpListener::bind(config.listen_addr).await?;
        Ok(Self { listener, router, state, shutdown_hook, limits: config.limits })
    }

    /// The handlers' shared state, for tools and tests that act as the API does
    /// (creating users, publishing).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and finishes the
    /// requests in flight.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "api listening");
        let served = server::serve(self.listener, self.router, self.limits, shutdown).await;
        self.shutdown_hook.cancel();
        served?;
        tracing::info!("api stopped");
        Ok(())
    }
}
