//! The API's OpenAPI document as a contract every test checks: each answer a test sees
//! through [`crate::Stack`] must have a documented path, method and status, and a JSON
//! body matching the documented schema; each JSON body the API accepted must match the
//! documented request schema. So `/openapi.json` cannot drift from what the API does.

use jsonschema::Validator;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The document, with compiled validators cached by schema location.
pub struct Contract {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

/// The API's document, as `GET /openapi.json` serves it.
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| Contract {
        doc: serde_json::from_str(&api::routes::openapi_document()).expect("the document is JSON"),
        validators: Mutex::new(HashMap::new()),
    })
}

impl Contract {
    /// The operation for `method` on `path`, if documented.
    fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        self.path_item(path)?.get(method.to_ascii_lowercase())
    }

    /// The documented path `path` falls under: itself, or else the template (`/feed/{username}`)
    /// with the fewest parameters that matches it, as the router prefers static segments.
    fn path_item(&self, path: &str) -> Option<&Value> {
        let paths = self.doc["paths"].as_object()?;
        if let Some(item) = paths.get(path) {
            return Some(item);
        }
        let segments: Vec<&str> = path.split('/').collect();
        paths
            .iter()
            .filter_map(|(template, item)| {
                let parts: Vec<&str> = template.split('/').collect();
                let matches = parts.len() == segments.len()
                    && parts.iter().zip(&segments).all(|(part, segment)| part == segment || (part.starts_with('{') && !segment.is_empty()));
                matches.then(|| (parts.iter().filter(|p| p.starts_with('{')).count(), item))
            })
            .min_by_key(|(parameters, _)| *parameters)
            .map(|(_, item)| item)
    }

    /// Checks an answer. Undocumented paths may only answer the fallback's 404 and
    /// undocumented methods the 405.
    pub fn check_response(&self, method: &str, url: &str, status: u16, content_type: Option<&str>, body: &str) {
        let path = path_of(url);
        let Some(operation) = self.operation(method, path) else {
            let expected = if self.path_item(path).is_some() { 405 } else { 404 };
            assert_eq!(status, expected, "{method} {url} is not in the OpenAPI document but answered {status}: {body}");
            return;
        };
        let status_key = status.to_string();
        let response = &operation["responses"][&status_key];
        assert!(!response.is_null(), "{method} {url} answered {status}, which the OpenAPI document does not list: {body}");
        let documented = &response["content"];
        let is_json = content_type.is_some_and(|c| c.starts_with("application/json"));
        match documented.as_object() {
            None => assert!(body.is_empty(), "{method} {url} {status}: documented without a body, got {body}"),
            Some(types) if is_json => {
                let schema = &types
                    .get("application/json")
                    .unwrap_or_else(|| panic!("{method} {url} {status}: JSON answer, documented as {:?}", types.keys()))["schema"];
                let instance: Value = serde_json::from_str(body).expect("a JSON answer parses");
                self.validate(&format!("{method} {path} {status}"), schema, &instance);
            }
            Some(types) => {
                let content_type = content_type.unwrap_or_default();
                assert!(
                    types.keys().any(|t| content_type.starts_with(t.as_str())),
                    "{method} {url} {status}: answered {content_type}, documented as {:?}",
                    types.keys()
                );
            }
        }
    }

    /// Checks a JSON request body the API accepted.
    pub fn check_request(&self, method: &str, url: &str, body: &Value) {
        let path = path_of(url);
        let operation = self.operation(method, path).unwrap_or_else(|| panic!("{method} {url} is not documented"));
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        assert!(!schema.is_null(), "{method} {url} accepted a JSON body but documents none");
        self.validate(&format!("{method} {path} request"), schema, body);
    }

    fn validate(&self, location: &str, schema: &Value, instance: &Value) {
        let validator = {
            let mut cache = self.validators.lock().expect("validator cache");
            cache
                .entry(location.to_string())
                .or_insert_with(|| {
                    // The schema's `$ref`s point into `#/components`: give it those.
                    let mut root = schema.as_object().cloned().unwrap_or_default();
                    root.insert("components".to_string(), self.doc["components"].clone());
                    Arc::new(jsonschema::validator_for(&Value::Object(root)).expect("a valid JSON Schema"))
                })
                .clone()
        };
        let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{location}: {instance} does not match the OpenAPI document: {errors:?}");
    }
}

/// The path of a request target, without its query.
fn path_of(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}
