//! The API process: configuration, telemetry, serve until SIGTERM.

/// glibc's allocator cost a fifth of a feed read (its free-list consolidation); mimalloc
/// also hands freed memory back to the system by itself.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    feed_core::telemetry::init()?;
    let config = api::Config::from_env()?;
    let app = api::Application::build(config).await?;
    app.run(feed_core::shutdown::on_signal()).await
}
