-- Each followee's activities other than follows (posts, likes, shares, free verbs),
-- newest first:
-- the friends feed past what Redis keeps (`GET /feed/friends` continues from here) and
-- the fan-out's rebuild of the Redis feeds.
CREATE INDEX activities_fanned_out_by_actor ON activities (actor_id, time DESC, event_id DESC)
    WHERE verb NOT IN ('follow', 'unfollow');
