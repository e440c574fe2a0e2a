//! The writer process: configuration, telemetry, run until SIGTERM.

fn main() -> anyhow::Result<()> {
    feed_core::process::run_process(9101, |shutdown| async move {
        let config = writer::Config::from_env()?;
        writer::Application::build(config).await?.run(shutdown).await
    })
}
