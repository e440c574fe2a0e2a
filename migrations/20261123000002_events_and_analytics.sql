-- Generic events (the activity-service reference) and analytics hits (the
-- narrative-analytics reference), each a time-partitioned table fed by its own topic.

DO $$
BEGIN
    -- Trigram indexes serve the `message` substring filter; the extension ships with
    -- PostgreSQL's contrib (and the TimescaleDB image). Without it the filter still
    -- works, combined with the other filters' indexes.
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    END IF;
END;
$$;

-- `time` is the event's created_at.
SELECT feed_create_time_table('generic_events', $cols$
    time        TIMESTAMPTZ NOT NULL,
    id          UUID        NOT NULL,
    component   TEXT        NOT NULL,
    data        JSONB       NOT NULL,
    email       TEXT        NOT NULL,
    environment TEXT        NOT NULL,
    message     TEXT        NOT NULL,
    UNIQUE (id, time)
$cols$, INTERVAL '7 days');

-- GET /events pages newest first on (time, id); each exact filter has an index that
-- yields rows already in that order, so a filtered page reads only its rows.
CREATE INDEX generic_events_by_time        ON generic_events (time DESC, id DESC);
CREATE INDEX generic_events_by_email       ON generic_events (email, time DESC, id DESC);
CREATE INDEX generic_events_by_environment ON generic_events (environment, time DESC, id DESC);
CREATE INDEX generic_events_by_component   ON generic_events (component, time DESC, id DESC);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX generic_events_message_trgm ON generic_events USING gin (message gin_trgm_ops);
    END IF;
END;
$$;

-- Raw hits, chunked by day: reads of an hour's counts never scan hits (they read
-- analytics_hourly), so chunks only matter for retention and compression, where a day
-- keeps the chunk count 24 times lower than the reference's hourly chunks.
SELECT feed_create_time_table('analytics_hits', $cols$
    time     TIMESTAMPTZ NOT NULL,
    event_id UUID        NOT NULL,
    user_id  TEXT        NOT NULL,
    event    TEXT        NOT NULL CHECK (event IN ('click', 'impression')),
    UNIQUE (event_id, time)
$cols$, INTERVAL '1 day');

-- The hourly rollup, maintained by the writer in the same transaction as the raw hits
-- and only for hits that were new (so exact under re-delivery, and for late hits of any
-- past hour). A GET of any hour is one primary-key lookup.
CREATE TABLE analytics_hourly (
    hour         TIMESTAMPTZ PRIMARY KEY,
    unique_users BIGINT      NOT NULL DEFAULT 0,
    clicks       BIGINT      NOT NULL DEFAULT 0,
    impressions  BIGINT      NOT NULL DEFAULT 0
);

-- Which users were seen in which hour: makes unique_users exact and idempotent.
CREATE TABLE analytics_hourly_users (
    hour    TIMESTAMPTZ NOT NULL,
    user_id TEXT        NOT NULL,
    PRIMARY KEY (hour, user_id)
);
