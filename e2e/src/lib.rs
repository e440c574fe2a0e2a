//! Test harness: runs the real services (API, writer, fan-out) against a real
//! Kafka-protocol broker, PostgreSQL and Redis — in-process, or for crash tests the
//! writer and fan-out as child processes of their built binaries ([`ServiceProcess`]),
//! killed with SIGKILL.
//!
//! Where those live: `DATABASE_URL` (any database on the server; each stack creates its
//! own), `REDIS_URL` and `KAFKA_BROKERS` when set (`scripts/test.sh` sets them);
//! otherwise the missing ones are started with testcontainers (TimescaleDB, Redis,
//! Apache Kafka in KRaft mode), so a developer with Docker runs plain `cargo test`.
//!
//! Every answer a test sees through a [`Stack`]'s helpers is checked against the API's
//! OpenAPI document ([`contract`]).
//!
//! Every [`Stack`] is isolated: its own database, topics, consumer names and Redis key
//! prefix, so tests run in parallel.

pub mod contract;
pub mod daemons;
pub mod tls;

use feed_core::config::{CommonConfig, ConsumerConfig, FeedSettings};
use feed_core::consumer::BatchSettings;
use feed_core::event::UserRef;
use feed_core::keys::Keys;
use feed_core::shutdown::Shutdown;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Where the backing services are.
#[derive(Clone, Debug)]
pub struct Infra {
    /// A PostgreSQL URL; stacks create their databases on that server.
    pub postgres_url: String,
    /// Redis URL (with `redis_cluster`, the cluster's seed nodes, comma-separated).
    pub redis_url: String,
    /// Whether Redis is a Redis Cluster (`REDIS_CLUSTER=true`).
    pub redis_cluster: bool,
    /// Kafka bootstrap servers.
    pub brokers: String,
}

static INFRA: OnceLock<Infra> = OnceLock::new();

/// The backing services, from the environment or started once per test binary.
pub fn infra() -> &'static Infra {
    INFRA.get_or_init(|| {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (postgres_url, redis_url, brokers) = (env("DATABASE_URL"), env("REDIS_URL"), env("KAFKA_BROKERS"));
        let redis_cluster = env("REDIS_CLUSTER").is_some_and(|v| v == "true");
        if let (Some(postgres_url), Some(redis_url), Some(brokers)) = (&postgres_url, &redis_url, &brokers) {
            return Infra { postgres_url: postgres_url.clone(), redis_url: redis_url.clone(), redis_cluster, brokers: brokers.clone() };
        }
        containers::start(postgres_url, redis_url, brokers)
    })
}

mod containers {
    //! Docker-backed infrastructure for machines without local services.
    use super::Infra;
    use testcontainers_modules::kafka::apache::{Kafka, KAFKA_PORT};
    use testcontainers_modules::postgres::Postgres;
    use testcontainers_modules::redis::{Redis, REDIS_PORT};
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    use testcontainers_modules::testcontainers::ImageExt;

    /// Starts what is missing on a thread of its own that keeps the containers alive for
    /// the rest of the test binary (tests each have their own runtime).
    pub fn start(postgres_url: Option<String>, redis_url: Option<String>, brokers: Option<String>) -> Infra {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime for the containers");
            runtime.block_on(async move {
                let mut keep = Vec::new();
                let postgres_url = match postgres_url {
                    Some(url) => url,
                    None => {
                        let c = Postgres::default()
                            .with_name("timescale/timescaledb")
                            .with_tag("latest-pg16")
                            .start()
                            .await
                            .expect("start TimescaleDB (is Docker running?)");
                        let port = c.get_host_port_ipv4(5432).await.expect("postgres port");
                        keep.push(Box::new(c) as Box<dyn std::any::Any + Send>);
                        format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres")
                    }
                };
                let redis_url = match redis_url {
                    Some(url) => url,
                    None => {
                        let c = Redis::default().start().await.expect("start Redis (is Docker running?)");
                        let port = c.get_host_port_ipv4(REDIS_PORT).await.expect("redis port");
                        keep.push(Box::new(c));
                        format!("redis://127.0.0.1:{port}")
                    }
                };
                let brokers = match brokers {
                    Some(b) => b,
                    None => {
                        let c = Kafka::default().start().await.expect("start Kafka (is Docker running?)");
                        let port = c.get_host_port_ipv4(KAFKA_PORT).await.expect("kafka port");
                        keep.push(Box::new(c));
                        format!("127.0.0.1:{port}")
                    }
                };
                tx.send(Infra { postgres_url, redis_url, redis_cluster: false, brokers }).expect("harness waits for the infra");
                std::future::pending::<()>().await;
                drop(keep);
            });
        });
        rx.recv().expect("containers started")
    }
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], database);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Knobs for a [`Stack`].
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Seed ivan, nico and eric (keys abc123, abc124, abc125).
    pub demo_users: bool,
    /// Partitions of the feed topic.
    pub partitions: i32,
    /// The API's read-your-writes bound.
    pub read_your_writes_timeout: Duration,
    /// The API's broker acknowledgement bound.
    pub publish_timeout: Duration,
    /// The API's whole-write bound (`WRITE_DEADLINE_MS`); must exceed `publish_timeout`.
    pub write_deadline: Duration,
    /// Points the API (only) at other brokers, e.g. an unreachable address.
    pub api_brokers: Option<String>,
    /// Other backing services than [`infra`]'s (e.g. a [`daemons`] one a test crashes):
    /// brokers, a PostgreSQL URL (the stack's database is created on it), a Redis URL.
    pub brokers: Option<String>,
    /// See `brokers`.
    pub postgres_url: Option<String>,
    /// See `brokers`.
    pub redis_url: Option<String>,
    /// The CA to trust for a `rediss://` `redis_url`.
    pub redis_ca_file: Option<String>,
    /// TLS and SASL settings for `brokers` (librdkafka properties).
    pub kafka_security: Vec<(&'static str, String)>,
    /// Start a writer and a fan-out in-process (crash tests start processes instead).
    pub in_process_consumers: bool,
    /// How the fan-out keeps feeds (and the API catches readers up).
    pub feed: FeedSettings,
    /// The API's connection limits and read timeouts.
    pub limits: api::server::Limits,
    /// The API's rate limits and write slots.
    pub shedding: api::shedding::Settings,
    /// Store the time-partitioned tables as native partitions even where TimescaleDB is
    /// available (the fallback's tests); by default hypertables where TimescaleDB can be
    /// created, unless `FEED_TEST_STORAGE=native` (how the test command runs the suite
    /// again on the fallback).
    pub native_partitions: bool,
    /// The API's `SHUTDOWN_DELAY_MS`.
    pub shutdown_delay: Duration,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            demo_users: true,
            partitions: 3,
            read_your_writes_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(5),
            write_deadline: Duration::from_secs(20),
            api_brokers: None,
            brokers: None,
            postgres_url: None,
            redis_url: None,
            redis_ca_file: None,
            kafka_security: Vec::new(),
            in_process_consumers: true,
            feed: FeedSettings::default(),
            limits: api::server::Limits {
                max_connections: 1024,
                header_read_timeout: Duration::from_secs(10),
                body_read_timeout: Duration::from_secs(10),
            },
            shedding: api::shedding::Settings { per_key: 0, per_address: 0, max_pending_writes: 1024 },
            native_partitions: std::env::var("FEED_TEST_STORAGE").is_ok_and(|s| s == "native"),
            shutdown_delay: Duration::ZERO,
        }
    }
}

/// A service running in this process.
pub struct Running {
    shutdown: Shutdown,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Graceful stop, as on SIGTERM.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.expect("service task").expect("service stopped cleanly");
    }
}

/// A writer or fan-out running as a child process of its built binary, configured by
/// environment variables as in production, so a test can SIGKILL it.
pub struct ServiceProcess {
    binary: std::path::PathBuf,
    env: Vec<(String, String)>,
    log: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl ServiceProcess {
    /// Starts `binary` (`writer` or `fanout`) with `env` on top of this process's
    /// environment; its output goes to `target/e2e-logs/`.
    pub fn start(binary: &str, env: Vec<(String, String)>) -> Self {
        let binary = service_binary(binary);
        let logs = binary.parent().expect("binaries live in a directory").join("e2e-logs");
        std::fs::create_dir_all(&logs).expect("create target/e2e-logs");
        let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("service");
        let log = logs.join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let mut process = Self { binary, env, log, child: None };
        process.restart();
        process
    }

    /// SIGKILL, wherever it is: no batch finished, no client closed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same settings.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("service log");
        let child = std::process::Command::new(&self.binary)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().expect("service log"))
            .stderr(log)
            .spawn()
            .expect("start the service binary");
        self.child = Some(child);
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Where its output goes, for a failing test to point at.
    pub fn log(&self) -> &std::path::Path {
        &self.log
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The path of a service binary built beside the running one: a test binary lives in
/// `target/<profile>/deps/`, a tool in `target/<profile>/`.
fn service_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the running binary's path");
    let dirs: Vec<&std::path::Path> = exe.ancestors().skip(1).take(2).collect();
    dirs.iter().map(|dir| dir.join(name)).find(|path| path.exists()).unwrap_or_else(|| {
        panic!("no {name} binary beside {}: build the services first (`cargo build --bins`; scripts/test.sh does)", exe.display())
    })
}

/// One isolated installation: database, topic, groups, key prefix, and the three services.
pub struct Stack {
    /// What this stack's names end with (database, topics, groups, key prefix).
    pub id: String,
    /// The settings the services share.
    pub common: CommonConfig,
    /// Base URL of the API, e.g. `http://127.0.0.1:41234`.
    pub api_url: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// This stack's database.
    pub db: PgPool,
    /// Redis.
    pub redis: feed_core::redis_client::Redis,
    /// Redis key names under this stack's prefix.
    pub keys: Keys,
    /// The API's state, to act as the API does (create users).
    pub api_state: api::AppState,
    /// The API.
    pub api: Option<Running>,
    /// The writer.
    pub writer: Option<Running>,
    /// The fan-out.
    pub fanout: Option<Running>,
    /// How the fan-out keeps feeds.
    pub feed: FeedSettings,
    /// How the migrations stored the time-partitioned tables.
    pub storage: feed_core::db::Storage,
}

impl Stack {
    /// A stack with the default options.
    pub async fn start() -> Self {
        Self::start_with(StackOptions::default()).await
    }

    /// A stack with `options`.
    pub async fn start_with(options: StackOptions) -> Self {
        feed_core::telemetry::init().expect("LOG_FORMAT is text or json");
        let infra = infra();
        let postgres_url = options.postgres_url.clone().unwrap_or_else(|| infra.postgres_url.clone());
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let database = format!("feed_test_{id}");
        let admin = PgPool::connect(&postgres_url).await.expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {database}")).execute(&admin).await.expect("create test database");
        if options.native_partitions {
            // Read by the first migration (feed_uses_timescaledb).
            sqlx::query(&format!("ALTER DATABASE {database} SET feed.storage = 'native'"))
                .execute(&admin)
                .await
                .expect("choose native partitions");
        }
        admin.close().await;
        let common = CommonConfig {
            database_url: with_database(&postgres_url, &database),
            redis_url: options.redis_url.clone().unwrap_or_else(|| infra.redis_url.clone()),
            redis_cluster: options.redis_url.is_none() && infra.redis_cluster,
            redis_ca_file: options.redis_ca_file.clone(),
            redis_key_prefix: format!("test:{id}:"),
            kafka: feed_core::kafka::Kafka {
                brokers: options.brokers.clone().unwrap_or_else(|| infra.brokers.clone()),
                security: options.kafka_security.clone(),
            },
            feed_topic: format!("feed-{id}"),
            events_topic: format!("events-{id}"),
            analytics_topic: format!("analytics-{id}"),
            writer_group: format!("writer-{id}"),
            fanout_group: format!("fanout-{id}"),
            run_migrations: true,
            topics: feed_core::config::TopicSettings::local(options.partitions),
            analytics_window: feed_core::config::TimeWindow {
                max_age: chrono::TimeDelta::hours(168),
                max_ahead: chrono::TimeDelta::minutes(60),
            },
        };
        common.ensure_topics().await.expect("create topics");
        let db = feed_core::db::connect(&common.database_url, 4).await.expect("connect test database");
        let storage = feed_core::db::migrate(&db).await.expect("migrate");
        let redis = common.redis().await.expect("connect Redis");

        let (writer, fanout) = if options.in_process_consumers {
            (Some(spawn_writer(&common, &common.writer_group).await), Some(spawn_fanout(&common, &common.fanout_group, options.feed).await))
        } else {
            (None, None)
        };

        let mut api_common = common.clone();
        if let Some(brokers) = &options.api_brokers {
            api_common.kafka = feed_core::kafka::Kafka::plaintext(brokers.clone());
        }
        let config = api::Config {
            common: api_common,
            listen_addr: "127.0.0.1:0".parse().expect("literal address"),
            publish_timeout: options.publish_timeout,
            write_deadline: options.write_deadline,
            read_your_writes_timeout: options.read_your_writes_timeout,
            demo_users: options.demo_users,
            max_body_bytes: 64 * 1024,
            db_pool_size: 8,
            feed: options.feed,
            body_cache_entries: 10_000,
            limits: options.limits,
            shedding: options.shedding,
            shutdown_delay: options.shutdown_delay,
        };
        let app = api::Application::build(config).await.expect("build API");
        let api_url = format!("http://{}", app.local_addr());
        let api_state = app.state();
        let shutdown = Shutdown::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        Self {
            keys: Keys::new(&common.redis_key_prefix),
            id,
            common,
            api_url,
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("HTTP client"),
            db,
            redis,
            api_state,
            api: Some(Running { shutdown, handle }),
            writer,
            fanout,
            feed: options.feed,
            storage,
        }
    }

    /// Starts the built `writer` or `fanout` binary as a child process on this stack's
    /// stores, topics and groups (migrations already ran).
    pub fn start_process(&self, binary: &str) -> ServiceProcess {
        self.start_process_with(binary, &[])
    }

    /// Like [`Stack::start_process`], with more environment variables (later ones win).
    pub fn start_process_with(&self, binary: &str, extra: &[(&str, String)]) -> ServiceProcess {
        let mut common = self.common.clone();
        common.run_migrations = false;
        let mut env: Vec<(String, String)> = common.to_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        for (k, v) in [
            ("METRICS_ADDR", "127.0.0.1:0".to_string()),
            ("FEED_MAX_LEN", self.feed.max_len.to_string()),
            ("HOT_AUTHOR_FOLLOWERS", self.feed.hot_followers.to_string()),
            ("FEED_ACTIVE_HOURS", (self.feed.active_for.as_secs() / 3600).to_string()),
            ("WRITER_BATCH_SIZE", "200".to_string()),
            ("FANOUT_BATCH_SIZE", "200".to_string()),
            ("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_string())),
        ] {
            env.push((k.to_string(), v));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        ServiceProcess::start(binary, env)
    }

    /// A consumer name of this stack's own (`<name>-<id>`), for a replay or a second
    /// group, so stacks running in parallel never share one.
    pub fn group(&self, name: &str) -> String {
        format!("{name}-{}", self.id)
    }

    /// Starts a writer in `group` (the stack's own group when it is the same name).
    pub async fn spawn_writer(&self, group: &str) -> Running {
        spawn_writer(&self.common, group).await
    }

    /// Starts a fan-out in `group`.
    pub async fn spawn_fanout(&self, group: &str) -> Running {
        spawn_fanout(&self.common, group, self.feed).await
    }

    /// Creates a user the way the API does and returns it with its key.
    pub async fn create_user(&self, name: &str) -> (UserRef, String) {
        let name = api::domain::Username::parse(name).expect("valid test user name");
        api::users::create_user(&self.api_state.db, &self.api_state.feed, &name, None).await.expect("create user")
    }

    /// `GET path` with `key` (no header when `None`).
    pub async fn get(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(format!("{}{}", self.api_url, path));
        if let Some(key) = key {
            request = request.header("X-App-Key", key);
        }
        read("GET", path, request.send().await.expect("GET sent")).await
    }

    /// `POST path` with a JSON body and `key`.
    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        let request = self.http.post(format!("{}{}", self.api_url, path)).header("X-App-Key", key).json(&body);
        let answer = read("POST", path, request.send().await.expect("POST sent")).await;
        if answer.0.is_success() {
            contract::contract().check_request("POST", path, &body);
        }
        answer
    }

    /// `DELETE path` with `key`.
    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let request = self.http.delete(format!("{}{}", self.api_url, path)).header("X-App-Key", key);
        read("DELETE", path, request.send().await.expect("DELETE sent")).await
    }

    /// `method path` with no key and no body; the status and the raw text.
    pub async fn send_text(&self, method: reqwest::Method, path: &str) -> (StatusCode, String) {
        let response = self.http.request(method.clone(), format!("{}{}", self.api_url, path)).send().await.expect("sent");
        let (status, content_type) = (response.status(), content_type(&response));
        let text = response.text().await.expect("body");
        contract::contract().check_response(method.as_str(), path, status.as_u16(), content_type.as_deref(), &text);
        (status, text)
    }

    /// `POST path` with a JSON body and no key.
    pub async fn post_anonymous(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let answer =
            read("POST", path, self.http.post(format!("{}{}", self.api_url, path)).json(body).send().await.expect("POST sent")).await;
        if answer.0.is_success() {
            contract::contract().check_request("POST", path, body);
        }
        answer
    }

    /// `POST path` with a raw body and content type.
    pub async fn post_raw(&self, path: &str, key: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let request =
            self.http.post(format!("{}{}", self.api_url, path)).header("X-App-Key", key).header("Content-Type", content_type).body(body);
        read("POST", path, request.send().await.expect("POST sent")).await
    }

    /// Every entry of a feed (`/feed/my` or `/feed/friends`), following `next_url`.
    pub async fn whole_feed(&self, path: &str, key: &str) -> Vec<Value> {
        let field = if path.split('?').next().is_some_and(|p| p.ends_with("friends")) { "friends_feed" } else { "my_feed" };
        let mut entries = Vec::new();
        let mut next = path.to_string();
        while !next.is_empty() {
            let (status, body) = self.get(&next, Some(key)).await;
            assert_eq!(status, StatusCode::OK, "{next}: {body}");
            entries.extend(body[field].as_array().expect("feed array").iter().cloned());
            next = body["next_url"].as_str().expect("next_url").to_string();
        }
        entries
    }

    /// Per partition of the feed topic, the offset the next record will get.
    pub async fn high_watermarks(&self) -> HashMap<i32, i64> {
        self.topic_watermarks(&self.common.feed_topic).await
    }

    /// Per partition of `topic`, the offset the next record will get.
    pub async fn topic_watermarks(&self, topic: &str) -> HashMap<i32, i64> {
        feed_core::kafka::fetch_high_watermarks(&self.common.kafka, topic, Duration::from_secs(10)).await.expect("watermarks")
    }

    /// How many records the feed topic holds.
    pub async fn published(&self) -> i64 {
        self.high_watermarks().await.values().sum()
    }

    /// How many records `topic` holds.
    pub async fn published_on(&self, topic: &str) -> i64 {
        self.topic_watermarks(topic).await.values().sum()
    }

    /// Waits until `group` has applied everything published on the feed topic so far;
    /// panics after 60 s.
    pub async fn wait_applied(&self, group: &str) {
        self.wait_applied_on(&self.common.feed_topic, group).await
    }

    /// Waits until `group` has applied everything published on `topic` so far.
    pub async fn wait_applied_on(&self, topic: &str, group: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        if let Err(behind) = self.applied_by(topic, group, deadline).await {
            panic!("{behind}");
        }
    }

    /// Waits until `group` has applied everything published on `topic` so far, at most
    /// until `deadline`; `Err` says how far behind it still was. (Progress marks that
    /// cannot be read count as nothing applied: Redis may be down in the test.)
    pub async fn applied_by(&self, topic: &str, group: &str, deadline: tokio::time::Instant) -> Result<(), String> {
        let high = self.topic_watermarks(topic).await;
        let key = self.keys.progress(group, topic);
        loop {
            let marks = feed_core::progress::read(&mut self.redis.clone(), &key).await.unwrap_or_default();
            if high.iter().all(|(p, h)| *h == 0 || marks.get(p).is_some_and(|m| m >= h)) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("{group} did not apply {high:?} of {topic} in time, at {marks:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first `count` records of `topic`'s dead-letter topic (fewer after 30 s), with
    /// their headers.
    pub async fn dead_letters(&self, topic: &str, count: usize) -> Vec<(Vec<u8>, HashMap<String, String>)> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::{Headers, Message};
        let (kafka, topic) = (self.common.kafka.clone(), feed_core::consumer::dead_letter_topic(topic));
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = kafka
                .client()
                .set("group.id", "dead-letter-reader")
                .set("enable.auto.commit", "false")
                .create()
                .expect("dead-letter reader");
            let mut assignment = rdkafka::TopicPartitionList::new();
            assignment.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning).expect("partition 0");
            consumer.assign(&assignment).expect("assign");
            let mut letters = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while letters.len() < count && std::time::Instant::now() < deadline {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                    let headers: HashMap<String, String> = message
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).to_string()))
                                .collect()
                        })
                        .unwrap_or_default();
                    letters.push((message.payload().unwrap_or_default().to_vec(), headers));
                }
            }
            letters
        })
        .await
        .expect("dead-letter task")
    }

    /// All members of a Redis sorted set, with scores.
    pub async fn zset(&self, key: &str) -> Vec<(Vec<u8>, i64)> {
        redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut self.redis.clone()).await.expect("ZRANGE")
    }

    /// Tells the API to stop, as SIGTERM does, without waiting for it.
    pub fn signal_api(&self) {
        if let Some(api) = &self.api {
            api.shutdown.cancel();
        }
    }

    /// Waits up to `within` for the API to have stopped; whether it did (and cleanly).
    pub async fn api_stopped(&mut self, within: Duration) -> bool {
        let Some(api) = self.api.as_mut() else { return true };
        match tokio::time::timeout(within, &mut api.handle).await {
            Ok(ended) => {
                self.api = None;
                matches!(ended, Ok(Ok(())))
            }
            Err(_) => false,
        }
    }

    /// Stops all services gracefully.
    pub async fn stop(mut self) {
        for service in [self.api.take(), self.writer.take(), self.fanout.take()].into_iter().flatten() {
            service.stop().await;
        }
    }
}

/// The status and body (JSON when it parses, else a string), checked against the
/// OpenAPI document.
async fn read(method: &str, path: &str, response: reqwest::Response) -> (StatusCode, Value) {
    let (status, content_type) = (response.status(), content_type(&response));
    let text = response.text().await.expect("response body");
    contract::contract().check_response(method, path, status.as_u16(), content_type.as_deref(), &text);
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

fn content_type(response: &reqwest::Response) -> Option<String> {
    response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn settings() -> BatchSettings {
    BatchSettings { max_records: 200, linger: Duration::from_millis(2) }
}

async fn spawn_writer(common: &CommonConfig, group: &str) -> Running {
    let mut common = common.clone();
    common.writer_group = group.to_string();
    // Retention runs only when a test calls it.
    let retention = writer::retention::Retention { every: None, ..writer::retention::Retention::default() };
    let config = writer::Config { common, consumer: ConsumerConfig::default(), batch: settings(), db_pool_size: 7, retention };
    let app = writer::Application::build(config).await.expect("build writer");
    let shutdown = Shutdown::new();
    let handle = tokio::spawn(app.run(shutdown.clone()));
    Running { shutdown, handle }
}

async fn spawn_fanout(common: &CommonConfig, group: &str, feed: FeedSettings) -> Running {
    let mut common = common.clone();
    common.fanout_group = group.to_string();
    let config = fanout::Config { common, consumer: ConsumerConfig::default(), batch: settings(), feed };
    let app = fanout::Application::build(config).await.expect("build fan-out");
    let shutdown = Shutdown::new();
    let handle = tokio::spawn(app.run(shutdown.clone()));
    Running { shutdown, handle }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(super::with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"), "postgres://postgres@127.0.0.1:5432/x");
        assert_eq!(super::with_database("postgres://u:p@h/db?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
        assert_eq!(super::with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
