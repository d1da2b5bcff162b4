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

# The preloaded feed's start, for the read_all pages: (transaction id, the
# position before its first event).
read -r FEED_TX FEED_GP <<<"$(psql_admin -d "$DB" -tAF' ' -c \
    "SELECT transaction_id, min(global_position) - 1 FROM forgeerp.events GROUP BY 1 ORDER BY 1 LIMIT 1")"

# CPU time of the whole cluster so far, in clock ticks: the postmaster and
# every process it runs, with those already gone (pgbench's backends end with
# each run and are counted in the postmaster's cutime and cstime).
cluster_ticks() {
    local postmaster total=0 pid fields
    postmaster=$(head -n1 "$FORGEERP_PGDATA/postmaster.pid")
    for pid in "$postmaster" $(cat "/proc/$postmaster/task/$postmaster/children" 2>/dev/null); do
        fields=$(cut -d' ' -f14-17 "/proc/$pid/stat" 2>/dev/null) || continue
        read -r utime stime cutime cstime <<<"$fields"
        total=$(( total + utime + stime + cutime + cstime ))
    done
    echo "$total"
}
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

# Runs one measurement; sets TPS and CPU_US (server CPU per transaction).
measure() { # script clients [extra server options]
    local before after out transactions
    before=$(cluster_ticks)
    out=$(PGOPTIONS="${3:-}" "$PG_BIN/pgbench" -n -M prepared -h "$FORGEERP_PGSOCKET" -p "$FORGEERP_PGPORT" -U postgres \
        -D tx="$FEED_TX" -D gp="$FEED_GP" \
        -T "$SECONDS_PER_RUN" -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" -f "$ROOT/bench/$1.sql" "$DB" 2>/dev/null)
    sleep 0.2 # the backends' exit, so that their time is the postmaster's
    after=$(cluster_ticks)
    TPS=$(awk '/^tps = / { printf "%.0f", $3 }' <<<"$out")
    transactions=$(awk '/number of transactions actually processed/ { print $NF }' <<<"$out")
    CPU_US=$(( (after - before) * TICK_US / (transactions > 0 ? transactions : 1) ))
}
ratio() { echo "$1 $2" | awk '{ printf "%.2f", $1 / $2 }'; }

echo "| workload | clients | floor tps | forgeerp tps | ratio | floor CPU µs/tx | forgeerp CPU µs/tx | forgeerp, NOTIFY in transaction | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for pair in "floor_new_1 append_new_1 single-event append, new stream, vs INSERT" \
            "floor_1 append_1 single-event append, existing stream, vs INSERT" \
            "floor_10 append_10 10-event append vs 10-row INSERT" \
            "select_100 load_100 load_stream(100 events) vs SELECT" \
            "select_feed_1000 read_all_1000 read_all page of 1000 vs ordered SELECT"; do
    read -r floor ours label <<<"$pair"
    for clients in 1 4; do
        psql_admin -d "$DB" -c "CHECKPOINT" >/dev/null
        measure "$floor" "$clients"
        base=$TPS base_cpu=$CPU_US
        measure "$ours" "$clients"
        mine=$TPS mine_cpu=$CPU_US
        if [[ $ours == append_* ]]; then
            measure "$ours" "$clients" "-c forgeerp.notify_in_transaction=on"
            direct_cols="$TPS | $(ratio "$TPS" "$base")"
        else
            direct_cols="– | –"
        fi
        echo "| $label | $clients | $base | $mine | $(ratio "$mine" "$base") | $base_cpu | $mine_cpu | $direct_cols |"
    done
done
