#!/usr/bin/env bash
# The main job: sets everything up (scripts/setup.sh), builds the forgeerp
# CLI and runs `forgeerp demo` against the private cluster: two tenants,
# receipts, reservations and shipments through the command dispatcher with a
# few injected anomalies, the stock projection and the anomaly runner, then
# per tenant a stock table and the insights found. Safe to run again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"

bash "$ROOT/scripts/setup.sh" >/dev/null
cd "$ROOT"
cargo build --quiet -p forgeerp-cli
exec "$ROOT/target/debug/forgeerp" demo
