//! The reference feed API (../shared/reference/activity-feed-system.md), case by case,
//! served by the real pipeline.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::Stack;
use reqwest::StatusCode;
use serde_json::{json, Value};

const IVAN: &str = "abc123";
const NICO: &str = "abc124";
const ERIC: &str = "abc125";

fn count(body: &Value, field: &str) -> usize {
    body[field].as_array().unwrap_or_else(|| panic!("{field} in {body}")).len()
}

async fn post_many(stack: &Stack, key: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let kind = if i % 2 == 0 { "post" } else { "photo" };
        let (status, body) = stack.post("/post", key, json!({"type": kind, "content": format!("c{i}")})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["message"], "Activity recorded");
        assert_eq!(body["type"], kind);
        ids.push(body["object_id"].as_i64().expect("object_id"));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_scenario_counts_exactly() {
    let stack = Stack::start().await;

    post_many(&stack, IVAN, 10).await;
    post_many(&stack, ERIC, 10).await;
    post_many(&stack, NICO, 20).await;
    for (key, expected) in [(IVAN, 10), (ERIC, 10), (NICO, 20)] {
        let (status, body) = stack.get("/feed/my", Some(key)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(count(&body, "my_feed"), expected, "{key}");
        assert_eq!(body["next_url"], "");
    }

    let (status, body) = stack.post("/follow", IVAN, json!({"follow": "eric"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"verb": "follow", "message": "User followed"})));
    let (_, body) = stack.get("/feed/friends", Some(IVAN)).await;
    assert_eq!(count(&body, "friends_feed"), 10);
    assert!(body["friends_feed"].as_array().unwrap().iter().all(|e| e["actor_name"] == "eric"));

    let (status, _) = stack.post("/follow", IVAN, json!({"follow": "nico"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = stack.get("/feed/friends", Some(IVAN)).await;
    assert_eq!(count(&body, "friends_feed"), 30);

    let (status, body) = stack.post("/unfollow", IVAN, json!({"unfollow": "eric"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"verb": "unfollow", "message": "User unfollowed"})));
    let (_, body) = stack.get("/feed/friends", Some(IVAN)).await;
    assert_eq!(count(&body, "friends_feed"), 20);
    assert!(body["friends_feed"].as_array().unwrap().iter().all(|e| e["actor_name"] == "nico"));

    // Follow and unfollow are activities of ivan's own feed, newest first.
    let (_, body) = stack.get("/feed/my", Some(IVAN)).await;
    let verbs: Vec<&str> = body["my_feed"].as_array().unwrap().iter().map(|e| e["verb"].as_str().unwrap()).collect();
    assert_eq!(verbs.len(), 13);
    assert_eq!(&verbs[..3], ["unfollow", "follow", "follow"]);
    assert_eq!(body["my_feed"][0]["target_name"], "eric");

    let (status, me) = stack.get("/me", Some(IVAN)).await;
    assert_eq!(status, StatusCode::OK);
    let nico_id = stack.get("/me", Some(NICO)).await.1["id"].clone();
    assert_eq!(me["name"], "ivan");
    assert_eq!(me["auth_token"], IVAN);
    assert_eq!(me["follow_ids"], json!([nico_id]));
    assert!(me["created_at"].as_str().unwrap().ends_with(" GMT"));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_have_the_reference_shape_and_likes_fan_out() {
    let stack = Stack::start().await;
    assert_eq!(stack.post("/follow", NICO, json!({"follow": "ivan"})).await.0, StatusCode::OK);
    let (_, body) = stack.post("/post", ERIC, json!({"type": "photo", "content": "photos1.jpeg"})).await;
    assert_eq!(body["object_id"], 1, "the first photo of a fresh install is photo:1");
    let (_, body) = stack.post("/post", ERIC, json!({"type": "post", "content": "foobar"})).await;
    assert_eq!(body["object_id"], 1, "ids are allocated per type");

    // Liking an object created by an earlier 200 (another user's) works at once.
    let (status, body) = stack.post("/activity", IVAN, json!({"verb": "share", "object": "photo:1"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"verb": "share", "message": "Activity recorded"})));
    let (status, body) = stack.post("/activity", IVAN, json!({"verb": "like", "object": "post:1"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"verb": "like", "message": "Activity recorded"})));

    let (_, body) = stack.get("/feed/friends", Some(NICO)).await;
    let feed = body["friends_feed"].as_array().unwrap();
    assert_eq!(feed.len(), 2);
    let like = &feed[0];
    assert_eq!(like["actor_name"], "ivan");
    assert_eq!(like["verb"], "like");
    assert_eq!(like["object_id"], 1);
    assert_eq!(like["object_type"], "post");
    assert_eq!(like["target_name"], "eric");
    let time = like["time"].as_str().unwrap();
    assert!(chrono_like_rfc3339(time), "{time}");
    assert_eq!(feed[1]["verb"], "share");
    assert_eq!(feed[1]["object_type"], "photo");
    stack.stop().await;
}

fn chrono_like_rfc3339(t: &str) -> bool {
    // 2019-02-10T12:01:30.894037+00:00
    t.len() == 32 && &t[4..5] == "-" && &t[10..11] == "T" && t.ends_with("+00:00")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_case_answers_as_the_reference_and_publishes_nothing() {
    let stack = Stack::start().await;
    let (_, body) = stack.post("/post", IVAN, json!({"type": "post", "content": "x"})).await;
    assert_eq!(body["object_id"], 1);
    stack.wait_applied(&stack.common.fanout_group).await;
    let published_before = stack.published().await;

    let error = |status: StatusCode, message: &str| (status, json!({"error": true, "message": message}));
    let bad = StatusCode::BAD_REQUEST;
    let unauthorized = StatusCode::UNAUTHORIZED;
    let not_found = StatusCode::NOT_FOUND;

    // Authentication.
    assert_eq!(stack.get("/me", None).await, error(bad, "Key is missing"));
    assert_eq!(stack.get("/me", Some("")).await, error(unauthorized, "Key is not valid"));
    assert_eq!(stack.get("/me", Some("nope")).await, error(unauthorized, "Key is not valid"));
    assert_eq!(stack.get("/feed/friends", None).await, error(bad, "Key is missing"));
    assert_eq!(stack.post("/post", "nope", json!({"type": "post", "content": "x"})).await, error(unauthorized, "Key is not valid"));

    // POST /post.
    for body in [json!({"content": "x"}), json!({"type": "video", "content": "x"}), json!({"type": 1, "content": "x"})] {
        assert_eq!(stack.post("/post", IVAN, body).await, error(bad, "Type is missing or not valid"));
    }
    for body in [json!({"type": "post"}), json!({"type": "photo", "content": ""}), json!({"type": "post", "content": 5})] {
        assert_eq!(stack.post("/post", IVAN, body).await, error(bad, "Content is missing"));
    }

    // Body handling, on every JSON route.
    for path in ["/post", "/activity", "/follow", "/unfollow"] {
        assert_eq!(stack.post_raw(path, IVAN, "text/plain", "{}").await, error(bad, "Must be json request"), "{path}");
        assert_eq!(stack.post_raw(path, IVAN, "application/json", "{not json").await, error(bad, "Bad Request"), "{path}");
        assert_eq!(stack.post_raw(path, IVAN, "application/json", "[1]").await, error(bad, "Bad Request"), "{path}");
        // NUL cannot be stored; refusing it keeps the log free of events no consumer can apply.
        let nul = r#"{"type":"post","content":"a\u0000b","verb":"like","object":"post:1","follow":"eric"}"#;
        assert_eq!(stack.post_raw(path, IVAN, "application/json", nul).await, error(bad, "Bad Request"), "{path}");
        let huge = format!(r#"{{"type":"post","content":"{}"}}"#, "x".repeat(100 * 1024));
        let (status, body) = stack.post_raw(path, IVAN, "application/json", huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(body["error"], true);
    }

    // POST /activity.
    for body in [json!({"object": "post:1"}), json!({"verb": "post", "object": "post:1"}), json!({"verb": 3, "object": "post:1"})] {
        assert_eq!(stack.post("/activity", IVAN, body).await, error(bad, "Verb is missing or wrong verb format"));
    }
    for object in [json!(null), json!("post"), json!("post:abc"), json!("video:1"), json!("post:0"), json!(21)] {
        let body = json!({"verb": "like", "object": object});
        assert_eq!(stack.post("/activity", IVAN, body).await, error(bad, "Wrong object format"), "{object}");
    }
    for object in ["post:2", "photo:1"] {
        let body = json!({"verb": "like", "object": object});
        assert_eq!(stack.post("/activity", IVAN, body).await, error(bad, "Object is not found"));
    }

    // POST /follow and /unfollow.
    assert_eq!(stack.post("/follow", IVAN, json!({"follow": "nobody"})).await, error(bad, "User not found"));
    assert_eq!(stack.post("/follow", IVAN, json!({})).await, error(bad, "User not found"));
    assert_eq!(stack.post("/follow", IVAN, json!({"follow": "ivan"})).await, error(bad, "You can't follow yourself"));
    assert_eq!(stack.post("/unfollow", IVAN, json!({"unfollow": "nobody"})).await, error(bad, "User not found"));
    assert_eq!(stack.post("/unfollow", IVAN, json!({"unfollow": "ivan"})).await, error(bad, "You can't unfollow yourself"));

    // Feed paging parameters (beyond the reference): 400 naming the field, as on /events.
    let invalid = |field: &str, message: &str| (bad, json!({"error": true, "message": message, "field": field}));
    assert_eq!(stack.get("/feed/my?cursor=zzz", Some(IVAN)).await, invalid("cursor", "Cursor is not valid"));
    // Two keys: which would win? Refused.
    let response =
        stack.http.get(format!("{}/me", stack.api_url)).header("X-App-Key", IVAN).header("X-App-Key", "abc124").send().await.unwrap();
    assert_eq!(response.status(), bad);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Only one X-App-Key header is allowed");
    // Out of range for any store: a client error, never "Database unavailable".
    let far = format!("-300000000000000000_{}", uuid::Uuid::now_v7());
    for path in ["/feed/my", "/feed/friends"] {
        assert_eq!(stack.get(&format!("{path}?cursor={far}"), Some(IVAN)).await, invalid("cursor", "Cursor is not valid"), "{path}");
    }
    let long = json!({"type": "post", "content": "x".repeat(10_001)});
    assert_eq!(stack.post("/post", IVAN, long).await, error(bad, "Content must be at most 10000 characters"));
    assert_eq!(stack.get("/feed/friends?limit=0", Some(IVAN)).await, invalid("limit", "Limit must be between 1 and 200"));

    // Unknown routes are JSON too.
    assert_eq!(stack.get("/nope", Some(IVAN)).await.0, not_found);

    assert_eq!(stack.published().await, published_before, "an invalid request reached the log");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM activities").fetch_one(&stack.db).await.unwrap();
    assert_eq!(rows, 1);

    // Already followed publishes nothing either.
    assert_eq!(stack.post("/follow", IVAN, json!({"follow": "eric"})).await.1["message"], "User followed");
    let published = stack.published().await;
    assert_eq!(
        stack.post("/follow", IVAN, json!({"follow": "eric"})).await,
        (StatusCode::OK, json!({"verb": "follow", "message": "Already followed"}))
    );
    assert_eq!(stack.published().await, published);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_stays_correct_while_new_entries_arrive() {
    let stack = Stack::start().await;
    assert_eq!(stack.post("/follow", IVAN, json!({"follow": "nico"})).await.0, StatusCode::OK);
    post_many(&stack, NICO, 12).await;

    for (path, field, key) in [("/feed/friends", "friends_feed", IVAN), ("/feed/my", "my_feed", NICO)] {
        let expected = stack.whole_feed(path, key).await;
        assert!(expected.len() >= 12, "{path}");
        let mut seen = Vec::new();
        let mut next = format!("{path}?limit=5");
        while !next.is_empty() {
            let (status, body) = stack.get(&next, Some(key)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page = body[field].as_array().unwrap();
            assert!(page.len() <= 5);
            seen.extend(page.iter().cloned());
            next = body["next_url"].as_str().unwrap().to_string();
            if !next.is_empty() {
                assert!(next.starts_with(&format!("{path}?cursor=")) && next.ends_with("&limit=5"), "{next}");
            }
            // New entries arriving between pages must neither repeat nor shift the rest.
            post_many(&stack, NICO, 1).await;
        }
        assert_eq!(seen, expected, "{path}");
    }
    stack.stop().await;
}
