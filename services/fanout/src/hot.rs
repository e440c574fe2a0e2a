//! Hot authors: an author with at least `HOT_AUTHOR_FOLLOWERS` followers is not pushed
//! to its followers; each reader merges its hot followees' authored sets into its feed
//! when it reads (`feed_core::friends`). One post then costs one write, not one per
//! follower, and a reader pays one extra read per hot author it follows.
//!
//! Crossing the line either way loses nothing and doubles nothing, because the merge
//! drops a ref it sees twice, and each transition makes the new way of reading complete
//! before it stops the old way of writing:
//! - becoming hot: the state moves to `becoming-hot` (pushes go on), every follower gets
//!   the author in its hot set (so its reads merge the authored set, and see pushed
//!   entries twice, once), then the state moves to `hot` and pushes stop. A follower
//!   added meanwhile is told the state by [`crate::scripts::FOLLOWERS_SYNC`] and adds
//!   the author to its hot set itself.
//! - becoming normal (below 80% of the line): the state moves to `becoming-normal`
//!   (pushes resume), then the authored set is read — it holds everything not pushed —
//!   and copied into every follower's feed, the last chunk taking the author out of the
//!   follower's hot set; then the state is cleared.
//!
//! A transition cut short by a crash stays in its `becoming-*` state, which every later
//! post or follow of the author reports, and whoever sees it finishes it (each step is
//! idempotent).

use crate::feeds::{feed_add_calls, feed_add_hot, for_followers, run_all};
use crate::scripts;
use feed_core::config::FeedSettings;
use feed_core::feed::Scored;
use feed_core::keys::Keys;
use feed_core::redis_client::Redis;
use std::collections::BTreeMap;

/// Moves the authors whose state and follower count (as a batch saw them) put them on
/// the wrong side of the line, and finishes transitions left half-way.
pub async fn move_across<'a>(
    redis: &Redis,
    keys: &Keys,
    settings: &FeedSettings,
    seen: impl Iterator<Item = (i64, &'a str, u64)>,
) -> anyhow::Result<()> {
    // The last sighting of each author counts.
    let authors: BTreeMap<i64, (&str, u64)> = seen.map(|(author, state, count)| (author, (state, count))).collect();
    for (author, (state, count)) in authors {
        match state {
            "" if count >= settings.hot_followers => become_hot(redis, keys, settings, author, "").await?,
            "becoming-hot" => become_hot(redis, keys, settings, author, "becoming-hot").await?,
            "hot" if count < settings.normal_below() => become_normal(redis, keys, settings, author, "hot").await?,
            "becoming-normal" => become_normal(redis, keys, settings, author, "becoming-normal").await?,
            _ => {}
        }
    }
    Ok(())
}

/// Moves `author` from `from` to `to`; false if it was not in `from` (another consumer
/// moved it).
async fn set_state(redis: &Redis, keys: &Keys, author: i64, from: &str, to: &str) -> anyhow::Result<bool> {
    let moved: i64 = scripts::AUTHOR_STATE.key(keys.author(author)).arg(from).arg(to).invoke_async(&mut redis.clone()).await?;
    Ok(moved == 1)
}

async fn become_hot(redis: &Redis, keys: &Keys, settings: &FeedSettings, author: i64, from: &str) -> anyhow::Result<()> {
    if from != "becoming-hot" && !set_state(redis, keys, author, from, "becoming-hot").await? {
        return Ok(());
    }
    tracing::info!(author, "author becoming hot: its entries will be merged at read time instead of pushed");
    for_followers(redis, keys, author, None, |page| async move {
        let calls = page.iter().map(|reader| feed_add_hot(keys, *reader, author, settings.max_len)).collect();
        run_all::<i64>(redis, calls).await?;
        Ok(())
    })
    .await?;
    set_state(redis, keys, author, "becoming-hot", "hot").await?;
    metrics::counter!("feed_fanout_hot_transitions_total", "to" => "hot").increment(1);
    Ok(())
}

async fn become_normal(redis: &Redis, keys: &Keys, settings: &FeedSettings, author: i64, from: &str) -> anyhow::Result<()> {
    if from != "becoming-normal" && !set_state(redis, keys, author, from, "becoming-normal").await? {
        return Ok(());
    }
    tracing::info!(author, "author no longer hot: its entries will be pushed again");
    // Read after the state moved: everything not pushed is in it.
    let entries: Scored =
        redis::cmd("ZRANGE").arg(keys.authored(author)).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut redis.clone()).await?;
    let trimmed: Option<String> = redis::cmd("HGET").arg(keys.author(author)).arg("trimmed").query_async(&mut redis.clone()).await?;
    let (entries, trimmed) = (&entries, trimmed.unwrap_or_default());
    let trimmed = &trimmed;
    for_followers(redis, keys, author, None, |page| async move {
        let calls =
            page.iter().flat_map(|reader| feed_add_calls(keys, *reader, author, entries, trimmed, settings.max_len, true)).collect();
        run_all::<i64>(redis, calls).await?;
        Ok(())
    })
    .await?;
    set_state(redis, keys, author, "becoming-normal", "").await?;
    metrics::counter!("feed_fanout_hot_transitions_total", "to" => "normal").increment(1);
    Ok(())
}
