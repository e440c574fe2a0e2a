//! Feed entries: the JSON objects `/feed/my` and `/feed/friends` return, and how the
//! fan-out stores them in Redis sorted sets so a read needs no further lookup (the
//! keys they live under are in [`crate::keys`]).

use crate::event::{Event, ObjectKind};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

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

/// The sorted-set member for an event: `event_id|actor_id|entry-json`.
///
/// The event id makes the member unique and deterministic, so re-applying an event is a
/// no-op; the actor id lets an unfollow remove exactly that actor's entries; the JSON is
/// what a read returns.
pub fn member(event: &Event) -> Option<String> {
    encode_member(&event.event_id, event.actor.id, &FeedEntry::from_event(event)?)
}

/// The member for an entry whose event is known only by id and actor (a rebuild from
/// the hypertable); byte-identical to [`member`] for the same event.
pub fn encode_member(event_id: &uuid::Uuid, actor_id: i64, entry: &FeedEntry) -> Option<String> {
    let json = serde_json::to_string(entry).ok()?;
    Some(format!("{event_id}|{actor_id}|{json}"))
}

/// A member split into its parts.
#[derive(Debug, PartialEq, Eq)]
pub struct Member<'a> {
    /// The event id, used as the tie-breaker of pagination cursors.
    pub event_id: &'a str,
    /// The entry JSON, returned as is.
    pub json: &'a str,
}

/// Splits a member written by [`member`]; `None` for anything else.
pub fn parse_member(raw: &str) -> Option<Member<'_>> {
    let (event_id, rest) = raw.split_once('|')?;
    let (_actor, json) = rest.split_once('|')?;
    Some(Member { event_id, json })
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
    /// The fan-out's script finds an entry's object by this text (see its APPLY_BATCH).
    #[test]
    fn a_member_names_its_object_as_the_fan_out_script_reads_it() {
        let owner = crate::event::UserRef { id: 3, name: "eric".into() };
        let object = crate::event::ObjectRef { kind: ObjectKind::Photo, id: 21 };
        let like = Event::new(crate::event::EventType::Like, owner.clone(), Some(object), Some(owner), serde_json::Value::Null);
        let member = member(&like).expect("a like is an entry");
        assert!(member.contains(r#""object_id":21,"object_type":"photo""#), "{member}");
        assert!(member.starts_with(&format!("{}|3|", like.event_id)));
    }

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
    }

    #[test]
    fn member_round_trips_and_is_deterministic() {
        let event = Event::new(
            EventType::Follow,
            UserRef { id: 1, name: "ivan".into() },
            None,
            Some(UserRef { id: 3, name: "eric".into() }),
            serde_json::Value::Null,
        );
        let raw = member(&event).unwrap();
        assert_eq!(member(&event).unwrap(), raw);
        let parsed = parse_member(&raw).unwrap();
        assert_eq!(parsed.event_id, event.event_id.to_string());
        let entry: FeedEntry = serde_json::from_str(parsed.json).unwrap();
        assert_eq!(entry.target_name.as_deref(), Some("eric"));
        assert_eq!(parse_member("garbage"), None);
    }

    #[test]
    fn follow_versions_order_by_time_then_id() {
        let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert!(follow_version(t(9), &b) < follow_version(t(10), &a));
        assert!(follow_version(t(10), &a) < follow_version(t(10), &b));
        assert!(follow_version(t(1_000_000_000), &a) > follow_version(t(999_999_999), &b));
    }

    #[test]
    fn user_created_is_not_an_entry() {
        let event = Event::new(EventType::UserCreated, UserRef { id: 1, name: "ivan".into() }, None, None, serde_json::Value::Null);
        assert!(member(&event).is_none());
    }
}
