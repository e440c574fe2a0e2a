//! The envelopes of the two other streams: generic events (`EVENTS_TOPIC`) and
//! analytics hits (`ANALYTICS_TOPIC`). Public contracts like the feed [`Event`]
//! (see `docs/events.md`).
//!
//! [`Event`]: crate::event::Event

use crate::event::{Envelope, SCHEMA_VERSION};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A generic application event (the activity-service reference), keyed by `email`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenericEvent {
    /// Envelope version.
    pub schema_version: u16,
    /// Unique id, returned to the client as `id`; consumers deduplicate on it.
    pub id: Uuid,
    /// Which part of the client's system it comes from (non-blank).
    pub component: String,
    /// Any JSON value.
    pub data: serde_json::Value,
    /// A valid email address.
    pub email: String,
    /// e.g. production, staging (non-blank).
    pub environment: String,
    /// What happened (non-blank).
    pub message: String,
    /// When the API accepted it.
    pub created_at: DateTime<Utc>,
}

impl GenericEvent {
    /// A new event of the current schema version, stamped now.
    pub fn new(component: String, data: serde_json::Value, email: String, environment: String, message: String) -> Self {
        let created_at = crate::event::truncate_to_micros(Utc::now());
        Self { schema_version: SCHEMA_VERSION, id: Uuid::now_v7(), component, data, email, environment, message, created_at }
    }
}

impl Envelope for GenericEvent {
    /// The event's email.
    fn key(&self) -> String {
        self.email.clone()
    }
    fn id(&self) -> Uuid {
        self.id
    }
    fn schema_version(&self) -> u16 {
        self.schema_version
    }
}

/// The two analytics event kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// A click.
    Click,
    /// An impression.
    Impression,
}

impl HitKind {
    /// Parses `click` or `impression`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "click" => Some(Self::Click),
            "impression" => Some(Self::Impression),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Click => "click",
            Self::Impression => "impression",
        }
    }
}

/// One analytics hit (the narrative-analytics reference), keyed by `user`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsHit {
    /// Envelope version.
    pub schema_version: u16,
    /// Unique id; consumers deduplicate on it.
    pub event_id: Uuid,
    /// The hit's own time (the client's `timestamp`, milliseconds precision); it may
    /// lie in any past hour.
    pub timestamp: DateTime<Utc>,
    /// The user id the client sent.
    pub user: String,
    /// click or impression.
    pub event: HitKind,
}

impl AnalyticsHit {
    /// A new hit of the current schema version.
    pub fn new(timestamp: DateTime<Utc>, user: String, event: HitKind) -> Self {
        Self { schema_version: SCHEMA_VERSION, event_id: Uuid::now_v7(), timestamp, user, event }
    }
}

impl Envelope for AnalyticsHit {
    /// The hit's user.
    fn key(&self) -> String {
        self.user.clone()
    }
    fn id(&self) -> Uuid {
        self.event_id
    }
    fn schema_version(&self) -> u16 {
        self.schema_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_round_trip_with_documented_names() {
        let hit = AnalyticsHit::new(DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(), "u1".into(), HitKind::Click);
        let bytes = serde_json::to_vec(&hit).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["event"], "click");
        assert_eq!(value["user"], "u1");
        assert_eq!(AnalyticsHit::decode(&bytes).unwrap(), hit);
        assert!(AnalyticsHit::decode(b"{}").is_err());
    }
}
