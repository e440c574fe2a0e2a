//! Throw-away TLS certificates for tests: a private CA and a server certificate for
//! `127.0.0.1` and `localhost` that it signed, made with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a server certificate signed by it, as PEM files in one directory.
pub struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    /// Makes a CA and a server certificate (valid one day) in a fresh directory.
    pub fn generate() -> Self {
        let dir = std::env::temp_dir().join(format!("feed-e2e-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("certificate directory");
        let run = |args: &[&str]| {
            let output = Command::new("openssl").args(args).current_dir(&dir).output().expect("openssl runs");
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=feed-test-ca",
            "-days",
            "1",
        ]);
        run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("extension file");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ]);
        Self { dir }
    }

    /// The CA's certificate, which clients trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server's certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server's private key.
    pub fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// Copies the server's certificate and key into `dir`, for a server that wants
    /// them beside its data (PostgreSQL checks their owner and mode).
    pub fn install_server_files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
        std::fs::copy(self.cert(), &cert).expect("copy certificate");
        std::fs::copy(self.key(), &key).expect("copy key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("key mode");
        (cert, key)
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
