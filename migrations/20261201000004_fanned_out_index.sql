-- Each followee's posts, likes and shares, newest first, without reading their follows:
-- the friends feed past what Redis keeps (`GET /feed/friends` continues from here) and
-- the fan-out's rebuild of the Redis feeds.
CREATE INDEX activities_fanned_out_by_actor ON activities (actor_id, time DESC, event_id DESC)
    WHERE verb IN ('post', 'like', 'share');
