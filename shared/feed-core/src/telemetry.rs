//! Logging through `tracing`: human-readable by default, JSON when `LOG_FORMAT=json`.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{fmt, EnvFilter};

/// The `tracing` target of the one line per event each stage logs (API: `published`;
/// writer and fan-out: `applied` or `dead-lettered`), each with `event_id`, `topic`,
/// `partition` and `offset`, so one event can be followed across services by its id.
/// Silence them with `RUST_LOG=info,feed_events=off`.
pub const EVENT_LOG: &str = "feed_events";

/// How log lines look (`LOG_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable (`text`, the default).
    Text,
    /// One JSON object per line (`json`).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected text or json".to_string()),
        }
    }
}

/// Installs the global subscriber for a service: stdout, filter from `RUST_LOG`
/// (default `info`). Calling it twice (as tests do) is harmless. Fails on a
/// `LOG_FORMAT` that is neither `text` nor `json`.
pub fn init() -> anyhow::Result<()> {
    install("info", std::io::stdout)
}

/// Installs the global subscriber for a command-line tool: stderr, so stdout carries only
/// the tool's answer, and `warn` unless `RUST_LOG` says otherwise.
pub fn init_for_tool() -> anyhow::Result<()> {
    install("warn", std::io::stderr)
}

fn install<W: for<'w> MakeWriter<'w> + Send + Sync + 'static>(default_filter: &str, writer: W) -> anyhow::Result<()> {
    let format = crate::config::env_or("LOG_FORMAT", LogFormat::Text)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt().with_env_filter(filter).with_target(true).with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}
