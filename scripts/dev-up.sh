#!/usr/bin/env bash
# Starts everything and runs the three services locally, with the demo users:
# PostgreSQL, Redis and a tansu broker (started if not running), then writer, fan-out
# and API (http://127.0.0.1:5000). The services create their topics themselves
# (TOPIC_PARTITIONS, default 3). Ctrl-C stops the services; the broker keeps running.
#
# Overridable for running a second stack beside the first (scripts/smoke.sh does):
# KAFKA_PORT, RUN_DIR (broker data), DATABASE_URL (the database is created if missing),
# LISTEN_ADDR, WRITER_METRICS_ADDR, FANOUT_METRICS_ADDR, BUILD_PROFILE (release | dev).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/infra.sh

ensure_all
run_dir=${RUN_DIR:-$PWD/.run}
start_tansu "${KAFKA_PORT:-9092}" "$run_dir/tansu"

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/feed}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT:-9092}}
export DEMO_USERS=${DEMO_USERS:-true}

database=${DATABASE_URL##*/}
database=${database%%\?*}
psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$database\""

profile=${BUILD_PROFILE:-release}
cargo build --profile "$profile" --bins
bin=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
METRICS_ADDR=${WRITER_METRICS_ADDR:-127.0.0.1:9101} "$bin/writer" & pids+=($!)
METRICS_ADDR=${FANOUT_METRICS_ADDR:-127.0.0.1:9102} "$bin/fanout" & pids+=($!)
"$bin/api" & pids+=($!)
wait -n "${pids[@]}"
