#!/usr/bin/env bash
# Runs the whole test suite against real services: makes sure PostgreSQL and Redis run
# and tansu is installed, starts a throw-away tansu broker for the run, checks
# formatting, clippy (-D warnings) and the docs, then runs `cargo test` over the
# workspace, the feed tests again on a three-master Redis Cluster, and the smoke test of
# `scripts/dev-up.sh` (`scripts/smoke.py`). The suite runs on TimescaleDB hypertables
# where infra.sh could install it, and the storage-specific tests plus the main paths
# again on native partitions. Arguments, if any, replace `--workspace`
# (e.g. `-p e2e --test pipeline`) and skip the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/infra.sh

ensure_all
ensure_test_tools

port=${TEST_KAFKA_PORT:-19092}
dir=$(mktemp -d /tmp/feed-test-broker.XXXXXX)
cluster_dir=$(mktemp -d /tmp/feed-test-redis-cluster.XXXXXX)
trap 'stop_tansu "$dir"; stop_redis_cluster "$cluster_dir"; rm -rf "$dir" "$cluster_dir"' EXIT
start_tansu "$port" "$dir"

# Each test stack makes its own database; drop those of earlier runs.
for db in $(psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'feed_test_%'"); do
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
done
# ... and their Redis keys (every stack prefixes its keys with `test:<id>:`).
redis-cli -h 127.0.0.1 -p 6379 --scan --pattern 'test:*' | xargs -r -n 1000 redis-cli -h 127.0.0.1 -p 6379 DEL >/dev/null

export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
export REDIS_URL=redis://127.0.0.1:6379
export KAFKA_BROKERS=127.0.0.1:$port
export RUST_LOG=${RUST_LOG:-warn}
# Where infra.sh installed TimescaleDB, the suite must run on hypertables: the storage
# tests fail if PostgreSQL cannot create the extension.
if [ -f "$TIMESCALEDB_INSTALLER" ]; then export FEED_TEST_TIMESCALEDB=required; fi
if [ $# -eq 0 ]; then
    # Habits: formatting, lints (workspace lints in Cargo.toml) and doc links.
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --quiet
    bash scripts/check-deploy.sh
    set -- --workspace
fi
# The crash tests run the writer and fan-out binaries as child processes.
cargo build --bins
cargo test "$@"
if [ "$1" = --workspace ]; then
    # The feed tests again, on a three-master Redis Cluster.
    cluster=$(start_redis_cluster "${TEST_REDIS_CLUSTER_PORT:-17000}" "$cluster_dir")
    REDIS_URL=$cluster REDIS_CLUSTER=true cargo test -p e2e --test fanout_order --test reference_api --test feed_me --test pipeline
    # The write and read paths again on native partitions, the fallback without TimescaleDB
    # (storage.rs tests both modes itself).
    FEED_TEST_STORAGE=native cargo test -p e2e --test pipeline --test events --test analytics --test reference_api
    # The README's main command, from nothing, with every documented route.
    python3 scripts/smoke.py
fi
