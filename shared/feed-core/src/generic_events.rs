//! Reading the `generic_events` hypertable: the filters `GET /events` takes, turned into
//! the one query the route runs — and that the tests EXPLAIN, so a change to it is what
//! they check.

use crate::activities::Position;
use crate::event::SCHEMA_VERSION;
use crate::streams::GenericEvent;
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

/// Which events to list: exact matches, a substring of the message, a start time, and
/// keyset paging (newest first, strictly after `after`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Exact match on `email`.
    pub email: Option<String>,
    /// Exact match on `environment`.
    pub environment: Option<String>,
    /// Exact match on `component`.
    pub component: Option<String>,
    /// A substring of `message` (wildcards in it are literal).
    pub message_contains: Option<String>,
    /// Events at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Events strictly older than this one.
    pub after: Option<Position>,
    /// Most events returned.
    pub limit: i64,
}

/// Appends the listing query for `filter` to `sql` (which may start with `EXPLAIN`).
pub fn push_query<'a>(sql: &mut QueryBuilder<'a, Postgres>, filter: &'a Filter) {
    sql.push("SELECT time, id, component, data, email, environment, message FROM generic_events WHERE true");
    for (column, value) in [("email", &filter.email), ("environment", &filter.environment), ("component", &filter.component)] {
        if let Some(value) = value {
            sql.push(format_args!(" AND {column} = ")).push_bind(value);
        }
    }
    if let Some(message) = &filter.message_contains {
        sql.push(" AND message LIKE ").push_bind(contains_pattern(message));
    }
    if let Some(from) = filter.from {
        sql.push(" AND time >= ").push_bind(from);
    }
    if let Some(after) = filter.after {
        // The plain bound on `time` lets the planner skip newer chunks; the row comparison alone would not.
        sql.push(" AND (time, id) < (").push_bind(after.time).push(", ").push_bind(after.event_id).push(")");
        sql.push(" AND time <= ").push_bind(after.time);
    }
    sql.push(" ORDER BY time DESC, id DESC LIMIT ").push_bind(filter.limit);
}

/// The events `filter` selects, newest first.
pub async fn list<'e>(db: impl PgExecutor<'e>, filter: &Filter) -> sqlx::Result<Vec<GenericEvent>> {
    let mut sql = QueryBuilder::new("");
    push_query(&mut sql, filter);
    let rows: Vec<Row> = sql.build_query_as().fetch_all(db).await?;
    Ok(rows.into_iter().map(Row::into_event).collect())
}

#[derive(sqlx::FromRow)]
struct Row {
    time: DateTime<Utc>,
    id: Uuid,
    component: String,
    data: sqlx::types::Json<serde_json::Value>,
    email: String,
    environment: String,
    message: String,
}

impl Row {
    fn into_event(self) -> GenericEvent {
        GenericEvent {
            schema_version: SCHEMA_VERSION,
            id: self.id,
            component: self.component,
            data: self.data.0,
            email: self.email,
            environment: self.environment,
            message: self.message,
            created_at: self.time,
        }
    }
}

/// `LIKE` pattern matching `needle` anywhere, with its wildcards escaped.
fn contains_pattern(needle: &str) -> String {
    let escaped = needle.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn only_given_filters_become_conditions() {
        let filter = Filter { email: Some("a@b.cd".into()), limit: 51, ..Filter::default() };
        let mut sql = QueryBuilder::new("");
        push_query(&mut sql, &filter);
        assert_eq!(
            sql.sql(),
            "SELECT time, id, component, data, email, environment, message FROM generic_events WHERE true AND email = $1 ORDER BY time DESC, id DESC LIMIT $2"
        );
    }
}
