//! Names of every Redis key the product uses, in one place: what each holds and who
//! writes it.

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

    /// The prefix of all friends-feed keys; the user id follows it.
    pub fn friends_prefix(&self) -> String {
        format!("{}feed:friends:", self.prefix)
    }

    /// Sorted set: the friends feed of `user_id`, newest = highest score.
    pub fn friends(&self, user_id: i64) -> String {
        format!("{}{}", self.friends_prefix(), user_id)
    }

    /// The prefix of all followers-set keys; the user id follows it.
    pub fn followers_prefix(&self) -> String {
        format!("{}followers:", self.prefix)
    }

    /// Set: ids of the users following `user_id`.
    pub fn followers(&self, user_id: i64) -> String {
        format!("{}{}", self.followers_prefix(), user_id)
    }

    /// The prefix of all authored-set keys; the user id follows it.
    pub fn authored_prefix(&self) -> String {
        format!("{}authored:", self.prefix)
    }

    /// Sorted set: the recent fanned-out entries by `user_id`, copied to a new follower.
    pub fn authored(&self, user_id: i64) -> String {
        format!("{}{}", self.authored_prefix(), user_id)
    }

    /// The prefix of all follow-version keys; the followee's id follows it.
    pub fn follow_versions_prefix(&self) -> String {
        format!("{}follow-versions:", self.prefix)
    }

    /// Hash follower id → [`crate::feed::follow_version`] of the newest follow or unfollow of
    /// `user_id` applied, so an older one applied later changes nothing.
    pub fn follow_versions(&self, user_id: i64) -> String {
        format!("{}{}", self.follow_versions_prefix(), user_id)
    }

    /// The prefix of the object-entries sets; the object (`post:21`) follows it.
    pub fn object_entries_prefix(&self) -> String {
        format!("{}object-entries:", self.prefix)
    }

    /// Set: the members (post, likes, shares) referring to `object` that are still in
    /// some authored set, so a delete can take them out of every feed.
    pub fn object_entries(&self, object: &str) -> String {
        format!("{}{}", self.object_entries_prefix(), object)
    }

    /// Set: deleted objects (`post:21`); entries referring to them are not added.
    pub fn deleted_objects(&self) -> String {
        format!("{}deleted-objects", self.prefix)
    }

    /// String: the generation of the feeds in this Redis, written by the rebuild that
    /// made them. Absent means Redis lost them (restart without persistence, FLUSHALL,
    /// failover to an empty replica) and they must be rebuilt; `rebuilding:<id>` means a
    /// rebuild is under way.
    pub fn generation(&self) -> String {
        format!("{}fanout:generation", self.prefix)
    }

    /// String: the lease of the one process rebuilding the feeds.
    pub fn rebuild_lock(&self) -> String {
        format!("{}fanout:rebuild-lock", self.prefix)
    }

    /// Hash partition → next offset to apply, for one named consumer on one topic.
    pub fn progress(&self, group: &str, topic: &str) -> String {
        format!("{}progress:{}:{}", self.prefix, group, topic)
    }
}
