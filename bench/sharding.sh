#!/usr/bin/env bash
# The cost of the PL/Proxy proxy: the same pgbench script through the proxy
# and straight to the shard, in the same run, over TCP on loopback both ways
# (the proxy reaches the shard over TCP too). Tenant 22222222-… is on shard 0.
# Usage: bash bench/sharding.sh [seconds per run, default 10]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
SECONDS_PER_RUN=${1:-10}
bash "$ROOT/scripts/setup_shards.sh" >/dev/null
proxy() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$FORGEERP_PROXY_PORT" -U postgres -d forgeerp "$@"; }
# 200 streams of 100 events for load_stream, once (streams 20001 to 20200).
if [[ "$(proxy -tAc "SELECT forgeerp.stream_version('22222222-2222-4222-8222-222222222222', '00000000-0000-4000-8000-000000020001')")" == 0 ]]; then
    proxy -c "SELECT count(*) FROM generate_series(20001, 20200) AS k,
      LATERAL forgeerp.append('22222222-2222-4222-8222-222222222222', 'bench.item',
        ('00000000-0000-4000-8000-' || lpad(k::text, 12, '0'))::uuid, 0,
        (SELECT jsonb_agg(jsonb_build_object('event_type', 'StockReceived', 'payload', jsonb_build_object('quantity', i, 'sku', 'BOLT-M8')))
           FROM generate_series(1, 100) AS i))" >/dev/null
fi
measure() { # script clients port
    "$PG_BIN/pgbench" -n -M prepared -h 127.0.0.1 -p "$3" -U postgres -T "$SECONDS_PER_RUN" -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" \
        -f "$ROOT/bench/$1.sql" forgeerp 2>/dev/null | awk '/^tps = / { printf "%.0f", $3 }'
}
echo "| workload | clients | straight to the shard, tps | through the proxy, tps | proxy / straight |"
echo "|---|---:|---:|---:|---:|"
for pair in "sharded_append_1 single-event append" "sharded_load_100 load_stream of 100 events"; do
    read -r script label <<<"$pair"
    for clients in 1 4; do
        direct=$(measure "$script" "$clients" "$FORGEERP_SHARD0_PORT")
        proxied=$(measure "$script" "$clients" "$FORGEERP_PROXY_PORT")
        echo "| $label | $clients | $direct | $proxied | $(echo "$proxied $direct" | awk '{ printf "%.2f", $1 / $2 }') |"
    done
done
