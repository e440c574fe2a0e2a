//! Feed entries: the JSON objects `/feed/my` and `/feed/friends` return, and how the
//! fan-out stores them in Redis: a compact [`EntryRef`] per reader in each feed, the
//! entry's body once under its actor (the keys are in [`crate::keys`]).

use crate::event::{Event, ObjectKind};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Entries a friends feed keeps in Redis unless `FEED_MAX_LEN` says otherwise; older
/// ones are read from PostgreSQL.
pub const DEFAULT_MAX_LEN: usize = 800;

/// One line of a feed, exactly as the reference API returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedEntry {
    /// Who did it.
    pub actor_name: String,
    /// post, like, share, follow or unfollow.
    pub verb: String,
    /// The object's id for posts, likes and shares.
    pub object_id: Option<i64>,
    /// `post` or `photo` for posts, likes and shares.
    pub object_type: Option<ObjectKind>,
    /// The followed user, or the owner of a liked or shared object.
    pub target_name: Option<String>,
    /// The free-text object of a free-verb (feed-me) activity; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// RFC 3339 with microseconds, e.g. `2019-02-10T12:01:30.894037+00:00`.
    #[schema(example = "2019-02-10T12:01:30.894037+00:00")]
    pub time: String,
}

impl FeedEntry {
    /// The entry an event shows as, or `None` for events that are not activities.
    pub fn from_event(event: &Event) -> Option<Self> {
        let verb = event.verb()?;
        Some(Self {
            actor_name: event.actor.name.clone(),
            verb: verb.to_string(),
            object_id: event.object.map(|o| o.id),
            object_type: event.object.map(|o| o.kind),
            target_name: event.target.as_ref().map(|t| t.name.clone()),
            object: event.free_object().map(str::to_string),
            time: format_time(event.time),
        })
    }
}

/// The feeds' time format.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Score of an event in a sorted set: microseconds since the epoch (exact in an f64
/// until the year 2255).
pub fn score(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// A feed's reference to an entry, the member of the Redis feeds: the event id (16
/// bytes) then the actor id in decimal (a scripts can name the actor's keys with it), about
/// 22 bytes. Members of equal score sort by event id,
/// as the hypertable orders entries of the same time, so a page can start in Redis and
/// continue in PostgreSQL. The entry's body is stored once, under its actor (see
/// [`crate::keys::Keys::bodies`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryRef {
    /// The event.
    pub event_id: Uuid,
    /// Who did it: whose `bodies` hold the entry.
    pub actor_id: i64,
}

impl EntryRef {
    /// The ref of `event`'s entry, or `None` for events that do not fan out.
    pub fn of(event: &Event) -> Option<Self> {
        (event.kind.fans_out() && event.verb().is_some()).then_some(Self { event_id: event.event_id, actor_id: event.actor.id })
    }

    /// The bytes stored in Redis.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(self.event_id.as_bytes());
        bytes.extend_from_slice(self.actor_id.to_string().as_bytes());
        bytes
    }

    /// The field of the entry's body in its actor's bodies hash: the event id's bytes.
    pub fn body_field(self) -> [u8; 16] {
        *self.event_id.as_bytes()
    }

    /// Parses what [`EntryRef::to_bytes`] wrote; `None` for anything else.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let event_id = Uuid::from_slice(bytes.get(..16)?).ok()?;
        let actor_id = std::str::from_utf8(bytes.get(16..)?).ok()?.parse().ok()?;
        Some(Self { event_id, actor_id })
    }
}

/// Members of a sorted set with their scores (microseconds), as Redis answers them.
pub type Scored = Vec<(Vec<u8>, i64)>;

/// The body stored for `event`'s entry: the entry's JSON, as reads return it.
pub fn body(event: &Event) -> Option<String> {
    serde_json::to_string(&FeedEntry::from_event(event)?).ok()
}

/// The object (`post:21`) an entry's body refers to, if it has one: what a delete of
/// that object must take out of the feeds.
pub fn body_object(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Object {
        object_id: Option<i64>,
        object_type: Option<ObjectKind>,
    }
    let object: Object = serde_json::from_slice(body).ok()?;
    Some(format!("{}:{}", object.object_type?, object.object_id?))
}

/// The version of a follow or unfollow event, compared as a string: newer events have
/// greater versions (time in microseconds, zero-padded, then the event id).
pub fn follow_version(time: DateTime<Utc>, event_id: &uuid::Uuid) -> String {
    format!("{:020}|{event_id}", time.timestamp_micros().max(0))
}

/// Whether the feeds of a Redis whose generation key holds `generation` are complete:
/// `false` while they are missing or being rebuilt.
pub fn feeds_complete(generation: Option<&str>) -> bool {
    generation.is_some_and(|g| !g.starts_with(REBUILDING))
}

/// The prefix of the generation key's value while a rebuild runs.
pub const REBUILDING: &str = "rebuilding:";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, ObjectRef, UserRef};

    #[test]
    fn post_becomes_the_reference_entry_shape() {
        let event = Event::new(
            EventType::Post,
            UserRef { id: 2, name: "nico".into() },
            Some(ObjectRef { kind: ObjectKind::Photo, id: 20 }),
            None,
            serde_json::json!({"content": "x.jpeg"}),
        );
        let entry: serde_json::Value = serde_json::to_value(FeedEntry::from_event(&event).unwrap()).unwrap();
        assert_eq!(entry["actor_name"], "nico");
        assert_eq!(entry["verb"], "post");
        assert_eq!(entry["object_id"], 20);
        assert_eq!(entry["object_type"], "photo");
        assert!(entry["target_name"].is_null());
        assert!(entry["time"].as_str().unwrap().ends_with("+00:00"));
        assert_eq!(body_object(body(&event).unwrap().as_bytes()).as_deref(), Some("photo:20"));
    }

    #[test]
    fn refs_round_trip_and_sort_by_event_id() {
        let (a, b) = (EntryRef { event_id: Uuid::from_u128(1), actor_id: 9 }, EntryRef { event_id: Uuid::from_u128(2), actor_id: -3 });
        assert_eq!(EntryRef::parse(&a.to_bytes()), Some(a));
        assert_eq!(EntryRef::parse(&b.to_bytes()), Some(b));
        assert!(a.to_bytes() < b.to_bytes(), "Redis orders equal scores by member bytes");
        assert_eq!(&a.to_bytes()[16..], b"9", "the actor in decimal, for scripts");
        assert_eq!(EntryRef::parse(b"garbage"), None);
    }

    #[test]
    fn follow_versions_order_by_time_then_id() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert!(follow_version(t(9), &b) < follow_version(t(10), &a));
        assert!(follow_version(t(10), &a) < follow_version(t(10), &b));
        assert!(follow_version(t(1_000_000_000), &a) > follow_version(t(999_999_999), &b));
    }

    #[test]
    fn only_activities_that_fan_out_have_refs() {
        let user = UserRef { id: 1, name: "ivan".into() };
        let created = Event::new(EventType::UserCreated, user.clone(), None, None, serde_json::Value::Null);
        assert!(EntryRef::of(&created).is_none());
        let follow = Event::new(EventType::Follow, user.clone(), None, Some(user), serde_json::Value::Null);
        assert!(EntryRef::of(&follow).is_none(), "follows are in no friends feed");
    }
}
