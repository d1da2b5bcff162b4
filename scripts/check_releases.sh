#!/usr/bin/env bash
# Released SQL never changes (docs/releases.md). Checks, for the extension's
# scripts (extension/sql/), the driver's migrations (driver/sql/migrations/) and
# the proxy extension's scripts (proxy/extension/):
#   1. every script is listed in its folder's released.sha256, and matches it;
#   2. no line of a released.sha256 was ever changed or removed (git history,
#      when the checkout has it);
#   3. the extension's upgrade scripts chain from 0.1.0 to the crate's
#      version, and the current version's install script is not committed
#      (cargo pgrx generates it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
fail() { echo "check_releases: $*" >&2; exit 1; }

for dir in extension/sql driver/sql/migrations proxy/extension; do
    manifest="$dir/released.sha256"
    [[ -f "$manifest" ]] || fail "$manifest is missing"
    (cd "$dir" && sha256sum --quiet --strict -c released.sha256) ||
        fail "a released script in $dir changed: a released script is never edited; ship a new upgrade script (or migration) instead"
    for script in "$dir"/*.sql; do
        grep -q "  $(basename "$script")\$" "$manifest" ||
            fail "$script is not in $manifest: record it (sha256sum) when it is final"
    done
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
        [[ "$(git rev-parse --is-shallow-repository)" == false ]]; then
        removed=$(git log -p --format= -- "$manifest" | grep -E '^-[0-9a-f]{64} ' || true)
        [[ -z "$removed" ]] || fail "$manifest once recorded what it no longer does: $removed"
    fi
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[[ -n "$version" ]] || fail "no version in Cargo.toml"
[[ ! -f "extension/sql/forgeerp--$version.sql" ]] ||
    fail "extension/sql/forgeerp--$version.sql: the current version's install script is generated, not committed"
grep -q "\"$version\"\]" extension/src/release.rs ||
    fail "extension/src/release.rs: SERVED must end with $version"
# Follow the upgrade scripts from 0.1.0: each version must lead to the current one.
at=0.1.0
while [[ "$at" != "$version" ]]; do
    next=$(ls extension/sql | sed -n "s/^forgeerp--$at--\(.*\)\.sql$/\1/p" | head -1)
    [[ -n "$next" ]] || fail "no upgrade script from $at towards $version (extension/sql/forgeerp--$at--<next>.sql)"
    at=$next
done
echo "check_releases: released scripts unchanged; upgrades chain 0.1.0 -> $version"
