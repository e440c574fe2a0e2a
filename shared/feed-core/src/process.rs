//! How a consumer process boots and ends: telemetry, the metrics listener, the signal
//! that stops it, and a bounded wait for what is left behind.

use anyhow::Context;

/// The life of a consumer process (writer, fan-out): telemetry, the metrics listener on
/// `METRICS_ADDR` (default port `default_metrics_port`), `run` until SIGTERM or Ctrl-C,
/// then exit. The process fails at once if the listener cannot bind, and stops (with an
/// error) if it dies: without it nothing can probe or scrape the process. Blocking work
/// left behind — a Kafka client still closing against an unreachable broker — may hold
/// the exit for a second at most.
pub fn run_process<F: std::future::Future<Output = anyhow::Result<()>>>(
    default_metrics_port: u16,
    run: impl FnOnce(crate::shutdown::Shutdown) -> F,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        crate::telemetry::init()?;
        let default_addr = std::net::SocketAddr::from(([127, 0, 0, 1], default_metrics_port));
        let metrics_addr = crate::config::env_or("METRICS_ADDR", default_addr)?;
        let listener =
            tokio::net::TcpListener::bind(metrics_addr).await.with_context(|| format!("cannot listen on METRICS_ADDR={metrics_addr}"))?;
        let shutdown = crate::shutdown::on_signal();
        let metrics = async {
            let served = crate::metrics::serve(listener, shutdown.clone()).await;
            if let Err(error) = &served {
                tracing::error!(error = %format!("{error:#}"), "the metrics listener stopped; stopping");
            }
            shutdown.cancel();
            served.context("metrics listener")
        };
        let consumed = async {
            let ran = run(shutdown.clone()).await;
            shutdown.cancel();
            ran
        };
        let (ran, served) = tokio::join!(consumed, metrics);
        ran.and(served)
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
