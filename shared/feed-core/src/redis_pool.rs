//! Redis connections: a bb8 pool for request handlers ([`pool`]), and one
//! self-reconnecting multiplexed connection ([`multiplexed`]) for everything else (the
//! consumers' sinks, the API's read-your-writes waits, the tools).

/// The pool type request handlers borrow connections from.
pub type RedisPool = bb8::Pool<bb8_redis::RedisConnectionManager>;

/// Builds a pool of up to `size` connections.
pub async fn pool(url: &str, size: u32) -> anyhow::Result<RedisPool> {
    let manager = bb8_redis::RedisConnectionManager::new(url)?;
    let pool = bb8::Pool::builder().max_size(size).connection_timeout(std::time::Duration::from_secs(2)).build(manager).await?;
    Ok(pool)
}

/// A multiplexed connection that reconnects by itself; cheap to clone.
///
/// Its response timeout is generous: a consumer's batch is one pipeline whose fan-out
/// scripts may write hundreds of thousands of entries, and a timeout shorter than the
/// batch would fail the same batch forever.
pub async fn multiplexed(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(120)))
        .set_connection_timeout(Some(std::time::Duration::from_secs(5)));
    Ok(redis::aio::ConnectionManager::new_with_config(client, config).await?)
}

/// Whether an error says Redis cannot be reached or cannot work right now (connection
/// refused, dropped or timed out; loading its data, failing over, read-only replica):
/// worth waiting out, unlike an error about the command or its keys.
pub fn is_unavailable(error: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
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
