//! The fan-out process: configuration, telemetry, run until SIGTERM.

fn main() -> anyhow::Result<()> {
    feed_core::process::run_process(9102, |shutdown| async move {
        let config = fanout::Config::from_env()?;
        fanout::Application::build(config).await?.run(shutdown).await
    })
}
