//! `POST /events` and `GET /events`: the generic event log (activity-service
//! reference), stored through the events topic into the `generic_events` hypertable.

use super::page::{Cursor, Page};
use crate::domain::{client_time, fits, MAX_LONG_TEXT, MAX_SHORT_TEXT};
use crate::error::{ApiError, ErrorBody};
use crate::json::JsonObject;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use feed_core::generic_events;
use feed_core::streams::GenericEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create))
}

/// A new generic event (parsed by hand, to name the field at fault).
#[derive(utoipa::ToSchema)]
pub struct NewEvent {
    /// Which part of the client's system it comes from; not blank.
    #[schema(min_length = 1, max_length = 256, example = "order")]
    component: String,
    /// Any JSON value, `null` included; required.
    data: Value,
    /// A valid address with a dotted domain.
    #[schema(format = Email, max_length = 256, example = "ade@gmail.com")]
    email: String,
    /// e.g. `production`; not blank.
    #[schema(min_length = 1, max_length = 256, example = "production")]
    environment: String,
    /// What happened; not blank.
    #[schema(min_length = 1, max_length = 10000, example = "order failed")]
    message: String,
}

impl NewEvent {
    fn parse(body: &JsonObject) -> Result<Self, ApiError> {
        let component = required_text(body, "component", MAX_SHORT_TEXT)?;
        let data = body.0.get("data").cloned().ok_or_else(|| ApiError::invalid_field("data", "data is required"))?;
        let email = required_text(body, "email", MAX_SHORT_TEXT)?;
        let email = parse_email(&email).ok_or_else(|| ApiError::invalid_field("email", "email is not a valid email address"))?;
        let environment = required_text(body, "environment", MAX_SHORT_TEXT)?;
        let message = required_text(body, "message", MAX_LONG_TEXT)?;
        Ok(Self { component, data, email, environment, message })
    }
}

/// A stored generic event.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    /// Its id (UUIDv7).
    id: Uuid,
    /// As posted.
    component: String,
    /// As posted.
    data: Value,
    /// As posted.
    email: String,
    /// As posted.
    environment: String,
    /// As posted.
    message: String,
    /// When the API accepted it: RFC 3339, UTC, microseconds.
    #[schema(example = "2026-11-23T02:15:08.813990Z")]
    created_at: String,
}

impl From<GenericEvent> for StoredEvent {
    fn from(event: GenericEvent) -> Self {
        Self {
            id: event.id,
            component: event.component,
            data: event.data,
            email: event.email,
            environment: event.environment,
            message: event.message,
            created_at: event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        }
    }
}

/// A page of `GET /events`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventsPage {
    /// Newest first.
    events: Vec<StoredEvent>,
    /// The next page's path and query (filters kept), or `""` on the last page.
    next_url: String,
}

/// A non-blank string field of at most `max` characters.
fn required_text(body: &JsonObject, field: &'static str, max: usize) -> Result<String, ApiError> {
    match body.0.get(field) {
        None | Some(Value::Null) => Err(ApiError::invalid_field(field, format!("{field} is required"))),
        Some(Value::String(s)) if !fits(s, max) => Err(ApiError::invalid_field(field, format!("{field} must be at most {max} characters"))),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(_) => Err(ApiError::invalid_field(field, format!("{field} must be a non-empty string"))),
    }
}

/// An email address as RFC 5322 allows it, with a dotted domain (what users mean).
fn parse_email(raw: &str) -> Option<String> {
    let address: email_address::EmailAddress = raw.trim().parse().ok()?;
    address.domain().contains('.').then(|| address.as_str().to_string())
}

/// Records a generic application event.
#[utoipa::path(post, path = "/events", operation_id = "create_event", tag = "events", request_body = NewEvent,
    responses(
        (status = 201, body = StoredEvent, description = "Recorded"),
        (status = 400, body = ErrorBody, description = "A field missing, blank or invalid, named in `field`"),
        (status = 503, body = ErrorBody, description = "The broker did not acknowledge: nothing was recorded"),
    ))]
async fn create(State(state): State<AppState>, body: JsonObject) -> Result<Response, ApiError> {
    let NewEvent { component, data, email, environment, message } = NewEvent::parse(&body)?;
    let event = GenericEvent::new(component, data, email, environment, message);
    let recorded = state.record_on(&state.events, &event).await?;
    Ok(recorded.respond((StatusCode::CREATED, Json(StoredEvent::from(event)))))
}

/// Filters and paging of `GET /events`; empty values are ignored.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Filters {
    /// Exact match.
    email: Option<String>,
    /// Exact match.
    environment: Option<String>,
    /// Exact match.
    component: Option<String>,
    /// Substring of the message.
    message: Option<String>,
    /// Events at or after: `MM-DD-YYYY`, or an ISO 8601 date or date-time (years 1 to 9999).
    #[param(
        example = "04-16-2021",
        pattern = r"^$|^((0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])-\d{4}|\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)$"
    )]
    from_date: Option<String>,
    /// Opaque; from the previous page's `next_url`.
    cursor: Option<String>,
    /// Events per page, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
}

/// `from_date` as the reference's `MM-DD-YYYY`, or ISO 8601 (a date, a date-time with
/// offset, or a date-time without one, read as UTC).
fn parse_from_date(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let parsed = if let Ok(d) = NaiveDate::parse_from_str(raw, "%m-%d-%Y") {
        midnight(d)
    } else if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        midnight(d)
    } else if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        Some(t.with_timezone(&Utc))
    } else {
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"].iter().find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok()).map(|t| t.and_utc())
    };
    parsed.and_then(client_time)
}

/// Generic events, newest first, filtered.
#[utoipa::path(get, path = "/events", operation_id = "list_events", tag = "events", params(Filters),
    responses(
        (status = 200, body = EventsPage, description = "A page of events"),
        (status = 400, body = ErrorBody, description = "`Bad Request`, or an invalid `from_date`, `cursor` or `limit`, named in `field`"),
        (status = 503, body = ErrorBody, description = "The database is unavailable"),
    ))]
async fn list(
    State(state): State<AppState>,
    query: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    let Query(filters) = query.map_err(|_| ApiError::bad_request("Bad Request"))?;
    let values = [&filters.email, &filters.environment, &filters.component, &filters.message];
    if values.iter().any(|v| v.as_deref().is_some_and(|v| v.contains('\0'))) {
        return Err(ApiError::bad_request("Bad Request"));
    }
    let nonempty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let from_date = match nonempty(&filters.from_date) {
        None => None,
        Some(raw) => {
            Some(parse_from_date(&raw).ok_or_else(|| ApiError::invalid_field("from_date", "from_date must be MM-DD-YYYY or ISO 8601"))?)
        }
    };
    let page = Page::parse(filters.cursor.as_deref(), filters.limit.as_deref())?;
    let limit = page.limit as i64;
    let filter = generic_events::Filter {
        email: nonempty(&filters.email),
        environment: nonempty(&filters.environment),
        component: nonempty(&filters.component),
        message_contains: nonempty(&filters.message),
        from: from_date,
        after: page.after.and_then(Cursor::position),
        limit: limit + 1,
    };
    let mut rows = generic_events::list(&state.db, &filter).await?;

    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_url = match rows.last().filter(|_| has_more) {
        None => String::new(),
        Some(last) => {
            let mut params: Vec<(&str, String)> = Vec::new();
            for (name, value) in [
                ("email", &filters.email),
                ("environment", &filters.environment),
                ("component", &filters.component),
                ("message", &filters.message),
                ("from_date", &filters.from_date),
                ("limit", &filters.limit),
            ] {
                if let Some(v) = nonempty(value) {
                    params.push((name, v));
                }
            }
            params.push(("cursor", Cursor::at(last.created_at, last.id).encode()));
            let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
            format!("/events?{}", query.join("&"))
        }
    };
    let events: Vec<StoredEvent> = rows.into_iter().map(StoredEvent::from).collect();
    Ok(Json(EventsPage { events, next_url }))
}

/// Percent-encodes a query value (everything but unreserved characters).
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_date_formats() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
        assert_eq!(parse_from_date("04-16-2021"), Some(day(2021, 4, 16)));
        assert_eq!(parse_from_date("2021-04-16"), Some(day(2021, 4, 16)));
        assert_eq!(parse_from_date("2021-04-16T00:00:00Z"), Some(day(2021, 4, 16)));
        assert_eq!(parse_from_date("2021-04-16T02:00:00+02:00"), Some(day(2021, 4, 16)));
        assert_eq!(parse_from_date("2021-04-16T00:00:00"), Some(day(2021, 4, 16)));
        for bad in ["-5000-01-01", "10000-01-01", "16-04-2021x", "2021/04/16", "yesterday", "13-45-2021", ""] {
            assert_eq!(parse_from_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(parse_email("ade@gmail.com").as_deref(), Some("ade@gmail.com"));
        for bad in ["ade", "ade@", "@gmail.com", "ade@gmail", "a b@gmail.com", "ade@@gmail.com"] {
            assert_eq!(parse_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn url_encoding() {
        assert_eq!(urlencode("ade@gmail.com"), "ade%40gmail.com");
        assert_eq!(urlencode("a b&c"), "a%20b%26c");
    }
}
