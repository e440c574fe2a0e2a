-- The writer owns its offsets: per consumer (the writer's group name), topic and
-- partition, the next offset it has not applied. Updated in the same transaction as the
-- rows the records produce, so a crash can neither lose nor repeat a record, and a
-- restarted writer resumes here without asking the broker.
CREATE TABLE consumer_offsets (
    consumer    TEXT        NOT NULL,
    topic       TEXT        NOT NULL,
    partition   INT         NOT NULL,
    next_offset BIGINT      NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);

-- The newest follow or unfollow applied per pair, ordered by (time, event_id): an older
-- event applied after a newer one (a replay, a rewind after a rebuild) changes nothing.
-- `follows` holds the pairs whose newest event is a follow.
CREATE TABLE follow_versions (
    follower_id BIGINT      NOT NULL,
    followee_id BIGINT      NOT NULL,
    following   BOOLEAN     NOT NULL,
    time        TIMESTAMPTZ NOT NULL,
    event_id    UUID        NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follow_versions_by_followee ON follow_versions (followee_id);

-- Existing follows become versions older than any real event on their pair.
INSERT INTO follow_versions (follower_id, followee_id, following, time, event_id)
SELECT follower_id, followee_id, true, since, '00000000-0000-0000-0000-000000000000' FROM follows;
