//! Pipeline progress: each named consumer (`WRITER_GROUP`, `FANOUT_GROUP`: names, not
//! Kafka consumer groups) records, per partition, the next offset it has not yet
//! applied, and announces every change on one pub/sub channel
//! ([`crate::keys::Keys::progress_channel`]). The API compares the offset its write was
//! acknowledged at with these marks to give a client read-your-writes without
//! bypassing the pipeline, and wakes on the announcements instead of polling.
//!
//! An announcement is `<progress key>|<partition>:<next>,<partition>:<next>,...` with
//! the values now stored (which a rebuild may have lowered: see the fan-out's rebuild).

use std::collections::HashMap;

/// Raises the marks of some partitions, never lowers them (a replaying consumer may
/// report an older offset), and announces what is stored. KEYS: the progress hash.
/// ARGV: channel, then partition/next pairs.
const RAISE: &str = r#"
local marks = {}
for i = 2, #ARGV, 2 do
    local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
    local new = tonumber(ARGV[i + 1])
    if new > current then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) else new = current end
    marks[#marks + 1] = ARGV[i] .. ':' .. new
end
redis.call('PUBLISH', ARGV[1], KEYS[1] .. '|' .. table.concat(marks, ','))
return 0
"#;

/// Records that every offset below `next_offset` of each partition has been applied,
/// and announces it on `channel`.
pub async fn mark_applied<C>(conn: &mut C, key: &str, channel: &str, marks: &[(i32, i64)]) -> redis::RedisResult<()>
where
    C: redis::aio::ConnectionLike + Send,
{
    if marks.is_empty() {
        return Ok(());
    }
    let script = redis::Script::new(RAISE);
    let mut invocation = script.prepare_invoke();
    invocation.key(key).arg(channel);
    for (partition, next_offset) in marks {
        invocation.arg(*partition).arg(*next_offset);
    }
    invocation.invoke_async(conn).await
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

/// The progress key and marks an announcement carries; `None` if it is not one.
pub fn parse_announcement(message: &str) -> Option<(&str, Marks)> {
    let (key, marks) = message.rsplit_once('|')?;
    let marks = marks
        .split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (partition, next) = pair.split_once(':')?;
            Some((partition.parse().ok()?, next.parse().ok()?))
        })
        .collect::<Option<Marks>>()?;
    Some((key, marks))
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

    #[test]
    fn announcements_carry_the_key_and_the_marks() {
        let (key, marks) = parse_announcement("test:x:{pipeline}progress:g:feed|0:5,2:17").unwrap();
        assert_eq!(key, "test:x:{pipeline}progress:g:feed");
        assert_eq!(marks, [(0, 5), (2, 17)].into_iter().collect());
        assert_eq!(parse_announcement("k|").map(|(_, m)| m.len()), Some(0));
        assert!(parse_announcement("k|0:x").is_none());
        assert!(parse_announcement("nothing").is_none());
    }
}
