//! Graceful shutdown: every long-running loop takes a [`Shutdown`] token and stops at a
//! safe point when it is cancelled.

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Resolves on SIGTERM or Ctrl-C, whichever comes first.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// A token that is cancelled when the process receives SIGTERM or Ctrl-C.
pub fn on_signal() -> Shutdown {
    let token = Shutdown::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        signal().await;
        trigger.cancel();
    });
    token
}

/// The life of a consumer process (writer, fan-out): telemetry, the metrics listener on
/// `METRICS_ADDR` (default port `default_metrics_port`), `run` until SIGTERM or Ctrl-C,
/// then exit. Blocking work left behind — a Kafka client still closing against an
/// unreachable broker — may hold the exit for a second at most.
pub fn run_process<F: std::future::Future<Output = anyhow::Result<()>>>(
    default_metrics_port: u16,
    run: impl FnOnce(Shutdown) -> F,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        crate::telemetry::init();
        let default_addr = std::net::SocketAddr::from(([127, 0, 0, 1], default_metrics_port));
        let metrics_addr = crate::config::env_or("METRICS_ADDR", default_addr)?;
        let shutdown = on_signal();
        tokio::spawn(crate::metrics::serve(metrics_addr, shutdown.clone()));
        run(shutdown).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

#[cfg(all(test, unix))]
mod tests {
    /// The real signal reaches the token (this test binary then ignores SIGTERM, as the
    /// services do once they listen for it).
    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let token = super::on_signal();
        // Let the listener register before the signal is sent.
        tokio::task::yield_now().await;
        let mut sent = false;
        for _ in 0..100 {
            if token.is_cancelled() {
                return;
            }
            if !sent {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let status =
                    std::process::Command::new("kill").args(["-TERM", &std::process::id().to_string()]).status().expect("kill runs");
                assert!(status.success());
                sent = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("SIGTERM did not cancel the shutdown token");
    }
}
