//! Rate limits and load shedding: what keeps one client, or a burst, from taking the
//! API down for everyone.
//!
//! - Rate limits: a token bucket per app key (per client address for requests without
//!   a key, and for requests whose key is not yet known to be valid, so made-up keys
//!   share one bucket), refilled at the configured rate with a burst of one second's worth; an
//!   empty bucket answers 429 with `Retry-After` and the `RateLimit-*` headers. Off by
//!   default. Operations routes (`/livez`, `/readyz`, `/health`, `/metrics`, `/openapi.json`) are
//!   never limited.
//! - Shedding: at most [`Settings::max_pending_writes`] writes are in flight (published
//!   and waiting for read-your-writes) at once; a write beyond that answers 503 with
//!   `Retry-After` at once instead of queueing for seconds.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The knobs.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Requests per second per app key (`RATE_LIMIT_PER_KEY`, 0 = no limit, the default).
    pub per_key: u32,
    /// Requests per second per client address, for requests without a key
    /// (`RATE_LIMIT_PER_ADDRESS`, 0 = no limit, the default).
    pub per_address: u32,
    /// Writes in flight at once (`MAX_PENDING_WRITES`, default 1024).
    pub max_pending_writes: usize,
}

/// The buckets of every client, and the write slots.
#[derive(Clone)]
pub struct Shedding {
    settings: Settings,
    buckets: moka::sync::Cache<String, Arc<Mutex<Bucket>>>,
    writes: Arc<tokio::sync::Semaphore>,
}

/// One client's tokens.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a bucket said.
#[derive(Debug, PartialEq)]
enum Verdict {
    Allowed { remaining: u32 },
    Limited { retry_after: Duration },
}

impl Bucket {
    fn take(&mut self, rate: u32, now: Instant) -> Verdict {
        let rate = f64::from(rate);
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Verdict::Allowed { remaining: self.tokens as u32 }
        } else {
            Verdict::Limited { retry_after: Duration::from_secs_f64((1.0 - self.tokens) / rate) }
        }
    }
}

/// Proof that a write holds one of the slots; released when dropped.
pub struct WriteSlot(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl Shedding {
    /// Buckets and slots for `settings`.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            // Idle clients are forgotten: a full bucket is what a new one gets anyway.
            buckets: moka::sync::Cache::builder().max_capacity(1_000_000).time_to_idle(Duration::from_secs(60)).build(),
            writes: Arc::new(tokio::sync::Semaphore::new(settings.max_pending_writes)),
        }
    }

    /// A write slot, or 503 + `Retry-After` when all are taken.
    pub fn write_slot(&self) -> Result<WriteSlot, ApiError> {
        self.writes.clone().try_acquire_owned().map(WriteSlot).map_err(|_| {
            metrics::counter!("feed_http_shed_total").increment(1);
            ApiError::Overloaded("Too many writes in flight, retry shortly".into())
        })
    }

    fn check(&self, client: String, rate: u32) -> Verdict {
        let bucket = self.buckets.get_with(client, || Arc::new(Mutex::new(Bucket { tokens: f64::from(rate), at: Instant::now() })));
        let verdict = bucket.lock().map(|mut b| b.take(rate, Instant::now()));
        verdict.unwrap_or(Verdict::Allowed { remaining: 0 })
    }
}

/// The middleware: limits a request by its key, or else its client address.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let settings = state.shedding.settings;
    let operations = matches!(request.uri().path(), "/livez" | "/readyz" | "/health" | "/metrics" | "/openapi.json");
    let key = request.headers().get(crate::auth::KEY_HEADER).map(|v| crate::auth::hash_key(String::from_utf8_lossy(v.as_bytes()).trim()));
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
    let (client, rate) = match key {
        // Only keys known to be valid get a bucket of their own: made-up keys would
        // otherwise each get a fresh one (and cost a database lookup each).
        Some(hash) if state.auth_cache.contains_key(&hash) => (format!("key:{hash}"), settings.per_key),
        Some(_) => (format!("unverified-key:{address}"), settings.per_key),
        None => (format!("address:{address}"), settings.per_address),
    };
    if operations || rate == 0 {
        return next.run(request).await;
    }
    match state.shedding.check(client, rate) {
        Verdict::Allowed { remaining } => {
            let mut response = next.run(request).await;
            add_headers(&mut response, rate, remaining, 1);
            response
        }
        Verdict::Limited { retry_after } => {
            metrics::counter!("feed_http_rate_limited_total").increment(1);
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let mut response = ApiError::RateLimited.into_response();
            add_headers(&mut response, rate, 0, seconds);
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}

/// The `RateLimit-Limit`, `-Remaining` and `-Reset` headers (IETF httpapi draft).
fn add_headers(response: &mut Response, limit: u32, remaining: u32, reset: u64) {
    let headers = response.headers_mut();
    headers.insert(HeaderName::from_static("ratelimit-limit"), HeaderValue::from(limit));
    headers.insert(HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(remaining));
    headers.insert(HeaderName::from_static("ratelimit-reset"), HeaderValue::from(reset));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_seconds_worth_then_refills() {
        let start = Instant::now();
        let mut bucket = Bucket { tokens: 2.0, at: start };
        assert_eq!(bucket.take(2, start), Verdict::Allowed { remaining: 1 });
        assert_eq!(bucket.take(2, start), Verdict::Allowed { remaining: 0 });
        assert_eq!(bucket.take(2, start), Verdict::Limited { retry_after: Duration::from_millis(500) });
        assert_eq!(bucket.take(2, start + Duration::from_millis(500)), Verdict::Allowed { remaining: 0 });
        // Never more than the burst, however long it waited.
        assert_eq!(bucket.take(2, start + Duration::from_secs(60)), Verdict::Allowed { remaining: 1 });
    }
}
