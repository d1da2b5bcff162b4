# Shared settings of the scripts; source it, don't run it.
PGRX_VERSION=0.18.1
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PG_BIN=/usr/lib/postgresql/15/bin
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# The cluster lives under target/ when the postgres OS user can reach it there,
# else in a folder of its own under /var/tmp named after this checkout.
if [[ -z "${FORGEERP_STATE:-}" ]]; then
    mkdir -p "$ROOT/target"
    if (cd / && runuser -u postgres -- test -x "$ROOT/target") 2>/dev/null; then
        FORGEERP_STATE=$ROOT/target/cluster
    else
        FORGEERP_STATE=/var/tmp/forgeerp-$(printf '%s' "$ROOT" | md5sum | cut -c1-8)
    fi
fi
export FORGEERP_STATE
export FORGEERP_PGPORT=${FORGEERP_PGPORT:-28815}
export FORGEERP_PGDATA=${FORGEERP_PGDATA:-$FORGEERP_STATE/pgdata}
export FORGEERP_PGSOCKET=${FORGEERP_PGSOCKET:-$FORGEERP_STATE/socket}
# The private CA (ca.crt) and the server's certificate and key.
export FORGEERP_TLS_DIR=${FORGEERP_TLS_DIR:-$FORGEERP_STATE/tls}
export FORGEERP_REDIS_PORT=${FORGEERP_REDIS_PORT:-28816}
export FORGEERP_REDIS_URL=${FORGEERP_REDIS_URL:-redis://127.0.0.1:$FORGEERP_REDIS_PORT}
export DATABASE_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:$FORGEERP_PGPORT/forgeerp}

# Runs a command as the postgres OS user (from /, which it can always enter).
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
# The sharded deployment of scripts/setup_shards.sh: a proxy and two shards.
export FORGEERP_PROXY_PORT=${FORGEERP_PROXY_PORT:-28817}
export FORGEERP_SHARD0_PORT=${FORGEERP_SHARD0_PORT:-28818}
export FORGEERP_SHARD1_PORT=${FORGEERP_SHARD1_PORT:-28819}
