//! The OpenAPI document of the whole HTTP API, served at `GET /openapi.json`.
//!
//! Generated from the code: the handlers' `#[utoipa::path]` attributes and the response
//! types' `ToSchema` derives, assembled by [`crate::routes::api`]. What they would
//! repeat on every route — the answers of the key and JSON-body extractors, the headers
//! of recorded writes, the rate limits — is added here.
//! `docs/openapi.json` is a checked-in copy that a test keeps equal to this document.

use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Content, Object, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

/// The document's fixed parts; paths and schemas come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "activity-feed",
        description = "Activity feeds, generic events and hourly analytics. Writes are published \
            as events to Kafka and answered once the broker acknowledged them; see the README's \
            Guarantees for read-your-writes.",
        license(name = "MIT"),
    ),
    tags(
        (name = "feed", description = "The reference feed API: users, posts, likes, shares, follows, feeds"),
        (name = "feed-me", description = "feed-me's API: free-verb activities (`POST /activity` with a `target`), feeds by username with page numbers, following by `POST /feed/<username>`; errors as `{\"error\": \"...\"}`"),
        (name = "events", description = "Generic application events"),
        (name = "analytics", description = "Hourly analytics hits"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Adds what the routes share; run on the document once every route is in it.
pub fn complete(openapi: &mut utoipa::openapi::OpenApi) {
    AppKey.modify(openapi);
    JsonBody.modify(openapi);
    RecordedHeaders.modify(openapi);
    RateLimited.modify(openapi);
}

/// Documents the rate limits' 429 on every operation but the operations routes, and
/// shedding's 503 on every write (see [`crate::shedding`]).
struct RateLimited;

impl Modify for RateLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post, &mut item.delete].into_iter().flatten() {
                if operation.tags.as_ref().is_some_and(|tags| tags.iter().any(|t| t == "operations")) {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "429".to_string(),
                    error_response("`Too many requests`: over `RATE_LIMIT_PER_KEY` (or `RATE_LIMIT_PER_ADDRESS` without a key); see `Retry-After` and `RateLimit-*`").into(),
                );
            }
            for operation in [&mut item.post, &mut item.delete].into_iter().flatten() {
                operation.responses.responses.entry("503".to_string()).or_insert_with(|| {
                    error_response("A dependency is unavailable, or `Too many writes in flight, retry shortly` (see `Retry-After`)").into()
                });
            }
        }
    }
}

/// `openapi` as the JSON text served and checked in.
pub fn render(openapi: &utoipa::openapi::OpenApi) -> String {
    openapi.to_pretty_json().expect("an OpenAPI document always serializes")
}

/// An error answer with the reference's [`crate::error::ErrorBody`].
pub(crate) fn error_response(description: &str) -> Response {
    let mut response = Response::new(description);
    let schema = Content::new(Some(Ref::from_schema_name("ErrorBody")));
    response.content.insert("application/json".to_string(), schema.into());
    response
}

/// Declares the `X-App-Key` scheme and, on every operation that requires it, the
/// answers of the auth extractor ([`crate::auth::AuthUser`]).
struct AppKey;

impl Modify for AppKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("app_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-App-Key"))));
        for operation in operations(openapi).filter(|operation| operation.security.is_some()) {
            let responses = &mut operation.responses.responses;
            responses.insert("401".to_string(), error_response("`Key is not valid`").into());
            add_bad_request(responses, "`Key is missing`");
        }
    }
}

/// On every operation with a request body, the answers of the JSON body extractor
/// ([`crate::json::JsonObject`]).
struct JsonBody;

impl Modify for JsonBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations(openapi).filter(|operation| operation.request_body.is_some()) {
            let responses = &mut operation.responses.responses;
            responses.insert("413".to_string(), error_response("Body larger than `MAX_BODY_BYTES`").into());
            add_bad_request(responses, "`Must be json request`, `Bad Request`");
        }
    }
}

/// Every operation of the document, whatever its method.
pub(crate) fn operations(openapi: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        let methods = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
            &mut item.query,
        ];
        methods.into_iter().flatten()
    })
}

/// Adds `messages` to the operation's 400 answer, creating it if the route has none.
fn add_bad_request(responses: &mut std::collections::BTreeMap<String, RefOr<Response>>, messages: &str) {
    match responses.get_mut("400") {
        Some(RefOr::T(bad_request)) => {
            bad_request.description.push_str(", ");
            bad_request.description.push_str(messages);
        }
        _ => {
            responses.insert("400".to_string(), error_response(messages).into());
        }
    }
}

/// Documents the headers every recorded write answers with (see [`crate::pipeline::Recorded`]).
struct RecordedHeaders;

impl Modify for RecordedHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let header = |description: &str| {
            let mut header = Header::new(Object::with_type(utoipa::openapi::Type::String));
            header.description = Some(description.to_string());
            RefOr::T(header)
        };
        for operation in openapi.paths.paths.values_mut().flat_map(|item| [&mut item.post, &mut item.delete].into_iter().flatten()) {
            for (status, response) in &mut operation.responses.responses {
                if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                    response.headers.insert(
                        "X-Read-Your-Writes".to_string(),
                        header("`applied`: reads already show the write; `pending`: the consumers had not applied it within READ_YOUR_WRITES_TIMEOUT_MS"),
                    );
                    response.headers.insert(
                        "X-Event-Id".to_string(),
                        header("The recorded event's id, as in its topic and every service's logs (absent when nothing was recorded)"),
                    );
                }
            }
        }
    }
}
