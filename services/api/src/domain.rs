//! Request values that cannot be invalid once built: parse, don't validate.

use chrono::{DateTime, Datelike, Utc};
use feed_core::event::{ObjectKind, ObjectRef};

/// Most characters in a short stored string (`component`, `environment`, `email`).
pub const MAX_SHORT_TEXT: usize = 256;

/// Most characters in a long stored string (an event's `message`, a post's `content`).
pub const MAX_LONG_TEXT: usize = 10_000;

/// Whether `text` is at most `max` characters.
pub fn fits(text: &str, max: usize) -> bool {
    text.len() <= max || text.chars().count() <= max
}

/// A time a client may name (in a cursor or a date filter): years 1 to 9999, which
/// every store and format here can hold.
pub fn client_time(time: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (1..=9999).contains(&time.year()).then_some(time)
}

/// [`client_time`] from microseconds since the epoch.
pub fn client_time_from_micros(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).and_then(client_time)
}

/// A user name: 1 to 64 characters of ASCII letters, digits, `_`, `-` or `.`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a candidate name.
    pub fn parse(raw: &str) -> Option<Self> {
        // `my` and `friends` would be unreachable at feed-me's `/feed/<username>`: those
        // paths are the reference's feeds.
        let ok = !raw.is_empty()
            && !matches!(raw, "my" | "friends")
            && raw.len() <= 64
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        ok.then(|| Self(raw.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses `post:21` / `photo:3` (a positive id).
pub fn parse_object(raw: &str) -> Option<ObjectRef> {
    let (kind, id) = raw.split_once(':')?;
    let kind = ObjectKind::parse(kind)?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
    Some(ObjectRef { kind, id })
}

/// The verbs `POST /activity` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ReactionVerb {
    /// like
    Like,
    /// share
    Share,
}

impl ReactionVerb {
    /// Parses `like` or `share`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "like" => Some(Self::Like),
            "share" => Some(Self::Share),
            _ => None,
        }
    }

    /// The verb as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Like => "like",
            Self::Share => "share",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("ivan").is_some());
        assert!(Username::parse("a_b-c.9").is_some());
        assert!(Username::parse("").is_none());
        assert!(Username::parse("with space").is_none());
        assert!(Username::parse(&"x".repeat(65)).is_none());
    }

    #[test]
    fn client_times_stay_within_four_digit_years() {
        assert!(client_time_from_micros(0).is_some());
        assert!(client_time_from_micros(253_402_300_799_999_999).is_some(), "9999-12-31T23:59:59.999999Z");
        assert!(client_time_from_micros(253_402_300_800_000_000).is_none());
        assert!(client_time_from_micros(-300_000_000_000_000_000).is_none());
        assert!(client_time_from_micros(i64::MIN).is_none());
    }

    #[test]
    fn text_limits_count_characters() {
        assert!(fits(&"é".repeat(256), MAX_SHORT_TEXT));
        assert!(!fits(&"é".repeat(257), MAX_SHORT_TEXT));
    }

    #[test]
    fn objects() {
        assert_eq!(parse_object("post:21"), Some(ObjectRef { kind: ObjectKind::Post, id: 21 }));
        assert_eq!(parse_object("photo:1"), Some(ObjectRef { kind: ObjectKind::Photo, id: 1 }));
        for bad in ["post", "post:", "post:0", "post:-1", "post:+1", "video:1", "post:1:2", "post:99999999999999999999", ":1"] {
            assert_eq!(parse_object(bad), None, "{bad}");
        }
    }

    #[test]
    fn verbs() {
        assert_eq!(ReactionVerb::parse("like"), Some(ReactionVerb::Like));
        assert_eq!(ReactionVerb::parse("share"), Some(ReactionVerb::Share));
        assert_eq!(ReactionVerb::parse("post"), None);
    }
}
