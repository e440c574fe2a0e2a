//! Generic events (../shared/reference/activity-service.md) through the events topic,
//! plus `/health`.

#![allow(clippy::unwrap_used)] // a test may panic on what it did not expect

use e2e::{Stack, StackOptions};
use feed_core::generic_events::Filter;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;

fn event(component: &str, email: &str, environment: &str, message: &str) -> Value {
    json!({"component": component, "data": {"age": 20}, "email": email, "environment": environment, "message": message})
}

async fn list(stack: &Stack, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut next = format!("/events{query}");
    while !next.is_empty() {
        let (status, body) = stack.get(&next, None).await;
        assert_eq!(status, StatusCode::OK, "{next}: {body}");
        all.extend(body["events"].as_array().expect("events").iter().cloned());
        next = body["next_url"].as_str().expect("next_url").to_string();
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_failing_dependency() {
    let stack = Stack::start().await;
    assert_eq!(stack.get("/health", None).await, (StatusCode::OK, json!({"status": "healthy"})));
    stack.stop().await;

    let options = StackOptions { demo_users: false, api_brokers: Some("127.0.0.1:1".into()), ..StackOptions::default() };
    let stack = Stack::start_with(options).await;
    let (status, body) = stack.get("/health", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"status": "unhealthy", "failing": ["kafka"]}));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_events_validates_every_field_and_publishes_only_valid_ones() {
    let stack = Stack::start_with(StackOptions { demo_users: false, ..StackOptions::default() }).await;
    let (status, body) = stack.post_anonymous("/events", &event("order", "ade@gmail.com", "production", "order failed")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["component"], "order");
    assert_eq!(body["data"], json!({"age": 20}));
    assert_eq!(body["email"], "ade@gmail.com");
    assert_eq!(body["environment"], "production");
    assert_eq!(body["message"], "order failed");
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    // Readable at once.
    let listed = list(&stack, "").await;
    assert_eq!(listed, vec![body.clone()]);

    // Any JSON value is valid data.
    for data in [json!(null), json!([1, 2]), json!("text"), json!(3.5)] {
        let mut e = event("c", "a@b.io", "staging", "m");
        e["data"] = data;
        assert_eq!(stack.post_anonymous("/events", &e).await.0, StatusCode::CREATED);
    }
    let published = stack.published_on(&stack.common.events_topic).await;
    assert_eq!(published, 5);

    let valid = event("order", "ade@gmail.com", "production", "order failed");
    let mut cases: Vec<(Value, &str, &str)> = vec![(json!({}), "component", "component is required")];
    for field in ["component", "environment", "message"] {
        let mut missing = valid.clone();
        missing.as_object_mut().unwrap().remove(field);
        cases.push((missing, field, ""));
        for blank in [json!(""), json!("   "), json!(7)] {
            let mut bad = valid.clone();
            bad[field] = blank;
            cases.push((bad, field, ""));
        }
    }
    let mut no_data = valid.clone();
    no_data.as_object_mut().unwrap().remove("data");
    cases.push((no_data, "data", "data is required"));
    let mut no_email = valid.clone();
    no_email.as_object_mut().unwrap().remove("email");
    cases.push((no_email, "email", "email is required"));
    // Length limits: 256 characters, 10,000 for the message (a longer component once
    // stopped the whole stream: it does not fit its index).
    for (field, max) in [("component", 256), ("environment", 256), ("message", 10_000)] {
        let mut long = valid.clone();
        long[field] = json!("é".repeat(max + 1));
        cases.push((long, field, ""));
    }
    let mut long_email = valid.clone();
    long_email["email"] = json!(format!("{}@example.com", "a".repeat(250)));
    cases.push((long_email, "email", "email must be at most 256 characters"));
    for email in ["ade", "ade@", "@gmail.com", "ade@gmail", "a b@c.com"] {
        let mut bad = valid.clone();
        bad["email"] = json!(email);
        cases.push((bad, "email", "email is not a valid email address"));
    }
    for (body, field, message) in cases {
        let (status, answer) = stack.post_anonymous("/events", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"], true);
        assert_eq!(answer["field"], field, "{body} → {answer}");
        if !message.is_empty() {
            assert_eq!(answer["message"], message);
        }
    }
    let (status, answer) = stack.post_raw("/events", "", "text/plain", "component=x").await;
    assert_eq!((status, answer["message"].as_str()), (StatusCode::BAD_REQUEST, Some("Must be json request")));
    let (status, answer) = stack.post_raw("/events", "", "application/json", "{\"component\":").await;
    assert_eq!((status, answer["message"].as_str()), (StatusCode::BAD_REQUEST, Some("Bad Request")));

    assert_eq!(stack.published_on(&stack.common.events_topic).await, published, "an invalid event was published");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_alone_and_combined_and_pagination() {
    let stack = Stack::start_with(StackOptions { demo_users: false, ..StackOptions::default() }).await;
    let mut created = Vec::new();
    for i in 0..12 {
        let email = if i % 2 == 0 { "ade@gmail.com" } else { "bo@example.org" };
        let environment = if i % 3 == 0 { "production" } else { "staging" };
        let component = if i < 6 { "order" } else { "payment" };
        let message = if i % 4 == 0 { format!("order {i} failed") } else { format!("order {i} ok") };
        let (status, body) = stack.post_anonymous("/events", &event(component, email, environment, &message)).await;
        assert_eq!(status, StatusCode::CREATED);
        created.push(body);
    }
    created.reverse(); // newest first
    let expect = |pred: &dyn Fn(&Value) -> bool| -> Vec<Value> { created.iter().filter(|e| pred(e)).cloned().collect() };

    assert_eq!(list(&stack, "").await, created);
    assert_eq!(list(&stack, "?email=ade%40gmail.com").await, expect(&|e| e["email"] == "ade@gmail.com"));
    assert_eq!(list(&stack, "?environment=production").await, expect(&|e| e["environment"] == "production"));
    assert_eq!(list(&stack, "?component=payment").await, expect(&|e| e["component"] == "payment"));
    assert_eq!(list(&stack, "?message=failed").await, expect(&|e| e["message"].as_str().unwrap().contains("failed")));
    assert_eq!(list(&stack, "?component=ord").await, Vec::<Value>::new(), "component is an exact match");
    let combined = "?email=ade%40gmail.com&environment=production&component=order&message=failed";
    assert_eq!(
        list(&stack, combined).await,
        expect(&|e| e["email"] == "ade@gmail.com"
            && e["environment"] == "production"
            && e["component"] == "order"
            && e["message"].as_str().unwrap().contains("failed"))
    );
    // LIKE wildcards in the filter are literal.
    assert_eq!(list(&stack, "?message=%25").await, Vec::<Value>::new());

    // from_date in both formats: yesterday includes everything, tomorrow nothing.
    let today = chrono::Utc::now().date_naive();
    let (yesterday, tomorrow) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    assert_eq!(list(&stack, &format!("?from_date={}", yesterday.format("%m-%d-%Y"))).await.len(), 12);
    assert_eq!(list(&stack, &format!("?from_date={}", tomorrow.format("%m-%d-%Y"))).await.len(), 0);
    assert_eq!(list(&stack, &format!("?from_date={}", yesterday.format("%Y-%m-%d"))).await.len(), 12);
    assert_eq!(list(&stack, &format!("?from_date={}T00:00:00Z", tomorrow.format("%Y-%m-%d"))).await.len(), 0);
    for bad in ["2021/04/16", "yesterday", "13-45-2021"] {
        let (status, body) = stack.get(&format!("/events?from_date={bad}"), None).await;
        assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("from_date")), "{bad}");
    }

    // Pages of 5 keep the filter and never repeat or skip, even as events arrive.
    let mut seen = Vec::new();
    let mut next = "/events?email=bo%40example.org&limit=5".to_string();
    let mut pages = 0;
    while !next.is_empty() {
        let (_, body) = stack.get(&next, None).await;
        seen.extend(body["events"].as_array().unwrap().iter().cloned());
        next = body["next_url"].as_str().unwrap().to_string();
        assert!(next.is_empty() || next.contains("email=bo%40example.org"), "{next}");
        stack.post_anonymous("/events", &event("order", "bo@example.org", "staging", "late")).await;
        pages += 1;
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, expect(&|e| e["email"] == "bo@example.org"));
    let ids: HashSet<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), seen.len());
    assert_eq!(stack.get("/events?limit=201", None).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(stack.get("/events?cursor=x", None).await.0, StatusCode::BAD_REQUEST);
    // Repeated parameters and invalid UTF-8 (which would be stored as U+FFFD): refused.
    for query in ["email=bo@example.org&email=x@y.zz", "message=%FF"] {
        assert_eq!(stack.get(&format!("/events?{query}"), None).await.0, StatusCode::BAD_REQUEST, "{query}");
    }
    // Out of range for any store: 400 naming the field, never "Database unavailable".
    let far = format!("-300000000000000000_{}", uuid::Uuid::now_v7());
    for (query, field) in [(format!("cursor={far}"), "cursor"), ("from_date=-5000-01-01".to_string(), "from_date")] {
        let (status, body) = stack.get(&format!("/events?{query}"), None).await;
        assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{query}: {body}");
    }
    stack.stop().await;
}

/// The filters' plans on a large table read indexes, never every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_queries_on_a_large_table_use_indexes() {
    let stack = Stack::start_with(StackOptions { demo_users: false, ..StackOptions::default() }).await;
    let db = &stack.db;
    // All 200,000 rows (4.6 days) in last week's partition, whatever the weekday.
    let last_week = "(date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '7 days')";
    sqlx::query(&format!("SELECT feed_ensure_partition('generic_events', t) FROM (VALUES ({last_week}), (now())) AS w(t)"))
        .execute(db)
        .await
        .unwrap();
    sqlx::query(&format!(
        "INSERT INTO generic_events (time, id, component, data, email, environment, message)
         SELECT {last_week} + make_interval(secs => i * 2), gen_random_uuid(), 'component' || (i % 50), '{{}}'::jsonb,
                'user' || (i % 5000) || '@example.com', (ARRAY['production','staging','dev'])[1 + i % 3],
                'message number ' || i || CASE WHEN i % 1000 = 0 THEN ' failed' ELSE ' ok' END
         FROM generate_series(1, 200000) i",
    ))
    .execute(db)
    .await
    .unwrap();
    sqlx::query("ANALYZE generic_events").execute(db).await.unwrap();

    // The route's own query (feed_core::generic_events), one filter at a time.
    let email = || Some("user42@example.com".to_string());
    for filter in [
        Filter { email: email(), ..Filter::default() },
        Filter { component: Some("component7".into()), environment: Some("staging".into()), ..Filter::default() },
        Filter { message_contains: Some("failed".into()), ..Filter::default() },
        Filter { email: email(), from: Some(chrono::Utc::now() - chrono::TimeDelta::days(1)), ..Filter::default() },
        Filter::default(),
    ] {
        let filter = Filter { limit: 51, ..filter };
        let mut sql = sqlx::QueryBuilder::new("EXPLAIN (FORMAT JSON) ");
        feed_core::generic_events::push_query(&mut sql, &filter);
        let plan: sqlx::types::Json<serde_json::Value> = sql.build_query_scalar().fetch_one(db).await.unwrap();
        // An empty or small partition may be scanned (cheaper than an index); the one
        // holding the 200,000 rows never.
        for relation in seq_scanned(&plan.0) {
            let rows: f32 =
                sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = $1").bind(&relation).fetch_one(db).await.unwrap();
            assert!(rows < 10_000.0, "{filter:?} scans all {rows} rows of {relation}: {}", plan.0);
        }
    }
    stack.stop().await;
}

/// The relations a plan (EXPLAIN FORMAT JSON) reads with a sequential scan.
fn seq_scanned(plan: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![plan];
    while let Some(node) = stack.pop() {
        match node {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                if map.get("Node Type").and_then(Value::as_str) == Some("Seq Scan") {
                    found.push(map["Relation Name"].as_str().unwrap_or_default().to_string());
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exposed_in_prometheus_format() {
    let stack = Stack::start().await;
    assert_eq!(stack.post("/post", "abc123", json!({"type": "post", "content": "m"})).await.0, StatusCode::OK);
    assert_eq!(stack.get("/feed/friends", Some("abc123")).await.0, StatusCode::OK);
    let (status, text) = stack.send_text(reqwest::Method::GET, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        r#"feed_http_requests_total{method="POST",route="/post",status="200"}"#,
        r#"feed_http_request_duration_seconds_bucket{method="GET",route="/feed/friends",status="200""#,
        &format!(r#"feed_events_published_total{{topic="{}"}}"#, stack.common.feed_topic),
        r#"feed_reads_total{feed="friends"}"#,
        &format!(r#"feed_consumer_records_total{{topic="{}",group="{}"}}"#, stack.common.feed_topic, stack.common.writer_group),
        "feed_fanout_entries_written_total",
        r#"feed_writer_rows_total{table="activities"}"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_served_and_lists_every_route() {
    let stack = Stack::start().await;
    let (status, served) = stack.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let generated: Value = serde_json::from_str(&api::routes::openapi_document()).unwrap();
    assert_eq!(served, generated);
    assert_eq!(served["openapi"], "3.1.0");
    // Every documented route answers something other than the fallback's 404.
    for (path, item) in served["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = stack.send_text(method.clone(), path).await;
            assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {body}");
        }
    }
    stack.stop().await;
}
