//! Redis connections: a bb8 pool for request handlers, a self-reconnecting multiplexed
//! connection for everything else (the consumers' sinks, the API's progress poller,
//! feedctl).

use bb8_redis::RedisConnectionManager;

/// The pool type request handlers borrow connections from.
pub type RedisPool = bb8::Pool<RedisConnectionManager>;

/// Builds a pool of up to `size` connections.
pub async fn pool(url: &str, size: u32) -> anyhow::Result<RedisPool> {
    let manager = RedisConnectionManager::new(url)?;
    let pool = bb8::Pool::builder().max_size(size).connection_timeout(std::time::Duration::from_secs(2)).build(manager).await?;
    Ok(pool)
}

/// A multiplexed connection that reconnects by itself; cheap to clone.
///
/// Its response timeout is generous: a consumer's batch is one pipeline whose fan-out
/// scripts may write hundreds of thousands of entries, and a timeout shorter than the
/// batch would fail the same batch forever.
pub async fn manager(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(120)))
        .set_connection_timeout(Some(std::time::Duration::from_secs(5)));
    Ok(redis::aio::ConnectionManager::new_with_config(client, config).await?)
}
