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
