//! Redis: one cheaply cloned handle, [`Redis`], over a single server (or a primary with
//! replicas) or a Redis Cluster, used by every service for every command.
//!
//! Both kinds multiplex: concurrent commands from clones of one handle share a
//! connection per node and are pipelined on the wire. On a cluster every script and
//! pipeline must stay within one hash slot; the key names ([`crate::keys`]) carry hash
//! tags so that everything about one user, one object or the pipeline's own bookkeeping
//! shares one.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::Duration;

/// How long one command may take before it counts as failed. Every command the product
/// sends is bounded work (a few milliseconds at most), so this only catches a server
/// that stopped answering.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to Redis that reconnects by itself.
#[derive(Clone)]
pub enum Redis {
    /// One server (`REDIS_CLUSTER=false`).
    Single(ConnectionManager),
    /// A Redis Cluster (`REDIS_CLUSTER=true`), routed by hash slot.
    Cluster(ClusterConnection),
}

/// The root certificates to trust for `rediss://` URLs: the PEM file `ca_file` (a
/// private CA, `REDIS_CA_FILE`), or the system's when `None`.
fn trusted(ca_file: Option<&str>) -> anyhow::Result<Option<redis::TlsCertificates>> {
    let Some(path) = ca_file else { return Ok(None) };
    let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read REDIS_CA_FILE={path:?}: {e}"))?;
    Ok(Some(redis::TlsCertificates { client_tls: None, root_cert: Some(pem) }))
}

/// A client of one node: `url` (`redis://` or, with TLS, `rediss://`).
fn node_client(url: &str, ca_file: Option<&str>) -> anyhow::Result<redis::Client> {
    Ok(match trusted(ca_file)? {
        Some(certificates) => redis::Client::build_with_tls(url, certificates)?,
        None => redis::Client::open(url)?,
    })
}

impl Redis {
    /// Connects to `url`, or with `cluster` to the cluster whose seed nodes `url` lists
    /// (comma-separated); `rediss://` URLs use TLS, trusting `ca_file` if given.
    pub async fn connect(url: &str, cluster: bool, ca_file: Option<&str>) -> anyhow::Result<Self> {
        if cluster {
            let nodes: Vec<&str> = url.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
            let mut builder =
                redis::cluster::ClusterClientBuilder::new(nodes).connection_timeout(CONNECTION_TIMEOUT).response_timeout(RESPONSE_TIMEOUT);
            if let Some(certificates) = trusted(ca_file)? {
                builder = builder.certs(certificates);
            }
            Ok(Self::Cluster(builder.build()?.get_async_connection().await?))
        } else {
            let client = node_client(url, ca_file)?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_connection_timeout(Some(CONNECTION_TIMEOUT));
            Ok(Self::Single(ConnectionManager::new_with_config(client, config).await?))
        }
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

/// The node a subscriber connects to for pub/sub: `url` itself, or the first seed node
/// of a cluster (a cluster delivers every `PUBLISH` to subscribers on any node).
pub fn subscriber_client(url: &str, ca_file: Option<&str>) -> anyhow::Result<redis::Client> {
    let first = url.split(',').map(str::trim).find(|n| !n.is_empty()).unwrap_or(url);
    node_client(first, ca_file)
}

/// Whether a command failed because its connection was lost (a restarted server, say):
/// the single-server connection reconnects, and the command is sent once more on the new
/// connection. Every command the product sends is idempotent, so a second send that
/// follows a first one that did arrive changes nothing. (The cluster connection retries
/// by itself.)
fn lost_connection(error: &redis::RedisError) -> bool {
    error.is_connection_dropped() || error.is_io_error() || error.is_connection_refusal()
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => Box::pin(async move {
                match conn.req_packed_command(cmd).await {
                    Err(error) if lost_connection(&error) => conn.req_packed_command(cmd).await,
                    answer => answer,
                }
            }),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, cmd: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => Box::pin(async move {
                match conn.req_packed_commands(cmd, offset, count).await {
                    Err(error) if lost_connection(&error) => conn.req_packed_commands(cmd, offset, count).await,
                    answer => answer,
                }
            }),
            Self::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Whether an error says Redis cannot be reached or cannot work right now (connection
/// refused, dropped or timed out; loading its data, failing over, read-only replica, a
/// cluster that is down or moving slots): worth waiting out, unlike an error about the
/// command or its keys.
pub fn is_unavailable(error: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_cluster_error()
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        )
}
