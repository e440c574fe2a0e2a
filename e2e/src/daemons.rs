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

/// What a test does to a backing service to cause an outage.
pub trait Crash {
    /// Stops it abruptly, as a crash or power loss would.
    fn crash(&mut self);
    /// Starts it again on the same port (and data, where it keeps any).
    fn restart(&mut self);
}

/// A child process serving on `port` from `dir`, killed and its directory removed on drop.
struct Daemon {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn new(kind: &str) -> Self {
        Self { port: free_port(), dir: scratch_dir(kind), child: None }
    }

    /// Runs `command` in the daemon's directory, output to `<dir>/<name>.log`, and waits
    /// until it listens.
    fn spawn(&mut self, name: &str, mut command: Command) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{name}.log"))).expect("daemon log");
        let child = command
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("daemon log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} (is it installed? scripts/test.sh installs it): {e}"));
        self.child = Some(child);
        wait_listening(self.port, name);
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tansu broker storing into its own SQLite file; optionally reached only through a
/// TLS terminator (`socat`) in front of it, as a managed Kafka's TLS listener is.
pub struct Broker(Daemon, Option<Daemon>);

impl Broker {
    /// Starts a broker and waits until it answers metadata requests.
    pub fn start() -> Self {
        let mut broker = Self(Daemon::new("broker"), None);
        broker.restart();
        broker
    }

    /// Starts a broker whose advertised listener is a TLS port (`socat` with
    /// `certificates`' server certificate) forwarding to its plaintext one, and waits
    /// until it answers metadata requests through TLS.
    pub fn start_behind_tls(certificates: &crate::tls::Certificates) -> Self {
        let mut terminator = Daemon::new("tls-terminator");
        let listen = format!(
            "OPENSSL-LISTEN:{},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            terminator.port,
            certificates.cert().display(),
            certificates.key().display()
        );
        let mut broker = Self(Daemon::new("broker"), None);
        let mut command = Command::new("socat");
        command.args([listen, format!("TCP:127.0.0.1:{}", broker.0.port)]);
        terminator.spawn("socat", command);
        broker.1 = Some(terminator);
        broker.restart_with(&[("security.protocol", "ssl".into()), ("ssl.ca.location", certificates.ca().display().to_string())]);
        broker
    }

    /// `host:port`, for `KAFKA_BROKERS`: the TLS port where there is one.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.1.as_ref().unwrap_or(&self.0).port)
    }

    fn restart_with(&mut self, security: &[(&str, String)]) {
        let listener = format!("tcp://127.0.0.1:{}", self.0.port);
        let advertised = format!("tcp://{}", self.address());
        let mut command = Command::new("tansu");
        command.args([
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &advertised,
            "--storage-engine",
            "sqlite://tansu.db",
        ]);
        self.0.spawn("tansu", command);
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", self.address());
        for (key, value) in security {
            config.set(*key, value);
        }
        let client: rdkafka::consumer::BaseConsumer = config.create().expect("metadata client");
        let deadline = Instant::now() + Duration::from_secs(30);
        while rdkafka::consumer::Consumer::fetch_metadata(&client, None, Duration::from_secs(2)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not answer on {}", self.address());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Crash for Broker {
    /// SIGKILL: the broker dies mid-whatever, its data stays.
    fn crash(&mut self) {
        self.0.kill();
    }

    /// Starts it again (plaintext; a broker behind TLS is not restarted by tests).
    fn restart(&mut self) {
        self.restart_with(&[]);
    }
}

/// A Redis that keeps nothing on disk, like the machine's.
pub struct Redis(Daemon, Option<TlsFiles>);

/// A TLS server's certificate, key and CA, as PEM files.
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Redis {
    /// Starts a Redis and waits until it listens.
    pub fn start() -> Self {
        let mut redis = Self(Daemon::new("redis"), None);
        redis.restart();
        redis
    }

    /// Starts a Redis that accepts only TLS connections, with `certificates`' server
    /// certificate.
    pub fn start_tls(certificates: &crate::tls::Certificates) -> Self {
        let files = TlsFiles { cert: certificates.cert(), key: certificates.key(), ca: certificates.ca() };
        let mut redis = Self(Daemon::new("redis"), Some(files));
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://` for a TLS one.
    pub fn url(&self) -> String {
        let scheme = if self.1.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.0.port)
    }
}

impl Crash for Redis {
    /// SIGKILL: everything it held is gone.
    fn crash(&mut self) {
        self.0.kill();
    }

    /// Starts it again, empty.
    fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        let port = self.0.port.to_string();
        match &self.1 {
            None => command.args(["--port", &port]),
            Some(tls) => command.args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"]).args([
                std::ffi::OsStr::new("--tls-cert-file"),
                tls.cert.as_os_str(),
                std::ffi::OsStr::new("--tls-key-file"),
                tls.key.as_os_str(),
                std::ffi::OsStr::new("--tls-ca-cert-file"),
                tls.ca.as_os_str(),
            ]),
        };
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        self.0.spawn("redis-server", command);
    }
}

/// A PostgreSQL cluster of its own (trust auth, user `postgres`). Run as root, its
/// programs run as the `postgres` user, as PostgreSQL requires.
pub struct Postgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    preload_timescaledb: bool,
    tls: bool,
}

impl Postgres {
    /// Creates and starts a cluster, with TimescaleDB preloaded where it is installed.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// Creates and starts a cluster that does not preload TimescaleDB even where it is
    /// installed (so `CREATE EXTENSION timescaledb` fails there).
    pub fn start_without_timescaledb() -> Self {
        Self::start_with(false)
    }

    /// Creates and starts a cluster that accepts only TLS connections over TCP, with
    /// `certificates`' server certificate.
    pub fn start_tls(certificates: &crate::tls::Certificates) -> Self {
        let mut pg = Self::create(true, true);
        let data = PathBuf::from(pg.data());
        certificates.install_server_files(&data);
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        pg.chown();
        pg.restart();
        pg
    }

    fn start_with(preload_timescaledb: bool) -> Self {
        let mut pg = Self::create(preload_timescaledb, false);
        pg.restart();
        pg
    }

    /// A new cluster, not started.
    fn create(preload_timescaledb: bool, tls: bool) -> Self {
        let pg = Self { port: free_port(), dir: scratch_dir("postgres"), bin: postgres_bin(), preload_timescaledb, tls };
        pg.chown();
        let data = pg.data();
        pg.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]);
        pg
    }

    /// Gives the cluster's files to the `postgres` user its programs run as.
    fn chown(&self) {
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&self.dir).status().expect("chown");
            assert!(status.success(), "chown of the PostgreSQL scratch directory failed");
        }
    }

    /// A URL of database `postgres` on it.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().to_string()
    }

    /// Runs one of PostgreSQL's programs, as the `postgres` user when this is root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join("bin").join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(program).args(args).stdin(Stdio::null()).output().expect("run a PostgreSQL program");
        assert!(output.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Crash for Postgres {
    /// Stops it the way a crash does (`pg_ctl stop -m immediate`: no checkpoint, every
    /// backend killed; the next start recovers from the WAL).
    fn crash(&mut self) {
        self.run("pg_ctl", &["-D", &self.data(), "stop", "-m", "immediate"]);
    }

    fn restart(&mut self) {
        let log = self.dir.join("postgres.log").to_string_lossy().to_string();
        let mut options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        if self.preload_timescaledb && self.bin.join("lib/timescaledb.so").exists() {
            options.push_str(" -c shared_preload_libraries=timescaledb");
        }
        if self.tls {
            options.push_str(" -c ssl=on -c ssl_cert_file=server.pem -c ssl_key_file=server.key");
        }
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
        wait_listening(self.port, "PostgreSQL");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl").args(["-D", &self.data(), "stop", "-m", "immediate"]).output();
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
