//! The OpenAPI document of the whole HTTP API, served at `GET /openapi.json`.
//!
//! Generated from the code: the handlers' `#[utoipa::path]` attributes and the response
//! types' `ToSchema` derives (see [`crate::routes::api`]). What they would repeat on
//! every route — the answers of the key and JSON-body extractors, the headers of
//! recorded writes — is added here.
//! `docs/openapi.json` is a checked-in copy that a test keeps equal to this document.

use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{OneOfBuilder, Schema};
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
    FeedMe.modify(openapi);
}

/// feed-me's error shape on its routes, and `POST /activity`'s two kinds of body (see
/// [`crate::routes::feedme`]). Runs after the others, whose answers it reshapes; the
/// rate limiter's 429 keeps the reference shape on every route.
struct FeedMe;

impl FeedMe {
    fn one_of(names: &[&str]) -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new();
        for name in names {
            one_of = one_of.item(Ref::from_schema_name(*name));
        }
        RefOr::T(Schema::OneOf(one_of.build()))
    }

    /// Sets the JSON schema of every error answer but 429 of `operation`.
    fn errors(operation: &mut Operation, schema: &RefOr<Schema>) {
        for (status, response) in &mut operation.responses.responses {
            if let (false, RefOr::T(response)) = (status.starts_with('2') || status == "429", response) {
                response.content.insert("application/json".to_string(), Content::new(Some(schema.clone())).into());
            }
        }
    }
}

impl Modify for FeedMe {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in [
            ("FreeActivity", <crate::routes::FreeActivity as utoipa::PartialSchema>::schema()),
            ("FeedMeEntry", <crate::routes::FeedMeEntry as utoipa::PartialSchema>::schema()),
            ("FeedMeErrorBody", <crate::error::FeedMeErrorBody as utoipa::PartialSchema>::schema()),
        ] {
            components.schemas.entry(name.to_string()).or_insert(schema);
        }
        let feed_me_error = RefOr::Ref(Ref::from_schema_name("FeedMeErrorBody"));
        for operation in operations(openapi) {
            if operation.tags.as_ref().is_some_and(|tags| tags.iter().any(|t| t == "feed-me")) {
                Self::errors(operation, &feed_me_error);
            }
        }
        let Some(activity) = openapi.paths.paths.get_mut("/activity").and_then(|item| item.post.as_mut()) else { return };
        if let Some(RefOr::T(body)) = &mut activity.request_body {
            body.content.insert("application/json".to_string(), Content::new(Some(Self::one_of(&["NewActivity", "FreeActivity"]))).into());
        }
        if let Some(RefOr::T(ok)) = activity.responses.responses.get_mut("200") {
            ok.content
                .insert("application/json".to_string(), Content::new(Some(Self::one_of(&["ActivityRecorded", "FeedMeEntry"]))).into());
        }
        activity
            .responses
            .responses
            .insert("403".to_string(), error_response("A free-verb activity whose `actor` is not the key's user").into());
        Self::errors(activity, &Self::one_of(&["ErrorBody", "FeedMeErrorBody"]));
    }
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

/// The whole document as JSON, as served.
pub fn to_json() -> String {
    render(&crate::routes::api().1)
}

/// `openapi` as the JSON text served and checked in.
pub fn render(openapi: &utoipa::openapi::OpenApi) -> String {
    openapi.to_pretty_json().expect("an OpenAPI document always serializes")
}

fn error_response(description: &str) -> Response {
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
fn operations(openapi: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
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

/// Documents the headers every recorded write answers with (see [`crate::Recorded`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` is what downstream teams read; it must be this document.
    /// `UPDATE_OPENAPI=1 cargo test -p api openapi` rewrites it.
    #[test]
    fn checked_in_copy_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let generated = to_json() + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(committed == generated, "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p api openapi` and commit it");
    }

    #[test]
    fn every_route_is_documented_with_its_errors() {
        let doc = crate::routes::api().1;
        let paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        for path in [
            "/me",
            "/post",
            "/activity",
            "/follow",
            "/unfollow",
            "/feed/my",
            "/feed/friends",
            "/events",
            "/analytics",
            "/health",
            "/livez",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
        let me = doc.paths.paths["/me"].get.as_ref().unwrap();
        assert!(me.responses.responses.contains_key("401"));
        let post = doc.paths.paths["/post"].post.as_ref().unwrap();
        let RefOr::T(ok) = &post.responses.responses["200"] else { panic!("inline response") };
        assert!(ok.headers.contains_key("X-Event-Id"));
        let RefOr::T(bad) = &post.responses.responses["400"] else { panic!("inline response") };
        assert!(bad.description.contains("Key is missing"));
        assert!(bad.description.contains("Must be json request"));
        assert!(post.responses.responses.contains_key("413"));
    }
}
