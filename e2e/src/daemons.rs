//! Private copies of the backing services — a tansu broker, a Redis, a PostgreSQL —
//! each on its own port and data directory, so a test can crash and restart one
//! without touching the shared services other tests use. Everything is killed when the
//! value is dropped.
//!
//! They need the programs on this machine (`tansu`, `redis-server`, PostgreSQL's
//! `initdb`/`pg_ctl`), as `scripts/test.sh` installs them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A fresh directory under the system's temporary directory.
fn scratch_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("feed-e2e-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Waits until something accepts TCP connections on `port`.
fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGKILL and reaps the process.
fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A tansu broker storing into its own SQLite file.
pub struct Broker {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker and waits until it answers metadata requests.
    pub fn start() -> Self {
        let mut broker = Self { port: free_port(), dir: scratch_dir("broker"), child: None };
        broker.restart();
        broker
    }

    /// `host:port`, for `KAFKA_BROKERS`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the broker dies mid-whatever, its data stays.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Starts it again on the same port and data (after [`Broker::kill`]).
    pub fn restart(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("tansu.log")).expect("broker log");
        let child = Command::new("tansu")
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("broker log"))
            .stderr(log)
            .spawn()
            .expect("start tansu (is it installed? scripts/test.sh installs it)");
        self.child = Some(child);
        wait_listening(self.port, "tansu");
        let client: rdkafka::consumer::BaseConsumer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", self.address()).create().expect("metadata client");
        let deadline = Instant::now() + Duration::from_secs(30);
        while rdkafka::consumer::Consumer::fetch_metadata(&client, None, Duration::from_secs(2)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not answer on {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        kill(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis that keeps nothing on disk, like the machine's.
pub struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    /// Starts a Redis and waits until it listens.
    pub fn start() -> Self {
        let mut redis = Self { port: free_port(), dir: scratch_dir("redis"), child: None };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: everything it held is gone.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_listening(self.port, "redis-server");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        kill(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL cluster of its own (trust auth, user `postgres`). Run as root, its
/// programs run as the `postgres` user, as PostgreSQL requires.
pub struct Postgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl Postgres {
    /// Creates and starts a cluster.
    pub fn start() -> Self {
        let bin = postgres_bin();
        let pg = Self { port: free_port(), dir: scratch_dir("postgres"), bin };
        let data = pg.dir.join("data");
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&pg.dir).status().expect("chown");
            assert!(status.success(), "chown of the PostgreSQL scratch directory failed");
        }
        let data_arg = data.to_string_lossy().to_string();
        pg.run("initdb", &["-D", &data_arg, "-A", "trust", "-U", "postgres", "--no-sync"]);
        pg.restart();
        pg
    }

    /// A URL of database `postgres` on it.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops it the way a crash does (`pg_ctl stop -m immediate`: no checkpoint, every
    /// backend killed; the next start recovers from the WAL).
    pub fn crash(&self) {
        let data = self.dir.join("data").to_string_lossy().to_string();
        self.run("pg_ctl", &["-D", &data, "stop", "-m", "immediate"]);
    }

    /// Starts it (again).
    pub fn restart(&self) {
        let data = self.dir.join("data").to_string_lossy().to_string();
        let log = self.dir.join("postgres.log").to_string_lossy().to_string();
        let mut options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        if self.bin.parent().is_some_and(|dir| dir.join("lib/timescaledb.so").exists()) {
            options.push_str(" -c shared_preload_libraries=timescaledb");
        }
        self.run("pg_ctl", &["-D", &data, "-o", &options, "-l", &log, "-w", "start"]);
        wait_listening(self.port, "PostgreSQL");
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join("bin").join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let output = command.args(args).stdin(Stdio::null()).output().expect("run a PostgreSQL program");
        assert!(output.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").to_string_lossy().to_string();
        let path = self.bin.join("bin/pg_ctl");
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = command.args(["-D", &data, "stop", "-m", "immediate"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The newest PostgreSQL installation, e.g. `/usr/lib/postgresql/15`.
fn postgres_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("PostgreSQL installed under /usr/lib/postgresql")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("bin/initdb").exists())
        .collect();
    versions.sort_by_key(|p| p.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok()).unwrap_or(0));
    versions.pop().expect("a PostgreSQL with initdb")
}
