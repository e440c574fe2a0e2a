//! Pipeline progress: each named consumer (`WRITER_GROUP`, `FANOUT_GROUP`: names, not
//! Kafka consumer groups) records, per partition, the next offset it has
//! not yet applied. The API compares the offset its write was acknowledged at with these
//! marks to give a client read-your-writes without bypassing the pipeline.

use std::collections::HashMap;

/// Raises the mark for one partition, never lowers it (a rebalanced or replaying
/// consumer may report an older offset).
const RAISE: &str = r#"
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local new = tonumber(ARGV[2])
if new > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
"#;

/// Records that every offset below `next_offset` of each partition has been applied.
pub async fn mark_applied<C>(conn: &mut C, key: &str, marks: &[(i32, i64)]) -> redis::RedisResult<()>
where
    C: redis::aio::ConnectionLike + Send,
{
    if marks.is_empty() {
        return Ok(());
    }
    let script = redis::Script::new(RAISE);
    let mut pipe = redis::pipe();
    pipe.load_script(&script).ignore(); // Redis may have restarted since the last call
    for (partition, next_offset) in marks {
        pipe.invoke_script(script.key(key).arg(*partition).arg(*next_offset)).ignore();
    }
    pipe.query_async::<()>(conn).await
}

/// The marks of one consumer: partition → next offset to apply.
pub type Marks = HashMap<i32, i64>;

/// Reads the marks stored under `key`.
pub async fn read<C>(conn: &mut C, key: &str) -> redis::RedisResult<Marks>
where
    C: redis::aio::ConnectionLike + Send,
{
    redis::cmd("HGETALL").arg(key).query_async(conn).await
}

/// Whether `marks` show the record at (`partition`, `offset`) as applied.
pub fn covers(marks: &Marks, partition: i32, offset: i64) -> bool {
    marks.get(&partition).is_some_and(|next| *next > offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_only_offsets_below_the_mark() {
        let marks: Marks = [(0, 5), (2, 1)].into_iter().collect();
        assert!(covers(&marks, 0, 4));
        assert!(!covers(&marks, 0, 5));
        assert!(covers(&marks, 2, 0));
        assert!(!covers(&marks, 1, 0));
    }
}
