#!/usr/bin/env bash
# Shared helpers: make sure PostgreSQL, Redis and the tansu broker are installed and
# running. Sourced by dev-up.sh and test.sh; safe to run again (it reuses what is there).
set -euo pipefail

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[infra] %s\n' "$*" >&2; }

apt_install() {
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq >&2; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

ensure_postgres() {
    if pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; then return; fi
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        log "installing PostgreSQL"
        apt_install postgresql
    fi
    log "starting PostgreSQL"
    local version; version=$(ls /etc/postgresql | sort -V | tail -n1)
    # Local trust auth, as the test and dev URLs carry no password.
    local hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && return; sleep 1; done
    log "PostgreSQL did not come up"; return 1
}

ensure_redis() {
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then tune_redis "$REDIS_PORT"; return; fi
    if ! command -v redis-server >/dev/null; then
        log "installing Redis"
        apt_install redis-server
    fi
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log "${REDIS_TUNING[@]}"
    for _ in $(seq 1 30); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 1; done
    log "Redis did not come up"; return 1
}

# Feeds keep FEED_MAX_LEN (800) compact refs per sorted set; Redis stores a set that
# small as one listpack (~35 bytes an entry) only while it has at most
# zset-max-listpack-entries members (128 by default; a skiplist costs ~3x more).
REDIS_TUNING=(--zset-max-listpack-entries 1024)

# Applies REDIS_TUNING to the Redis on PORT (it may have been started by someone else).
tune_redis() {
    redis-cli -p "$1" CONFIG SET zset-max-listpack-entries 1024 >/dev/null
}

# start_redis_cluster FIRST_PORT DIR: a throw-away Redis Cluster of three masters on
# FIRST_PORT..FIRST_PORT+2, data in DIR; prints the seed URLs, comma-separated.
start_redis_cluster() {
    local first=$1 dir=$2 port nodes=()
    mkdir -p "$dir"
    for port in "$first" $((first + 1)) $((first + 2)); do
        mkdir -p "$dir/$port"
        redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --cluster-enabled yes \
            --cluster-config-file "$dir/$port/nodes.conf" --dir "$dir/$port" --save "" --appendonly no \
            --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log" "${REDIS_TUNING[@]}"
        nodes+=("127.0.0.1:$port")
    done
    for port in "$first" $((first + 1)) $((first + 2)); do
        for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 \
        || { log "cannot create the Redis Cluster; see $dir/create.log"; return 1; }
    for _ in $(seq 1 100); do
        redis-cli -p "$first" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && break
        sleep 0.1
    done
    local urls=() node
    for node in "${nodes[@]}"; do urls+=("redis://$node"); done
    (IFS=,; echo "${urls[*]}")
}

stop_redis_cluster() {
    local dir=$1 pid
    for pid in "$dir"/*/redis.pid; do [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true; done
}

# tansu, a Kafka-protocol broker from crates.io. Building it takes ~10-15 minutes on 2
# cores, so an installed binary is always reused.
ensure_tansu() {
    if command -v tansu >/dev/null; then return; fi
    log "installing tansu (cargo install, takes a while once)"
    cargo install tansu --locked --features libsql >&2
}

# TimescaleDB, where this machine carries its installer (../shared/tools, as on CI): built
# from the vendored source and preloaded, ~20 s once. Elsewhere PostgreSQL is left as it
# is and the migrations fall back to native partitioning (see the README for getting
# TimescaleDB: the timescale/timescaledb images or Timescale's packages).
TIMESCALEDB_INSTALLER=${TIMESCALEDB_INSTALLER:-$(dirname "${BASH_SOURCE[0]}")/../../shared/tools/install-timescaledb.sh}
ensure_timescaledb() {
    [ -f "$TIMESCALEDB_INSTALLER" ] || return 0
    local psql=(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tA)
    if "${psql[@]}" -c "SHOW shared_preload_libraries" | grep -q timescaledb \
        && [ -n "$("${psql[@]}" -c "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")" ]; then
        return
    fi
    log "installing TimescaleDB ($TIMESCALEDB_INSTALLER; log in /tmp/timescaledb-install.log)"
    bash "$TIMESCALEDB_INSTALLER" >/tmp/timescaledb-install.log 2>&1 \
        || { tail -n 30 /tmp/timescaledb-install.log >&2; log "TimescaleDB did not install"; return 1; }
}

# Programs the tests use beside the stores: openssl makes their TLS certificates, socat
# terminates TLS in front of a broker (e2e/tests/tls.rs).
ensure_test_tools() {
    local missing=() tool
    for tool in openssl socat; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    if [ ${#missing[@]} -gt 0 ]; then log "installing ${missing[*]}"; apt_install "${missing[@]}"; fi
}

# Everything the services and tests need installed and running, but the broker itself.
ensure_all() {
    ensure_postgres
    ensure_timescaledb
    ensure_redis
    ensure_tansu
}

# start_tansu PORT DIR: runs a broker on 127.0.0.1:PORT storing into DIR/tansu.db unless
# one already listens there. SQLite storage, never memory:// (it loses records when a
# consumer resumes inside a record batch).
start_tansu() {
    local port=$1 dir=$2
    # A broker already answering there is reused. Probe the port first: tansu's client
    # retries a closed port for ~20 s before giving up.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
        && timeout 20 tansu topic list --broker "tcp://127.0.0.1:$port" >/dev/null 2>&1; then return; fi
    mkdir -p "$dir"
    log "starting tansu on 127.0.0.1:$port (data in $dir)"
    # `cd` first, on its own: `$!` must be tansu's pid, not a wrapping subshell's.
    (cd "$dir" || exit 1
     nohup tansu broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "sqlite://tansu.db" >"$dir/tansu.log" 2>&1 &
     echo $! >"$dir/tansu.pid")
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
            && timeout 20 tansu topic list --broker "tcp://127.0.0.1:$port" >/dev/null 2>&1 && return
        sleep 0.2
    done
    log "tansu did not come up; see $dir/tansu.log"; return 1
}

stop_tansu() {
    local dir=$1
    if [ -f "$dir/tansu.pid" ]; then kill "$(cat "$dir/tansu.pid")" 2>/dev/null || true; rm -f "$dir/tansu.pid"; fi
}
