//! The fan-out process: configuration, telemetry, run until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init();
    let config = fanout::Config::from_env()?;
    let metrics_addr = feed_core::config::env_or("METRICS_ADDR", std::net::SocketAddr::from(([127, 0, 0, 1], 9102)))?;
    let shutdown = feed_core::shutdown::on_signal();
    tokio::spawn(feed_core::metrics::serve(metrics_addr, shutdown.clone()));
    let app = fanout::Application::build(config).await?;
    app.run(shutdown).await
}
