-- The feed's stores. `activities` is the time-partitioned log of everything users did:
-- a TimescaleDB hypertable where the extension is available, a natively range-partitioned
-- table where it is not. The other tables are projections the API reads.

CREATE SEQUENCE user_ids;
-- Object ids are allocated by the API, in order per type, starting at 1 (as the reference).
CREATE SEQUENCE post_ids;
CREATE SEQUENCE photo_ids;

CREATE TABLE users (
    id          BIGINT      PRIMARY KEY,
    name        TEXT        NOT NULL UNIQUE,
    -- SHA-256 of the app key, hex. Keys themselves are never stored.
    key_hash    TEXT        NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE objects (
    kind        TEXT        NOT NULL CHECK (kind IN ('post', 'photo')),
    id          BIGINT      NOT NULL,
    owner_id    BIGINT      NOT NULL,
    content     TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE follows (
    follower_id BIGINT      NOT NULL,
    followee_id BIGINT      NOT NULL,
    since       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_by_followee ON follows (followee_id);

-- Whether the time-partitioned tables are to be TimescaleDB hypertables: only when the
-- extension can actually be created, that is installed *and* preloaded (without
-- shared_preload_libraries, CREATE EXTENSION timescaledb ends the session with a FATAL
-- error, so it cannot simply be tried). The preloaded loader defines the
-- `timescaledb.disable_load` setting, which any role can read. A database can also ask
-- for native partitioning (`ALTER DATABASE ... SET feed.storage = 'native'`, as the
-- fallback's tests do).
CREATE FUNCTION feed_uses_timescaledb() RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RETURN TRUE;
    END IF;
    IF coalesce(current_setting('feed.storage', true), '') = 'native' THEN
        RETURN FALSE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        RAISE NOTICE 'timescaledb is not installed; using native partitioning';
        RETURN FALSE;
    END IF;
    IF current_setting('timescaledb.disable_load', true) IS NULL THEN
        RAISE WARNING 'timescaledb is installed but not in shared_preload_libraries; using native partitioning';
        RETURN FALSE;
    END IF;
    CREATE EXTENSION timescaledb;
    RETURN TRUE;
END;
$$;

-- Creates a time-partitioned table from a column list: a hypertable when TimescaleDB can
-- be used (above), otherwise native range partitioning with a DEFAULT partition as a
-- safety net and weekly partitions made by feed_ensure_partition().
CREATE FUNCTION feed_create_time_table(tbl TEXT, columns TEXT, chunk INTERVAL)
RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    IF feed_uses_timescaledb() THEN
        EXECUTE format('CREATE TABLE %I (%s)', tbl, columns);
        PERFORM create_hypertable(tbl::regclass, 'time', chunk_time_interval => chunk);
    ELSE
        EXECUTE format('CREATE TABLE %I (%s) PARTITION BY RANGE (time)', tbl, columns);
        EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', tbl || '_default', tbl);
    END IF;
END;
$$;

-- Makes sure the native partition holding `ts` exists (weekly, UTC). A no-op on a
-- hypertable, which makes its chunks itself. Never fails the caller: if the partition
-- cannot be made (a concurrent writer made it, or rows already sit in the default
-- partition for that range) the rows simply go where PostgreSQL routes them.
CREATE FUNCTION feed_ensure_partition(parent REGCLASS, ts TIMESTAMPTZ)
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    start_ts TIMESTAMPTZ := date_trunc('week', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    part TEXT := parent::TEXT || '_' || to_char(start_ts AT TIME ZONE 'UTC', 'IYYY"w"IW');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = parent)
       OR to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                   part, parent, start_ts, start_ts + INTERVAL '7 days');
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'partition % not created: %', part, SQLERRM;
END;
$$;

SELECT feed_create_time_table('activities', $cols$
    time        TIMESTAMPTZ NOT NULL,
    event_id    UUID        NOT NULL,
    actor_id    BIGINT      NOT NULL,
    actor_name  TEXT        NOT NULL,
    verb        TEXT        NOT NULL,
    object_type TEXT,
    object_id   BIGINT,
    target_id   BIGINT,
    target_name TEXT,
    payload     JSONB       NOT NULL DEFAULT '{}',
    -- Deduplicates redelivered events; includes the partitioning column as both
    -- TimescaleDB and native partitioning require.
    UNIQUE (event_id, time)
$cols$, INTERVAL '7 days');

-- /feed/my: one actor's activities, newest first, keyset-paginated on (time, event_id).
CREATE INDEX activities_by_actor ON activities (actor_id, time DESC, event_id DESC);
