//! The writer process: configuration, telemetry, run until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init();
    let config = writer::Config::from_env()?;
    let app = writer::Application::build(config).await?;
    app.run(feed_core::shutdown::on_signal()).await
}
