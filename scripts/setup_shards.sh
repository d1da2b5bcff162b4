#!/usr/bin/env bash
# Sets up a sharded deployment on this machine (after scripts/setup.sh, which
# builds and installs the forgeerp extension): three private clusters on
# loopback, run by the postgres OS user — a PL/Proxy proxy and two shards —
# each with a database `forgeerp`. Idempotent; quick when all is there.
#
#   proxy    port $FORGEERP_PROXY_PORT   (default 28817): plproxy, forgeerp_proxy,
#            the PL/Proxy cluster forgeerp_shards (p0, p1)
#   shard 0  port $FORGEERP_SHARD0_PORT  (default 28818): forgeerp, positions 1 .. 2^48
#   shard 1  port $FORGEERP_SHARD1_PORT  (default 28819): forgeerp, positions 2^48+1 .. 2^49
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "$0")/env.sh"
log() { if [[ -t 1 ]]; then printf '\033[1m[shards]\033[0m %s\n' "$*"; else printf '[shards] %s\n' "$*"; fi; }

# 1. PL/Proxy (Debian's package) and the proxy extension's files.
if ! dpkg-query -W -f='${Status}' postgresql-15-plproxy 2>/dev/null | grep -q "install ok installed"; then
    log "installing postgresql-15-plproxy"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15-plproxy >/dev/null
fi
extdir="$("$PG_CONFIG" --sharedir)/extension"
install -m 644 "$ROOT/proxy/extension/forgeerp_proxy.control" "$ROOT"/proxy/extension/forgeerp_proxy--*.sql "$extdir/"

# 2. The clusters.
mkdir -p "$FORGEERP_STATE/shards" && chown postgres:postgres "$FORGEERP_STATE" "$FORGEERP_STATE/shards"
start_cluster() { # name port preload
    local name=$1 port=$2 preload=$3 data="$FORGEERP_STATE/shards/$1"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        log "initdb $data"
        mkdir -p "$data" && chown postgres:postgres "$data" && chmod 700 "$data"
        as_postgres "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust >/dev/null
    fi
    local before
    before=$(cat "$data/forgeerp.conf" 2>/dev/null || true)
    cat > "$data/forgeerp.conf" <<CONF
# Written by scripts/setup_shards.sh on every run.
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$FORGEERP_STATE/shards'
max_connections = 100
max_worker_processes = 16
shared_buffers = 128MB
shared_preload_libraries = '$preload'
log_min_messages = warning
log_min_error_statement = fatal
CONF
    chown postgres:postgres "$data/forgeerp.conf"
    grep -q "^include_if_exists = 'forgeerp.conf'" "$data/postgresql.conf" ||
        echo "include_if_exists = 'forgeerp.conf'" >> "$data/postgresql.conf"
    if as_postgres "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        [[ "$before" == "$(cat "$data/forgeerp.conf")" ]] ||
            as_postgres "$PG_BIN/pg_ctl" -D "$data" -w -m fast restart -l "$data/server.log" >/dev/null
    else
        log "starting $name on 127.0.0.1:$port"
        as_postgres "$PG_BIN/pg_ctl" -D "$data" -w start -l "$data/server.log" >/dev/null
    fi
}
sql() { # port db sql...
    local port=$1 db=$2; shift 2
    PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}
ensure_db() { # port
    [[ "$(sql "$1" postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'forgeerp'")" == 1 ]] ||
        sql "$1" postgres -c "CREATE DATABASE forgeerp"
}

start_cluster proxy "$FORGEERP_PROXY_PORT" ""
start_cluster shard0 "$FORGEERP_SHARD0_PORT" forgeerp
start_cluster shard1 "$FORGEERP_SHARD1_PORT" forgeerp

# 3. The shards: the extension, up to date, and each its own range of global
# positions (2^48 each), so positions never collide across shards.
shard=0
for port in "$FORGEERP_SHARD0_PORT" "$FORGEERP_SHARD1_PORT"; do
    ensure_db "$port"
    sql "$port" forgeerp -f "$ROOT/proxy/shard_setup.sql" -v shard="$shard"
    shard=$((shard + 1))
done

# 4. The proxy: its extension and the shards it routes to. A proxy database
# made by a set-up from before its script was released (no stamp, or
# another script's) has the extension made again: a released script never
# changes (scripts/check_releases.sh), so this happens at most once.
ensure_db "$FORGEERP_PROXY_PORT"
stamp="$FORGEERP_STATE/shards/forgeerp_proxy.sha256"
current=$(cat "$ROOT"/proxy/extension/forgeerp_proxy--*.sql | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" != "$current" ]]; then
    sql "$FORGEERP_PROXY_PORT" forgeerp -c "DROP EXTENSION IF EXISTS forgeerp_proxy CASCADE"
fi
sql "$FORGEERP_PROXY_PORT" forgeerp -f "$ROOT/proxy/proxy_setup.sql" \
    -v p0="host=127.0.0.1 port=$FORGEERP_SHARD0_PORT dbname=forgeerp" \
    -v p1="host=127.0.0.1 port=$FORGEERP_SHARD1_PORT dbname=forgeerp"
echo "$current" > "$stamp"
log "ready: proxy postgresql://postgres@127.0.0.1:$FORGEERP_PROXY_PORT/forgeerp, shards on $FORGEERP_SHARD0_PORT and $FORGEERP_SHARD1_PORT"
