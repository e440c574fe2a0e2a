//! How a consumer process boots and ends: telemetry, the metrics listener, the signal
//! that stops it, and a bounded wait for what is left behind.

/// The life of a consumer process (writer, fan-out): telemetry, the metrics listener on
/// `METRICS_ADDR` (default port `default_metrics_port`), `run` until SIGTERM or Ctrl-C,
/// then exit. Blocking work left behind — a Kafka client still closing against an
/// unreachable broker — may hold the exit for a second at most.
pub fn run_process<F: std::future::Future<Output = anyhow::Result<()>>>(
    default_metrics_port: u16,
    run: impl FnOnce(crate::shutdown::Shutdown) -> F,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        crate::telemetry::init()?;
        let default_addr = std::net::SocketAddr::from(([127, 0, 0, 1], default_metrics_port));
        let metrics_addr = crate::config::env_or("METRICS_ADDR", default_addr)?;
        let shutdown = crate::shutdown::on_signal();
        tokio::spawn(crate::metrics::serve(metrics_addr, shutdown.clone()));
        run(shutdown).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
