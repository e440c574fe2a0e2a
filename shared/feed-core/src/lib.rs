//! Shared building blocks of the activity-feed pipeline.
//!
//! Data flows API → Kafka topic → writer / fan-out → PostgreSQL / Redis. This crate
//! holds what more than one of those stages must agree on:
//!
//! - [`event`]: the versioned event envelope, the public contract of the topics;
//! - [`feed`]: how a feed entry looks and how the fan-out stores it;
//! - [`keys`]: the names of every Redis key;
//! - [`friends`]: reading a friends feed from Redis (pushed refs merged with hot
//!   authors' sets);
//! - [`activities`]: the feed queries on the `activities` hypertable;
//! - [`generic_events`]: the listing query on the `generic_events` hypertable;
//! - [`progress`]: the offsets each consumer has applied, which the API waits on
//!   to give clients read-your-writes;
//! - [`streams`]: the envelopes of the generic-event and analytics streams;
//! - [`consumer`]: the loop every consumer runs, its sinks owning the offsets;
//! - [`health`]: how far each consumer got, for lag, stall alerts and `/health`;
//! - [`process`]: how the writer and the fan-out boot and end;
//! - [`wakeup`]: the API's announcements that wake idle consumers;
//! - [`config`], [`telemetry`], [`metrics`], [`kafka`], [`db`], [`redis_client`], [`shutdown`]: setup.

pub mod activities;
pub mod config;
pub mod consumer;
pub mod db;
pub mod event;
pub mod feed;
pub mod friends;
pub mod generic_events;
pub mod health;
pub mod kafka;
pub mod keys;
pub mod metrics;
pub mod process;
pub mod progress;
pub mod redis_client;
pub mod shutdown;
pub mod streams;
pub mod telemetry;
pub mod wakeup;
