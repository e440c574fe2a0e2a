//! Keyset paging, the same on every cursor-paginated route (`/feed/my`,
//! `/feed/friends`, `/events`): newest first, a cursor names the last entry seen
//! (`<micros since epoch>_<uuid>`) and the next page starts strictly after it, so pages
//! stay correct while new entries arrive. A bad `cursor` or `limit` is a 400 naming the
//! field.

use crate::error::ApiError;
use chrono::{DateTime, Utc};
use feed_core::activities::Position;
use uuid::Uuid;

/// Entries per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 200;

/// The last entry of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The entry's time, microseconds since the epoch (within the years 1–9999).
    pub micros: i64,
    /// Its id, which orders entries of the same time.
    pub id: Uuid,
}

impl Cursor {
    /// Parses `<micros>_<uuid>`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (micros, id) = raw.split_once('_')?;
        let micros = micros.parse().ok()?;
        crate::domain::client_time_from_micros(micros)?;
        Some(Self { micros, id: id.parse().ok()? })
    }

    /// The cursor's text.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.micros, self.id)
    }

    /// The cursor of an entry at `time` with `id`.
    pub fn at(time: DateTime<Utc>, id: Uuid) -> Self {
        Self { micros: time.timestamp_micros(), id }
    }

    /// Its time.
    pub fn time(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.micros)
    }

    /// The same place in the hypertable's order.
    pub fn position(self) -> Option<Position> {
        Some(Position { time: self.time()?, event_id: self.id })
    }
}

/// A parsed page request.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Start strictly after this entry (the first page has none).
    pub after: Option<Cursor>,
    /// Entries on the page.
    pub limit: usize,
    /// Whether the request named `limit` (then `next_url` repeats it).
    pub explicit_limit: bool,
}

impl Page {
    /// From the `cursor` and `limit` query parameters; an empty `cursor` is none.
    pub fn parse(cursor: Option<&str>, limit: Option<&str>) -> Result<Self, ApiError> {
        let after = match cursor {
            None | Some("") => None,
            Some(raw) => Some(Cursor::parse(raw).ok_or_else(|| ApiError::invalid_field("cursor", "Cursor is not valid"))?),
        };
        let parsed = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| ApiError::invalid_field("limit", format!("Limit must be between 1 and {MAX_LIMIT}")))?,
        };
        Ok(Self { after, limit: parsed, explicit_limit: limit.is_some() })
    }

    /// The `next_url` of `path` for a page whose last entry is `last`, or `""` at the end.
    pub fn next_url(&self, path: &str, last: Option<Cursor>) -> String {
        match last {
            None => String::new(),
            Some(cursor) if self.explicit_limit => format!("{path}?cursor={}&limit={}", cursor.encode(), self.limit),
            Some(cursor) => format!("{path}?cursor={}", cursor.encode()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let cursor = Cursor { micros: 1_700_000_000_123_456, id: Uuid::now_v7() };
        assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::parse("garbage"), None);
        assert_eq!(Cursor::parse("12_not-a-uuid"), None);
        assert_eq!(Cursor::parse(&format!("-300000000000000000_{}", Uuid::now_v7())), None, "out of range");
    }

    #[test]
    fn bad_cursors_and_limits_name_their_field() {
        assert_eq!(Page::parse(Some("zzz"), None).map(|_| ()).unwrap_err().status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(Page::parse(None, Some("0")).is_err());
        assert!(Page::parse(None, Some("201")).is_err());
        let page = Page::parse(Some(""), Some("7")).expect("an empty cursor is none");
        assert_eq!((page.after, page.limit, page.explicit_limit), (None, 7, true));
    }
}
