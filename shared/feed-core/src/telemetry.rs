//! Logging through `tracing`: human-readable by default, JSON when `LOG_FORMAT=json`.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{fmt, EnvFilter};

/// The `tracing` target of the one line per event each stage logs (API: `published`;
/// writer and fan-out: `applied` or `dead-lettered`), each with `event_id`, `topic`,
/// `partition` and `offset`, so one event can be followed across services by its id.
/// Silence them with `RUST_LOG=info,feed_events=off`.
pub const EVENT_LOG: &str = "feed_events";

/// Installs the global subscriber for a service: stdout, filter from `RUST_LOG`
/// (default `info`). Calling it twice (as tests do) is harmless.
pub fn init() {
    install("info", std::io::stdout);
}

/// Installs the global subscriber for a command-line tool: stderr, so stdout carries only
/// the tool's answer, and `warn` unless `RUST_LOG` says otherwise.
pub fn init_for_tool() {
    install("warn", std::io::stderr);
}

fn install<W: for<'w> MakeWriter<'w> + Send + Sync + 'static>(default_filter: &str, writer: W) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = fmt().with_env_filter(filter).with_target(true).with_writer(writer);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
