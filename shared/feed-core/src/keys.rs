//! Names of every Redis key the product uses, in one place: what each holds and who
//! writes it.
//!
//! Every name carries a hash tag (the part in braces), so on a Redis Cluster the keys
//! one script or pipeline touches share a slot:
//! - `{u<id>}`: everything about one user, as a reader (`feed`, `following`,
//!   `hot-following`, `reader`) and as an author (`authored`, `bodies`, `followers`,
//!   `follower-versions`, `author`);
//! - `{o<kind>:<id>}`: one content object (`object-entries`, `deleted`);
//! - `{pipeline}`: the pipeline's own bookkeeping (progress marks, the feeds'
//!   generation, the rebuild lease), which the fan-out updates together.
//!
//! The configurable prefix comes first and must not contain braces.

/// Names of the Redis keys, all under one configurable prefix.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (may be empty).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// `<prefix><kind>:{u<user>}`.
    fn user(&self, kind: &str, user: i64) -> String {
        format!("{}{kind}:{{u{user}}}", self.prefix)
    }

    /// What comes before and after the user id in the name of a user's `kind` key
    /// (`bodies`, `authored`, `author`, ...), for a script that names the keys of users it
    /// learns of as it runs (only on a single Redis: see `crate::friends`).
    pub fn user_key_parts(&self, kind: &str) -> (String, String) {
        (format!("{}{kind}:{{u", self.prefix), "}".to_string())
    }

    /// `<prefix><kind>:{o<object>}`.
    fn object(&self, kind: &str, object: &str) -> String {
        format!("{}{kind}:{{o{object}}}", self.prefix)
    }

    /// `<prefix>{pipeline}<name>`.
    fn pipeline(&self, name: &str) -> String {
        format!("{}{{pipeline}}{name}", self.prefix)
    }

    /// Sorted set: the friends feed of `user` as pushed by the fan-out, newest = highest
    /// score; members are [`crate::feed::EntryRef`]s, bodies are in their actors'
    /// [`Keys::bodies`].
    pub fn friends(&self, user: i64) -> String {
        self.user("feed", user)
    }

    /// Sorted set: `user`'s newest fanned-out entries (refs, as in feeds), copied to a
    /// new follower and merged into readers' feeds while `user` is a hot author.
    pub fn authored(&self, user: i64) -> String {
        self.user("authored", user)
    }

    /// Hash: event id (16 bytes) → entry JSON, for every entry in [`Keys::authored`]:
    /// each entry's body is stored once, whatever its number of readers.
    pub fn bodies(&self, user: i64) -> String {
        self.user("bodies", user)
    }

    /// Set: ids of the users following `user`, to whom its entries are pushed.
    pub fn followers(&self, user: i64) -> String {
        self.user("followers", user)
    }

    /// Hash: follower id → [`crate::feed::follow_version`] of the newest follow or
    /// unfollow reflected in [`Keys::followers`], so an older one applied later (a
    /// replay, a zombie consumer) changes nothing.
    pub fn follower_versions(&self, user: i64) -> String {
        self.user("follower-versions", user)
    }

    /// Hash: followee id → `<follow version>|1` (follows) or `|0` (unfollowed): the
    /// reader's own record of whom it follows, which every push into its feed checks.
    pub fn following(&self, user: i64) -> String {
        self.user("following", user)
    }

    /// Set: the hot authors `user` follows, whose entries are not pushed but merged in
    /// when the feed is read.
    pub fn hot_following(&self, user: i64) -> String {
        self.user("hot-following", user)
    }

    /// Hash about `user` as a reader: `active` (ms since the epoch of its last read or
    /// write), `trimmed` (the score of the newest entry trimmed from its feed: below
    /// it, the feed may lack entries), and `stale:<partition>` → offset (pushes skipped
    /// while it was inactive: the feed lacks entries of events below these offsets).
    pub fn reader(&self, user: i64) -> String {
        self.user("reader", user)
    }

    /// Hash about `user` as an author: `state` (`hot`, `becoming-hot`,
    /// `becoming-normal`; absent means normal) and `trimmed` (as in [`Keys::reader`],
    /// for [`Keys::authored`]).
    pub fn author(&self, user: i64) -> String {
        self.user("author", user)
    }

    /// Set: the refs (post, likes, shares) referring to `object` (`post:21`) that are in
    /// their actors' authored sets, so a delete can take them out of every feed.
    pub fn object_entries(&self, object: &str) -> String {
        self.object("object-entries", object)
    }

    /// String: present once `object` was deleted; entries referring to it are taken
    /// out again if they were added after.
    pub fn deleted(&self, object: &str) -> String {
        self.object("deleted", object)
    }

    /// String: the generation of the feeds in this Redis, written by the rebuild that
    /// made them. Absent means Redis lost them (restart without persistence, FLUSHALL,
    /// failover to an empty replica) and they must be rebuilt; `rebuilding:<id>` means a
    /// rebuild is under way.
    pub fn generation(&self) -> String {
        self.pipeline("generation")
    }

    /// String: the lease of the one process rebuilding the feeds.
    pub fn rebuild_lock(&self) -> String {
        self.pipeline("rebuild-lock")
    }

    /// Hash partition → next offset to apply, for one named consumer on one topic.
    pub fn progress(&self, group: &str, topic: &str) -> String {
        self.pipeline(&format!("progress:{group}:{topic}"))
    }

    /// Pub/sub channel: every consumer announces here what it applied (see
    /// [`crate::progress`]), so waiting writes wake without polling.
    pub fn progress_channel(&self) -> String {
        self.pipeline("progress")
    }

    /// Pub/sub channel: the API announces here that it published to a topic, so idle
    /// consumers fetch at once (see [`crate::consumer`]).
    pub fn published_channel(&self) -> String {
        self.pipeline("published")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot of a key, as Redis Cluster computes it (CRC16 of the hash tag).
    fn tag(key: &str) -> &str {
        let open = key.find('{').expect("every key has a hash tag");
        let close = key[open..].find('}').expect("closed") + open;
        &key[open + 1..close]
    }

    #[test]
    fn everything_about_one_user_shares_a_slot_and_users_do_not() {
        let keys = Keys::new("test:x:");
        let one = [keys.friends(7), keys.authored(7), keys.bodies(7), keys.followers(7), keys.following(7), keys.reader(7), keys.author(7)];
        assert!(one.iter().all(|k| tag(k) == "u7"), "{one:?}");
        assert_ne!(tag(&keys.friends(7)), tag(&keys.friends(70)));
        assert_eq!(tag(&keys.object_entries("post:21")), tag(&keys.deleted("post:21")));
        assert_eq!(tag(&keys.generation()), tag(&keys.progress("g", "t")));
        assert!(keys.friends(7).starts_with("test:x:"));
        let (before, after) = keys.user_key_parts("bodies");
        assert_eq!(format!("{before}7{after}"), keys.bodies(7));
    }
}
