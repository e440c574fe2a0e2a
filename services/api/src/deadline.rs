//! A write's deadline, and whether its client is still there.
//!
//! Every request runs inside a [`Scope`] (set by the [`scope`] middleware) that knows
//! when the request arrived and holds a handle on the client's socket. Before a write is
//! published, [`Scope::check_before_publish`] refuses it
//! - when its client has hung up: nobody would learn that it was recorded, and a client
//!   that gave up usually retries, so publishing it would record it twice;
//! - when publishing could no longer finish within the deadline: 503 + `Retry-After`,
//!   nothing recorded.
//!
//! Once a record is handed to the producer it may be stored, so the deadline never cuts
//! a publish short: the publish is bounded by `PUBLISH_TIMEOUT_MS` (the producer's
//! delivery timeout), and the read-your-writes wait by what is left of the deadline.
//! Requests outside the HTTP server (tools, tests calling [`crate::AppState`]) have no
//! scope and no deadline.

use crate::error::ApiError;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A second handle on a client's TCP socket, only to ask whether the client has gone.
#[derive(Clone, Debug)]
pub struct ClientSocket(Arc<std::net::TcpStream>);

impl ClientSocket {
    /// A handle on `stream`'s socket; `None` if the descriptor cannot be duplicated (out
    /// of descriptors), and then the request is served without the check.
    pub fn of(stream: &tokio::net::TcpStream) -> Option<Self> {
        let fd = stream.as_fd().try_clone_to_owned().ok()?;
        Some(Self(Arc::new(std::net::TcpStream::from(fd))))
    }

    /// True once the client closed or reset the connection. Peeks without blocking (the
    /// descriptor shares tokio's non-blocking mode): end of stream or an error means
    /// gone; pending bytes (a pipelined request) or nothing to read yet mean there.
    /// A client that only shut down its sending side also reads as gone.
    pub fn gone(&self) -> bool {
        let mut byte = [0u8; 1];
        match self.0.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
        }
    }
}

/// The current request, as the write path sees it.
#[derive(Clone, Debug)]
pub struct Scope {
    arrived: Instant,
    deadline: Duration,
    client: Option<ClientSocket>,
}

tokio::task_local! {
    // A task-local rather than a parameter: every write goes through
    // `AppState::record_on`, and the handlers in between need not carry it.
    static CURRENT: Scope;
}

/// The scope of the request being served on this task, if any.
pub fn current() -> Option<Scope> {
    CURRENT.try_with(Scope::clone).ok()
}

/// The middleware: runs the rest of the request inside its [`Scope`].
pub async fn scope(axum::extract::State(deadline): axum::extract::State<Duration>, request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ClientSocket>().cloned();
    let scope = Scope { arrived: Instant::now(), deadline, client };
    CURRENT.scope(scope, next.run(request)).await
}

impl Scope {
    /// What is left of the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_sub(self.arrived.elapsed())
    }

    /// Refuses a write that must not be published now; see the module documentation.
    /// `publish_timeout` is how long the publish may take.
    pub fn check_before_publish(&self, publish_timeout: Duration) -> Result<(), ApiError> {
        if self.client.as_ref().is_some_and(ClientSocket::gone) {
            metrics::counter!("feed_http_abandoned_total").increment(1);
            return Err(ApiError::ClientGone);
        }
        if self.remaining() < publish_timeout {
            metrics::counter!("feed_http_deadline_expired_total").increment(1);
            return Err(ApiError::Overloaded("The write could not be started within its deadline; nothing was recorded".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_starts_only_if_its_publish_fits_in_the_deadline() {
        let scope = Scope { arrived: Instant::now(), deadline: Duration::from_secs(10), client: None };
        assert!(scope.check_before_publish(Duration::from_secs(5)).is_ok());
        let late = Scope { arrived: Instant::now() - Duration::from_secs(6), ..scope };
        let refused = late.check_before_publish(Duration::from_secs(5)).expect_err("too late to publish");
        assert_eq!(refused.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(late.remaining() <= Duration::from_secs(4));
    }

    #[tokio::test]
    async fn a_closed_connection_reads_as_gone_and_an_open_one_does_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let socket = ClientSocket::of(&server).expect("duplicate the descriptor");
        assert!(!socket.gone());
        drop(client);
        // The socket turns readable when the client's FIN arrives.
        server.readable().await.unwrap();
        assert!(socket.gone());
    }
}
