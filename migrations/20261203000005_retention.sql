-- Retention: old data leaves by whole chunks (drop_chunks) or whole native partitions,
-- never row by row. For that the (hour, user) set behind unique_users becomes
-- time-partitioned like the raw hits it is derived from (same one-day chunks).

ALTER TABLE analytics_hourly_users RENAME TO analytics_hourly_users_unpartitioned;
SELECT feed_create_time_table('analytics_hourly_users', $cols$
    time    TIMESTAMPTZ NOT NULL,
    user_id TEXT        NOT NULL,
    UNIQUE (time, user_id)
$cols$, INTERVAL '1 day');
-- Existing rows: native partitions for their weeks first, so none lands in the default.
SELECT feed_ensure_partition('analytics_hourly_users', w)
FROM (SELECT DISTINCT date_trunc('week', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS w
      FROM analytics_hourly_users_unpartitioned) weeks;
INSERT INTO analytics_hourly_users (time, user_id) SELECT hour, user_id FROM analytics_hourly_users_unpartitioned;
DROP TABLE analytics_hourly_users_unpartitioned;

-- How the time-partitioned tables are stored: 'timescaledb' (hypertables) or 'native'.
CREATE FUNCTION feed_storage() RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'activities'::regclass)
                THEN 'native' ELSE 'timescaledb' END
$$;

-- Drops the chunks (hypertable) or partitions (native) of `tbl` that hold only rows older
-- than `older_than`; returns how many. The native DEFAULT partition is never dropped.
CREATE FUNCTION feed_drop_older_than(tbl REGCLASS, older_than TIMESTAMPTZ)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    dropped INTEGER := 0;
    part RECORD;
BEGIN
    IF feed_storage() = 'timescaledb' THEN
        SELECT count(*) INTO dropped FROM drop_chunks(tbl, older_than => older_than);
        RETURN dropped;
    END IF;
    FOR part IN
        SELECT c.oid::regclass AS name,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamptz AS upper_bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = tbl AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
    LOOP
        IF part.upper_bound <= older_than THEN
            EXECUTE format('DROP TABLE %s', part.name);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END;
$$;
