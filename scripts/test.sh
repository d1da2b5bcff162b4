#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test:
#   0. released SQL unchanged, and the upgrade scripts chain to the current
#      version (scripts/check_releases.sh);
#   1. #[pg_test] units inside a backend (cargo pgrx test, its own cluster);
#   2. the contract tests (tests/) against the private cluster with the
#      release build of the extension installed, including the upgrade and
#      security tiers; then again on databases installed at each older
#      release and upgraded in place;
#   3. the driver's tests (driver/), against the same cluster;
#   4. the forgeerp CLI (cli/), its binary run against the same cluster;
# then `cargo doc` with warnings as errors, `cargo fmt --check` and clippy.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

echo "== releases: released scripts unchanged, upgrades chain to the current version"
bash scripts/check_releases.sh

bash scripts/setup.sh

echo "== tier 1: #[pg_test] units (cargo pgrx test)"
# cargo pgrx test overwrites the installed library in place: stop the private
# cluster, which has it loaded, first.
as_postgres "$PG_BIN/pg_ctl" -D "$FORGEERP_PGDATA" -w -m fast stop >/dev/null
mkdir -p "$FORGEERP_STATE/pgrx-test" && chown postgres:postgres "$FORGEERP_STATE/pgrx-test"
(cd extension && cargo pgrx test pg15 --runas postgres --pgdata "$FORGEERP_STATE/pgrx-test/pgdata") 2>&1 | tee -a "$LOG"

# cargo pgrx test installed its debug build into PostgreSQL's library folder:
# put the release build back (and restart the private cluster on it).
bash scripts/setup.sh

# Drops the contract tests' databases (their notifiers with them: each
# database's notifier holds a background worker until it has been idle 30 s).
drop_contract_databases() {
    "$PG_BIN/psql" -X -q -h "$FORGEERP_PGSOCKET" -p "$FORGEERP_PGPORT" -U postgres -d postgres -tAc \
        "SELECT format('DROP DATABASE %I WITH (FORCE);', datname) FROM pg_database WHERE datname LIKE 'forgeerp\\_%test\\_%'" |
        "$PG_BIN/psql" -X -q -h "$FORGEERP_PGSOCKET" -p "$FORGEERP_PGPORT" -U postgres -d postgres >/dev/null
}

echo "== tier 2: contract tests against the private cluster"
drop_contract_databases
# One test at a time: the feed tests hold transactions open, which holds the
# feed back for every other session of the cluster by design.
cargo test -p forgeerp-server-tests -- --test-threads=1 2>&1 | tee -a "$LOG"
older=$("$PG_BIN/psql" -X -q -h "$FORGEERP_PGSOCKET" -p "$FORGEERP_PGPORT" -U postgres -d postgres -tAc \
    "SELECT v.version FROM pg_available_extension_versions v JOIN pg_available_extensions x USING (name)
      WHERE name = 'forgeerp' AND v.version <> x.default_version ORDER BY 1")
for version in $older; do
    echo "== tier 2, again: the contract on a database installed at $version and upgraded in place"
    drop_contract_databases
    FORGEERP_TEST_UPGRADE_FROM=$version cargo test -p forgeerp-server-tests -- --test-threads=1 2>&1 | tee -a "$LOG"
done

echo "== tier 3: the driver (forgeerp-infra): units, and its parts against the private cluster and Redis"
cargo test -p forgeerp-infra --features redis 2>&1 | tee -a "$LOG"

echo "== tier 4: the forgeerp CLI against the private cluster"
# One at a time: an open transaction anywhere in the cluster holds every
# database's feed back (by design), and the tail test waits on the feed.
cargo test -p forgeerp-cli -- --test-threads=1 2>&1 | tee -a "$LOG"

echo "== docs: cargo doc for the workspace, warnings as errors"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --workspace

echo "== style: cargo fmt --check, cargo clippy with warnings as errors"
cargo fmt --all --check
cargo clippy --quiet --workspace --all-targets --features forgeerp-infra/redis -- -D warnings

# One closing line over all tiers.
awk '/^test result:/ { p += $4; f += $6 } END { printf "forgeerp: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$LOG"
