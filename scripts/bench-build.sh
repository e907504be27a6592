#!/usr/bin/env bash
# Cold build of the default generated workspace: wall time of `cargo build` (debug) and
# `cargo build --release` from an empty target directory each, and the crates in its Cargo.lock.
# Usage: scripts/bench-build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/saaskit new acme --yes --output "$work/acme" >/dev/null
cd "$work/acme"
cargo fetch --quiet   # downloads are not build time
for profile in dev release; do
    export CARGO_TARGET_DIR="$work/target-$profile"
    start=$(date +%s.%N)
    cargo build --quiet --workspace --profile "$profile"
    end=$(date +%s.%N)
    printf 'cold cargo build (%s): %.1f s\n' "$profile" "$(echo "$end - $start" | bc)"
done
echo "crates in Cargo.lock: $(grep -c '^name = ' Cargo.lock)"
