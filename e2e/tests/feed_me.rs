//! feed-me (../shared/reference/feed-me.md) behind app keys, served by the real
//! pipeline: its documented examples, and the rules its own code follows.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::Stack;
use reqwest::StatusCode;
use serde_json::{json, Value};

const IVAN: &str = "abc123";
const ERIC: &str = "abc125";

fn feed<'a>(body: &'a Value, field: &str) -> &'a Vec<Value> {
    body[field].as_array().unwrap_or_else(|| panic!("{field} in {body}"))
}

fn is_feed_me_time(value: &Value) -> bool {
    let t = value.as_str().unwrap_or_default();
    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_verb_activities_are_recorded_and_echoed() {
    let stack = Stack::start().await;
    let (_, niko_key) = stack.create_user("niko").await;

    // The README's example, as eric.
    let (status, body) =
        stack.post("/activity", ERIC, json!({"actor": "eric", "verb": "punched", "object": "null", "target": "niko"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(is_feed_me_time(&body["datetime"]), "{body}");
    let mut echo = body.clone();
    echo.as_object_mut().unwrap().remove("datetime");
    assert_eq!(echo, json!({"actor": "eric", "object": "null", "target": "niko", "verb": "punched"}));

    // No actor means the key's user; an object need not exist.
    let (status, body) = stack.post("/activity", ERIC, json!({"verb": "cheered", "object": "post:999", "target": "niko"})).await;
    assert_eq!((status, body["actor"].clone()), (StatusCode::OK, json!("eric")));

    // Refused, in feed-me's error shape, and nothing published.
    let published = stack.published().await;
    let refused = [
        (json!({"actor": "ivan", "verb": "punched", "target": "niko"}), StatusCode::FORBIDDEN),
        (json!({"verb": "punched", "target": "nobody"}), StatusCode::BAD_REQUEST),
        (json!({"verb": "Punched!", "target": "niko"}), StatusCode::BAD_REQUEST),
        (json!({"verb": "", "target": "niko"}), StatusCode::BAD_REQUEST),
        (json!({"verb": "follow", "target": "niko"}), StatusCode::BAD_REQUEST),
        (json!({"verb": "punched", "object": 5, "target": "niko"}), StatusCode::BAD_REQUEST),
        (json!({"verb": "punched", "object": "x".repeat(257), "target": "niko"}), StatusCode::BAD_REQUEST),
        (json!({"actor": "eric", "verb": "punched"}), StatusCode::BAD_REQUEST),
    ];
    for (request, expected) in refused {
        let (status, body) = stack.post("/activity", ERIC, request.clone()).await;
        assert_eq!(status, expected, "{request}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{request}: {body}");
    }
    assert_eq!(stack.published().await, published);

    // The reference's like keeps its own behaviour.
    let (status, body) = stack.post("/activity", IVAN, json!({"verb": "like", "object": "post:1"})).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, json!({"error": true, "message": "Object is not found"})));

    // Both appear in eric's feed-me feed, newest first, readable by anyone with a key.
    let (status, body) = stack.get("/feed/eric", Some(&niko_key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let verbs: Vec<&str> = feed(&body, "my_feed").iter().map(|e| e["verb"].as_str().unwrap()).collect();
    assert_eq!(verbs, ["cheered", "punched"]);
    assert_eq!(feed(&body, "my_feed")[1]["object"], "null");
    assert!(body.get("next_url").is_none() && body.get("previous_url").is_none(), "{body}");
    // Without a key: 400, feed-me's shape.
    assert_eq!(stack.get("/feed/eric", None).await, (StatusCode::BAD_REQUEST, json!({"error": "Key is missing"})));
    assert_eq!(stack.get("/feed/nobody", Some(IVAN)).await.0, StatusCode::NOT_FOUND);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_through_the_feed_route_and_the_friends_feed() {
    let stack = Stack::start().await;
    let (_, niko_key) = stack.create_user("niko").await;
    assert_eq!(stack.post("/post", ERIC, json!({"type": "post", "content": "hello"})).await.0, StatusCode::OK);
    assert_eq!(stack.post("/activity", ERIC, json!({"verb": "punched", "object": "null", "target": "niko"})).await.0, StatusCode::OK);

    let (status, body) = stack.post("/feed/ivan", IVAN, json!({"follow": "eric"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"follow": {"followee": "eric", "follower": "ivan"}})));
    let errors = [
        ("/feed/ivan", json!({"follow": "eric"}), StatusCode::CONFLICT),
        ("/feed/ivan", json!({"follow": "ivan"}), StatusCode::BAD_REQUEST),
        ("/feed/ivan", json!({"follow": "nobody"}), StatusCode::BAD_REQUEST),
        ("/feed/ivan", json!({"unfollow": "niko"}), StatusCode::CONFLICT),
        ("/feed/ivan", json!({}), StatusCode::BAD_REQUEST),
        ("/feed/eric", json!({"follow": "niko"}), StatusCode::FORBIDDEN),
    ];
    for (path, request, expected) in errors {
        let (status, body) = stack.post(path, IVAN, request.clone()).await;
        assert_eq!(status, expected, "{path} {request}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }

    // Follows add nothing to feed-me feeds; the followee's activities are in the friends
    // feed, newest first, the reference's post included.
    let (_, own) = stack.get("/feed/ivan", Some(IVAN)).await;
    assert_eq!(feed(&own, "my_feed"), &Vec::<Value>::new());
    let (status, friends) = stack.get("/feed/ivan/friends", Some(IVAN)).await;
    assert_eq!(status, StatusCode::OK, "{friends}");
    let entries = feed(&friends, "friends_feed");
    let shown: Vec<(&str, &str, &str)> =
        entries.iter().map(|e| (e["verb"].as_str().unwrap(), e["object"].as_str().unwrap(), e["target"].as_str().unwrap())).collect();
    assert_eq!(shown, [("punched", "null", "niko"), ("post", "post:1", "")]);
    assert!(entries.iter().all(|e| e["actor"] == "eric" && is_feed_me_time(&e["datetime"])));

    // Only one's own friends feed; following nobody gives an empty one.
    assert_eq!(stack.get("/feed/eric/friends", Some(IVAN)).await.0, StatusCode::FORBIDDEN);
    let (status, body) = stack.get("/feed/niko/friends", Some(&niko_key)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"friends_feed": []})));

    let (status, body) = stack.post("/feed/ivan", IVAN, json!({"unfollow": "eric"})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"unfollow": {"followee": "eric", "follower": "ivan"}})));
    let (_, friends) = stack.get("/feed/ivan/friends", Some(IVAN)).await;
    assert_eq!(feed(&friends, "friends_feed"), &Vec::<Value>::new());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_are_paged_by_number() {
    let stack = Stack::start().await;
    assert_eq!(stack.post("/feed/ivan", IVAN, json!({"follow": "eric"})).await.0, StatusCode::OK);
    for i in 0..25 {
        let body = json!({"verb": "waved", "object": format!("{i}"), "target": "ivan"});
        assert_eq!(stack.post("/activity", ERIC, body).await.0, StatusCode::OK);
    }
    for path in ["/feed/eric", "/feed/ivan/friends"] {
        let field = if path.ends_with("friends") { "friends_feed" } else { "my_feed" };
        let (_, first) = stack.get(path, Some(IVAN)).await;
        let objects: Vec<&str> = feed(&first, field).iter().map(|e| e["object"].as_str().unwrap()).collect();
        assert_eq!(objects.len(), 20);
        assert_eq!((objects[0], objects[19]), ("24", "5"), "newest first");
        assert_eq!(first["next_url"], format!("{path}?page=2"));
        assert!(first.get("previous_url").is_none());

        let (_, second) = stack.get(&format!("{path}?page=2"), Some(IVAN)).await;
        let objects: Vec<&str> = feed(&second, field).iter().map(|e| e["object"].as_str().unwrap()).collect();
        assert_eq!(objects, ["4", "3", "2", "1", "0"]);
        assert!(second.get("next_url").is_none(), "{second}");
        assert_eq!(second["previous_url"], format!("{path}?page=1"));

        let (_, past) = stack.get(&format!("{path}?page=3"), Some(IVAN)).await;
        assert_eq!(feed(&past, field), &Vec::<Value>::new());
        assert_eq!(past["previous_url"], format!("{path}?page=2"));
        for bad in ["0", "x", "-1"] {
            let (status, body) = stack.get(&format!("{path}?page={bad}"), Some(IVAN)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body["error"].is_string());
        }
    }
    stack.stop().await;
}
