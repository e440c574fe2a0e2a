//! The event envelope: every change in the product is one of these on the feed topic.
//!
//! This is a public contract (see `docs/events.md`): downstream teams decode it with their
//! own Kafka clients. Add fields, never rename or repurpose them; a breaking change gets a
//! new `schema_version`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The version written into every envelope this code produces.
pub const SCHEMA_VERSION: u16 = 1;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A user account was created; `payload.key_hash` holds the SHA-256 of its key.
    UserCreated,
    /// The actor published `object` (a post or a photo); `payload.content` holds it.
    Post,
    /// The actor liked `object`, owned by `target`.
    Like,
    /// The actor shared `object`, owned by `target`.
    Share,
    /// The actor followed `target`.
    Follow,
    /// The actor stopped following `target`.
    Unfollow,
    /// The actor's app key was replaced; `payload.key_hash` holds the SHA-256 of the new
    /// key, and the old key stops working.
    KeyRotated,
    /// The actor, its owner, deleted `object`: it and every like and share of it leave
    /// every feed, and later likes and shares of it are dropped.
    Deleted,
    /// A free-verb activity (feed-me's `POST /activity`): the actor did `payload.verb`
    /// (lowercase letters) to `payload.object` (free text) concerning `target`.
    Activity,
    /// A type added by a newer producer. Consumers skip it, as `docs/events.md` asks.
    #[serde(other)]
    Unknown,
}

impl EventType {
    /// The verb shown in feeds, or `None` for events that are not activities.
    pub fn verb(self) -> Option<&'static str> {
        match self {
            // An Activity's verb is in its payload: see `Event::verb`.
            EventType::UserCreated | EventType::KeyRotated | EventType::Deleted | EventType::Activity | EventType::Unknown => None,
            EventType::Post => Some("post"),
            EventType::Like => Some("like"),
            EventType::Share => Some("share"),
            EventType::Follow => Some("follow"),
            EventType::Unfollow => Some("unfollow"),
        }
    }

    /// The wire name, as in the envelope's `type` and the `event_type` header.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user_created",
            EventType::KeyRotated => "key_rotated",
            EventType::Activity => "activity",
            EventType::Deleted => "deleted",
            EventType::Unknown => "unknown",
            other => other.verb().unwrap_or("unknown"),
        }
    }

    /// Whether the activity is pushed into the followers' friends feeds.
    pub fn fans_out(self) -> bool {
        matches!(self, EventType::Post | EventType::Like | EventType::Share | EventType::Activity)
    }
}

/// The two kinds of content object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A text post.
    Post,
    /// A photo.
    Photo,
}

impl ObjectKind {
    /// The lower-case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Post => "post",
            ObjectKind::Photo => "photo",
        }
    }

    /// Parses `"post"` or `"photo"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "post" => Some(ObjectKind::Post),
            "photo" => Some(ObjectKind::Photo),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user as events name them: the id is the stable reference, the name is carried so
/// consumers can render feeds without a lookup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// The user's numeric id.
    pub id: i64,
    /// The user's name.
    pub name: String,
}

/// A content object, `post:21` or `photo:3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Post or photo.
    #[serde(rename = "type")]
    pub kind: ObjectKind,
    /// Positive id, allocated in order per kind.
    pub id: i64,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

/// One change, as published on the feed topic (keyed by `actor.id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Envelope version; [`SCHEMA_VERSION`] for everything this code writes.
    pub schema_version: u16,
    /// Unique id (UUIDv7, so ids sort by creation time). Consumers deduplicate on it.
    pub event_id: Uuid,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Who did it.
    pub actor: UserRef,
    /// What it was done to, for posts, likes and shares.
    pub object: Option<ObjectRef>,
    /// Whom it concerns: the followed user, or the owner of a liked or shared object.
    pub target: Option<UserRef>,
    /// When the API accepted it.
    pub time: DateTime<Utc>,
    /// Type-specific details (see `docs/events.md`).
    #[serde(default)]
    pub payload: serde_json::Value,
}

impl Event {
    /// A new event of the current schema version, stamped now.
    pub fn new(kind: EventType, actor: UserRef, object: Option<ObjectRef>, target: Option<UserRef>, payload: serde_json::Value) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            event_id: Uuid::now_v7(),
            kind,
            actor,
            object,
            target,
            time: truncate_to_micros(Utc::now()),
            payload,
        }
    }

    /// Decodes a record value, refusing envelopes of a newer major schema.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(bytes)
    }

    /// The verb feeds show, or `None` for events that are not activities (and for a
    /// free-verb activity without one, which no API accepts).
    pub fn verb(&self) -> Option<&str> {
        match self.kind {
            EventType::Activity => self.payload_str("verb"),
            kind => kind.verb(),
        }
    }

    /// The free-text object of a free-verb activity.
    pub fn free_object(&self) -> Option<&str> {
        (self.kind == EventType::Activity).then(|| self.payload_str("object")).flatten()
    }

    /// The `payload.<field>` string, if present.
    pub fn payload_str(&self, field: &str) -> Option<&str> {
        self.payload.get(field).and_then(|v| v.as_str())
    }
}

/// A record of one of the topics, the public contract `docs/events.md` describes: the
/// feed [`Event`] and the other streams' envelopes (see [`crate::streams`]). How it is
/// keyed, which headers it carries and how it is encoded is decided here, once, for the
/// producers (the API, the tools) and the consumers alike.
pub trait Envelope: Serialize + serde::de::DeserializeOwned + Sized {
    /// The record key, which decides the partition (and so the order kept).
    fn key(&self) -> String;
    /// The unique id consumers deduplicate on (header `event_id`).
    fn id(&self) -> Uuid;
    /// The envelope's `schema_version`.
    fn schema_version(&self) -> u16;
    /// The `event_type` header, for streams with several types.
    fn event_type(&self) -> Option<&'static str> {
        None
    }

    /// The record headers: `event_id`, `event_type` where there is one, `schema_version`.
    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("event_id", self.id().to_string())];
        if let Some(kind) = self.event_type() {
            headers.push(("event_type", kind.to_string()));
        }
        headers.push(("schema_version", SCHEMA_VERSION.to_string()));
        headers
    }

    /// The record value: the envelope as JSON.
    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope of plain fields always serializes")
    }

    /// Decodes a record value, refusing envelopes of a newer major schema.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value: Self = serde_json::from_slice(bytes).map_err(DecodeError::Json)?;
        match value.schema_version() {
            v if v > SCHEMA_VERSION => Err(DecodeError::UnknownVersion(v)),
            _ => Ok(value),
        }
    }
}

impl Envelope for Event {
    /// The actor's id, so one actor's events stay in order.
    fn key(&self) -> String {
        self.actor.id.to_string()
    }
    fn id(&self) -> Uuid {
        self.event_id
    }
    fn schema_version(&self) -> u16 {
        self.schema_version
    }
    fn event_type(&self) -> Option<&'static str> {
        Some(self.kind.as_str())
    }
}

/// Why a record could not be turned into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not the envelope's shape.
    #[error("not a valid event envelope: {0}")]
    Json(serde_json::Error),
    /// Written by a newer producer than this consumer understands.
    #[error("unsupported schema_version {0}")]
    UnknownVersion(u16),
}

/// PostgreSQL stores microseconds; truncating up front makes the event's time identical
/// in the log, the hypertable and Redis, which the idempotent writes rely on.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event::new(
            EventType::Like,
            UserRef { id: 1, name: "ivan".into() },
            Some(ObjectRef { kind: ObjectKind::Photo, id: 21 }),
            Some(UserRef { id: 3, name: "eric".into() }),
            serde_json::Value::Null,
        )
    }

    #[test]
    fn round_trips_through_json() {
        let event = sample();
        let decoded = Event::from_bytes(&event.to_bytes()).unwrap();
        assert_eq!(decoded, event);
    }

    #[test]
    fn wire_names_are_the_documented_ones() {
        let value: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        assert_eq!(value["type"], "like");
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["object"]["type"], "photo");
        assert_eq!(value["object"]["id"], 21);
        assert_eq!(value["target"]["name"], "eric");
        assert!(value["event_id"].as_str().unwrap().len() == 36);
    }

    #[test]
    fn rejects_garbage_and_future_versions() {
        assert!(matches!(Event::from_bytes(b"nope"), Err(DecodeError::Json(_))));
        let mut value: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        value["schema_version"] = 2.into();
        let bytes = serde_json::to_vec(&value).unwrap();
        assert!(matches!(Event::from_bytes(&bytes), Err(DecodeError::UnknownVersion(2))));
    }

    #[test]
    fn unknown_types_decode_so_consumers_can_skip_them() {
        let mut value: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        value["type"] = "poll_created".into();
        let event = Event::from_bytes(&serde_json::to_vec(&value).unwrap()).unwrap();
        assert_eq!(event.kind, EventType::Unknown);
        assert_eq!(event.kind.verb(), None);
        assert!(!event.kind.fans_out());
    }

    #[test]
    fn header_names_match_the_wire_names() {
        for kind in [
            EventType::UserCreated,
            EventType::Post,
            EventType::Like,
            EventType::Share,
            EventType::Follow,
            EventType::Unfollow,
            EventType::KeyRotated,
        ] {
            let wire = serde_json::to_value(kind).unwrap();
            assert_eq!(wire, kind.as_str());
        }
    }

    #[test]
    fn time_is_truncated_to_microseconds() {
        let event = sample();
        assert_eq!(event.time.timestamp_subsec_nanos() % 1000, 0);
    }

    #[test]
    fn object_ref_displays_as_kind_colon_id() {
        let object = ObjectRef { kind: ObjectKind::Post, id: 22 };
        assert_eq!(object.to_string(), "post:22");
    }
}
