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
pub mod config;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod friends;
pub mod json;
pub mod lag;
pub mod openapi;
pub mod pipeline;
pub mod routes;
pub mod server;
pub mod shedding;
pub mod state;
pub mod users;

pub use config::Config;
pub use state::AppState;

use feed_core::shutdown::Shutdown;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// A bound, ready-to-serve API.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    shutdown_hook: Shutdown,
    limits: server::Limits,
    shutdown_delay: std::time::Duration,
}

impl Application {
    /// Connects to the stores and the broker, seeds demo users if asked, and binds the
    /// listener. The broker need not be up: writes answer 503 until it is.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        feed_core::metrics::handle();
        let shutdown_hook = Shutdown::new();
        let state = AppState::connect(&config, shutdown_hook.clone()).await?;
        if config.demo_users {
            users::seed_demo_users(&state.db, &state.feed).await?;
        }
        let router = routes::router(state.clone(), config.max_body_bytes, config.limits.body_read_timeout, config.write_deadline);
        let listener = TcpListener::bind(config.listen_addr).await?;
        Ok(Self { listener, router, state, shutdown_hook, limits: config.limits, shutdown_delay: config.shutdown_delay })
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

    /// Serves until `shutdown` is cancelled; then drains: `/readyz` answers 503, serving
    /// goes on for the shutdown delay, then it stops accepting and finishes the requests
    /// in flight.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "api listening");
        let stop_accepting = Shutdown::new();
        let (draining, delay, stop) = (self.state.draining.clone(), self.shutdown_delay, stop_accepting.clone());
        let drain = tokio::spawn(async move {
            shutdown.cancelled().await;
            draining.cancel();
            tracing::info!(?delay, "draining: /readyz answers 503");
            tokio::time::sleep(delay).await;
            stop.cancel();
        });
        let served = server::serve(self.listener, self.router, self.limits, stop_accepting).await;
        drain.abort();
        self.shutdown_hook.cancel();
        served?;
        tracing::info!("api stopped");
        Ok(())
    }
}
