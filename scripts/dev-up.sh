#!/usr/bin/env bash
# Starts everything and runs the three services locally, with the demo users:
# PostgreSQL, Redis and a tansu broker (started if not running), the feed topic, then
# writer, fan-out and API (http://127.0.0.1:5000). Ctrl-C stops the services.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/infra.sh

ensure_all
start_tansu "${KAFKA_PORT:-9092}" "$PWD/.run/tansu"

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/feed}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT:-9092}}
export FEED_TOPIC=${FEED_TOPIC:-feed-events}
export DEMO_USERS=${DEMO_USERS:-true}

psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'feed'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE feed'
for topic in "$FEED_TOPIC" "${EVENTS_TOPIC:-events}" "${ANALYTICS_TOPIC:-analytics-hits}"; do
    create_topic "${KAFKA_PORT:-9092}" "$topic" "${PARTITIONS:-3}"
done

cargo build --release --bins
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
./target/release/writer & pids+=($!)
./target/release/fanout & pids+=($!)
./target/release/api & pids+=($!)
wait -n "${pids[@]}"
