#!/usr/bin/env bash
# Runs every benchmark against the private cluster (scripts/setup.sh first)
# and prints a table of throughputs and ratios against the floor measured in
# the same run. Usage: bash bench/run.sh [seconds per run, default 10]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
SECONDS_PER_RUN=${1:-10}
DB=forgeerp_bench
bash "$ROOT/scripts/setup.sh" >/dev/null
psql_admin() { PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$FORGEERP_PGSOCKET" -p "$FORGEERP_PGPORT" -U postgres "$@"; }
psql_admin -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql_admin -d "$DB" -f "$ROOT/bench/setup.sql" >/dev/null

tps() { # script clients [extra server options]
    PGOPTIONS="${3:-}" "$PG_BIN/pgbench" -n -M prepared -h "$FORGEERP_PGSOCKET" -p "$FORGEERP_PGPORT" -U postgres \
        -T "$SECONDS_PER_RUN" -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" -f "$ROOT/bench/$1.sql" "$DB" 2>/dev/null |
        awk '/^tps = / { printf "%.0f", $3 }'
}
ratio() { echo "$1 $2" | awk '{ printf "%.2f", $1 / $2 }'; }

echo "| workload | clients | floor tps | forgeerp tps | ratio | forgeerp, NOTIFY in transaction | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for pair in "floor_1 append_1 single-event append vs INSERT" \
            "floor_10 append_10 10-event append vs 10-row INSERT" \
            "select_100 load_100 load_stream(100 events) vs SELECT"; do
    read -r floor ours label <<<"$pair"
    for clients in 1 2 4; do
        psql_admin -d "$DB" -c "CHECKPOINT" >/dev/null
        base=$(tps "$floor" "$clients")
        mine=$(tps "$ours" "$clients")
        if [[ $ours == append_* ]]; then
            direct=$(tps "$ours" "$clients" "-c forgeerp.notify_in_transaction=on")
            direct_cols="$direct | $(ratio "$direct" "$base")"
        else
            direct_cols="– | –"
        fi
        echo "| $label | $clients | $base | $mine | $(ratio "$mine" "$base") | $direct_cols |"
    done
done
