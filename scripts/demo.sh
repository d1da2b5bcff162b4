#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the example session of
# scripts/demo.sql in a fresh database: two tenants' streams, appends, a
# refused append, load, and the global feed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"

bash "$ROOT/scripts/setup.sh" >/dev/null
psql_admin() { PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$FORGEERP_PGSOCKET" -p "$FORGEERP_PGPORT" -U postgres "$@"; }
psql_admin -d postgres -c "DROP DATABASE IF EXISTS forgeerp_demo WITH (FORCE)" -c "CREATE DATABASE forgeerp_demo"
psql_admin -d forgeerp_demo -c "CREATE EXTENSION forgeerp"
"$PG_BIN/psql" -X -h "$FORGEERP_PGSOCKET" -p "$FORGEERP_PGPORT" -U postgres -d forgeerp_demo \
    -v ON_ERROR_STOP=1 -f "$ROOT/scripts/demo.sql"
