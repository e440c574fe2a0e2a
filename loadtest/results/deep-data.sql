-- The data set of deep.md, loaded straight into the tables (tansu could not take
-- feedgen's million events that day): 10,000 users named as feedgen names them (keys
-- "key-user<n>") and 1,000,000 activities over four weeks ending 2026-11-01.
-- psql -d feed_deep -f loadtest/results/deep-data.sql, with the services' migrations run.
INSERT INTO users (id, name, key_hash, created_at, updated_at)
SELECT nextval('user_ids'), 'user' || g, encode(sha256(('key-user' || g)::bytea), 'hex'), now(), now()
FROM generate_series(0, 9999) g
ON CONFLICT DO NOTHING;
SELECT feed_ensure_partition('activities', timestamptz '2026-10-04' + (w || ' weeks')::interval) FROM generate_series(0, 4) w;
INSERT INTO activities (time, event_id, actor_id, actor_name, verb, object_type, object_id, target_id, target_name, payload)
SELECT t, gen_random_uuid(), u.id, u.name, v, 'post', g, NULL, NULL, '{}'::jsonb
FROM (
    SELECT g, timestamptz '2026-10-04' + random() * interval '28 days' AS t,
           'user' || floor(random() * 10000)::int AS name,
           (ARRAY['post','post','post','like','share'])[1 + floor(random() * 5)::int] AS v
    FROM generate_series(1, 1000000) g
) r JOIN users u ON u.name = r.name;
ANALYZE activities;
