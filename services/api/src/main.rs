//! The API process: configuration, telemetry, serve until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init()?;
    let config = api::Config::from_env()?;
    let app = api::Application::build(config).await?;
    app.run(feed_core::shutdown::on_signal()).await
}
