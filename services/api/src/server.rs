//! The HTTP server: accepts connections, at most [`Limits::max_connections`] at once
//! (the rest wait in the listen backlog), and serves each with hyper's HTTP/1.1 under a
//! header-read timeout, which also ends connections that send nothing, keep-alive
//! connections left idle and connections that never finish their headers (slowloris).
//! HTTP/1.1 only: telling HTTP/2 apart needs a first read that no timeout covers, and
//! a proxy in front terminates HTTP/2 anyway. Bodies are bounded by
//! the body-read timeout layer in [`crate::routes`]. On shutdown it stops accepting
//! and lets the requests in flight finish.

use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// What one client may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most connections served at once (`MAX_CONNECTIONS`, default 1024).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, counted from when the
    /// connection is ready for one, so also the idle keep-alive timeout
    /// (`HEADER_READ_TIMEOUT_MS`, default 10000).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body (`BODY_READ_TIMEOUT_MS`,
    /// default 10000); then the request is refused.
    pub body_read_timeout: Duration,
}

/// How long shutdown waits for the requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: feed_core::shutdown::Shutdown,
) -> anyhow::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot?,
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, say: wait rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // The peer address, for per-address rate limits; the socket, so a write can tell
        // whether its client is still there.
        let client = crate::deadline::ClientSocket::of(&stream);
        let service = TowerToHyperService::new(router.clone().map_request(move |request: Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            if let Some(client) = &client {
                request.extensions_mut().insert(client.clone());
            }
            request
        }));
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    Ok(())
}
