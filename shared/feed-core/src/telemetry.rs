//! Logging through `tracing`: human-readable by default, JSON when `LOG_FORMAT=json`.

use tracing_subscriber::{fmt, EnvFilter};

/// The `tracing` target of the one line per event each stage logs (API: `published`;
/// writer and fan-out: `applied` or `dead-lettered`), each with `event_id`, `topic`,
/// `partition` and `offset`, so one event can be followed across services by its id.
/// Silence them with `RUST_LOG=info,feed_events=off`.
pub const EVENT_LOG: &str = "feed_events";

/// Installs the global subscriber. The filter comes from `RUST_LOG` (default `info`).
/// Calling it twice (as tests do) is harmless.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = fmt().with_env_filter(filter).with_target(true);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
