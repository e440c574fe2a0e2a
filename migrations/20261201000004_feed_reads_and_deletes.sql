-- Each followee's activities other than follows (posts, likes, shares, free verbs),
-- newest first:
-- the friends feed past what Redis keeps (`GET /feed/friends` continues from here) and
-- the fan-out's rebuild of the Redis feeds.
CREATE INDEX activities_fanned_out_by_actor ON activities (actor_id, time DESC, event_id DESC)
    WHERE verb NOT IN ('follow', 'unfollow');

-- Deleted posts and photos. A tombstone, not only a deletion: a like or share of the
-- object applied after its delete (it was on another partition) must not come back,
-- nor the object itself when the topic is replayed.
CREATE TABLE deleted_objects (
    kind        TEXT        NOT NULL,
    id          BIGINT      NOT NULL,
    deleted_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, id)
);

-- A delete removes the object's post, likes and shares from the hypertable.
CREATE INDEX activities_by_object ON activities (object_type, object_id) WHERE object_id IS NOT NULL;
