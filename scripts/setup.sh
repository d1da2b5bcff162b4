#!/usr/bin/env bash
# Sets up everything forgeerp needs on Debian 12, as root, and starts the
# private PostgreSQL cluster with the extension installed. Idempotent: a second
# run only checks, rebuilds what changed and makes sure the cluster is up.
#
# Environment (all optional):
#   FORGEERP_PGPORT   port of the private cluster (default 28815)
#   FORGEERP_PGDATA   its data directory (default target/cluster/pgdata, owned by postgres)
#   FORGEERP_REDIS_PORT  port of the private Redis (default 28816)
#   FORGEERP_STATE    where the cluster, its TLS files and Redis live (default
#                     target/cluster, or a folder under /var/tmp; see env.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

# Bold only on a terminal: no escape codes in logs and pipes.
if [[ -t 1 ]]; then
    log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
else
    log() { printf '[setup] %s\n' "$*"; }
fi

# 1. Debian packages ---------------------------------------------------------
PACKAGES=(postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo pkg-config libssl-dev make redis-server openssl)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's package starts its own cluster on 5432; ours is private and needs
# nothing from it.

# 2. cargo-pgrx, pinned ------------------------------------------------------
if [[ "$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx $PGRX_VERSION" ]]; then
    log "installing cargo-pgrx $PGRX_VERSION (a few minutes, once)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi
if ! grep -qs "^pg15 = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    log "cargo pgrx init --pg15 $PG_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG"
fi

# 3. The extension, release build, into the system PostgreSQL 15 -------------
log "building and installing the forgeerp extension"
(cd "$ROOT/extension" && { [[ -t 1 ]] || export NO_COLOR=1 CARGO_TERM_COLOR=never; } && cargo pgrx install --release --pg-config "$PG_CONFIG" 2>&1 | grep -Ev '^\s+(Compiling|Checking)' | tail -n 3)

# 4. The private cluster, run by the postgres OS user ------------------------
mkdir -p "$FORGEERP_STATE" && chown postgres:postgres "$FORGEERP_STATE"
if [[ ! -f "$FORGEERP_PGDATA/PG_VERSION" ]]; then
    log "initdb $FORGEERP_PGDATA"
    mkdir -p "$FORGEERP_PGDATA" "$FORGEERP_PGSOCKET"
    chown postgres:postgres "$FORGEERP_PGDATA" "$FORGEERP_PGSOCKET"
    chmod 700 "$FORGEERP_PGDATA"
    as_postgres "$PG_BIN/initdb" -D "$FORGEERP_PGDATA" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi
mkdir -p "$FORGEERP_PGSOCKET" && chown postgres:postgres "$FORGEERP_PGSOCKET"

# TLS: a private CA and a server certificate for localhost and 127.0.0.1,
# made once (ten years), so the cluster speaks TLS like a managed server and
# the TLS tier can check every sslmode against it.
if [[ ! -s "$FORGEERP_TLS_DIR/server.crt" || ! -s "$FORGEERP_TLS_DIR/ca.crt" ]]; then
    log "making the private cluster's TLS certificates in $FORGEERP_TLS_DIR"
    mkdir -p "$FORGEERP_TLS_DIR"
    (
        cd "$FORGEERP_TLS_DIR"
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 3650 \
            -subj "/CN=forgeerp private CA" -keyout ca.key -out ca.crt \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile server.ext -out server.crt 2>/dev/null
        rm -f server.csr server.ext ca.srl
    )
    chown -R postgres:postgres "$FORGEERP_TLS_DIR"
    chmod 600 "$FORGEERP_TLS_DIR/server.key" "$FORGEERP_TLS_DIR/ca.key"
    chmod 644 "$FORGEERP_TLS_DIR/ca.crt" "$FORGEERP_TLS_DIR/server.crt"
fi

conf_before=$(cat "$FORGEERP_PGDATA/forgeerp.conf" 2>/dev/null || true)
cat > "$FORGEERP_PGDATA/forgeerp.conf" <<CONF
# Written by scripts/setup.sh on every run.
port = $FORGEERP_PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$FORGEERP_PGSOCKET'
max_connections = 200
# One notifier worker per database that appends (it exits after 3 s idle):
# room for the test suites' many databases besides PostgreSQL's own workers.
max_worker_processes = 32
# The feed tests prepare a transaction (two-phase commit) to show it holds
# the feed back like an open one.
max_prepared_transactions = 8
shared_buffers = 512MB
shared_preload_libraries = 'forgeerp'
log_min_messages = warning
log_min_error_statement = fatal
ssl = on
ssl_cert_file = '$FORGEERP_TLS_DIR/server.crt'
ssl_key_file = '$FORGEERP_TLS_DIR/server.key'
CONF
chown postgres:postgres "$FORGEERP_PGDATA/forgeerp.conf"
grep -q "^include_if_exists = 'forgeerp.conf'" "$FORGEERP_PGDATA/postgresql.conf" ||
    echo "include_if_exists = 'forgeerp.conf'" >> "$FORGEERP_PGDATA/postgresql.conf"

# A role the server refuses without TLS (the TLS tier's "server that demands
# TLS"), ahead of initdb's trust lines.
hba_line="hostnossl all forgeerp_tls_only 127.0.0.1/32 reject"
hba_before=$(cat "$FORGEERP_PGDATA/pg_hba.conf")
if ! grep -qxF "$hba_line" "$FORGEERP_PGDATA/pg_hba.conf"; then
    { echo "# Written by scripts/setup.sh: forgeerp_tls_only connects over TLS or not at all."
      echo "$hba_line"
      cat "$FORGEERP_PGDATA/pg_hba.conf"; } > "$FORGEERP_PGDATA/pg_hba.conf.new"
    mv "$FORGEERP_PGDATA/pg_hba.conf.new" "$FORGEERP_PGDATA/pg_hba.conf"
    chown postgres:postgres "$FORGEERP_PGDATA/pg_hba.conf"
    chmod 600 "$FORGEERP_PGDATA/pg_hba.conf"
fi

library="$("$PG_CONFIG" --pkglibdir)/forgeerp.so"
# The server runs with RUST_BACKTRACE=full on purpose: a hostile environment
# for the extension, whose tests prove that no Rust backtrace reaches a client
# whatever the server's environment (tests/tests/security.rs).
if as_postgres "$PG_BIN/pg_ctl" -D "$FORGEERP_PGDATA" status >/dev/null 2>&1; then
    # A new library is only picked up by a restart (it is preloaded), and so
    # are some settings.
    if [[ "$library" -nt "$FORGEERP_PGDATA/postmaster.pid" || "$conf_before" != "$(cat "$FORGEERP_PGDATA/forgeerp.conf")" ]]; then
        log "restarting the cluster for the new extension library or settings"
        as_postgres env RUST_BACKTRACE=full "$PG_BIN/pg_ctl" -D "$FORGEERP_PGDATA" -w -m fast restart \
            -l "$FORGEERP_PGDATA/server.log" >/dev/null
    elif [[ "$hba_before" != "$(cat "$FORGEERP_PGDATA/pg_hba.conf")" ]]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$FORGEERP_PGDATA" reload >/dev/null
    fi
else
    log "starting the cluster on port $FORGEERP_PGPORT"
    as_postgres env RUST_BACKTRACE=full "$PG_BIN/pg_ctl" -D "$FORGEERP_PGDATA" -w start \
        -l "$FORGEERP_PGDATA/server.log" >/dev/null
fi

# 5. A private Redis (for the Redis Pub/Sub bus): loopback, no persistence.
mkdir -p "$FORGEERP_STATE/redis"
if ! redis-cli -p "$FORGEERP_REDIS_PORT" ping >/dev/null 2>&1; then
    log "starting Redis on port $FORGEERP_REDIS_PORT"
    redis-server --port "$FORGEERP_REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
        --dir "$FORGEERP_STATE/redis" --pidfile "$FORGEERP_STATE/redis/redis.pid" \
        --logfile "$FORGEERP_STATE/redis/redis.log" >/dev/null
    for _ in $(seq 50); do redis-cli -p "$FORGEERP_REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# 6. The demo database -------------------------------------------------------
psql_admin() { PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$FORGEERP_PGSOCKET" -p "$FORGEERP_PGPORT" -U postgres "$@"; }
# Set-ups before the first release (0.1.0) recreated the demo database when
# the extension's SQL changed, and left a stamp of it. A database from such a
# build predates every release and cannot be upgraded: it is recreated once,
# and the stamp goes with it. Released databases are never dropped.
stamp="$FORGEERP_STATE/demo-database.extension-md5"
if [[ -f "$stamp" ]]; then
    if [[ "$(cat "$stamp")" != "$(md5sum "$ROOT/extension/sql/forgeerp--0.1.0.sql" | cut -d' ' -f1)" ]]; then
        log "the demo database predates release 0.1.0: recreating it once"
        psql_admin -d postgres -c "DROP DATABASE IF EXISTS forgeerp WITH (FORCE)"
    fi
    rm -f "$stamp"
fi
psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'forgeerp'" | grep -q 1 ||
    psql_admin -d postgres -c "CREATE DATABASE forgeerp"
psql_admin -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'forgeerp_tls_only'" | grep -q 1 ||
    psql_admin -d postgres -c "CREATE ROLE forgeerp_tls_only LOGIN"
# An existing database is upgraded in place to the installed version
# (docs/releases.md), and so are the driver's tables (numbered migrations).
psql_admin -d forgeerp -c "CREATE EXTENSION IF NOT EXISTS forgeerp" -c "ALTER EXTENSION forgeerp UPDATE"
(cd "$ROOT" && cargo build --quiet -p forgeerp-cli)
migrated=$("$ROOT/target/debug/forgeerp" --database-url "$DATABASE_URL" migrate)
log "driver tables: $migrated"
log "ready: $DATABASE_URL"
