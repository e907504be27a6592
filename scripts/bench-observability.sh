#!/usr/bin/env bash
# What the request metrics and the request span's fields cost on the hot path: the generated
# api's `GET /api/auth/me` (Bearer token, SQLite) in two builds, a baseline and this checkout's,
# measured side by side with wrk, alternating A B A B ... so that a change in the machine's load
# touches both alike; then each build's instructions per request under callgrind, which do not
# move with the load. Also prints the crates in each workspace's Cargo.lock.
#
# Usage: scripts/bench-observability.sh [BASELINE_SAASKIT]
#   Without an argument, the baseline is this checkout's workspace with
#   scripts/bench/without-observability.patch applied: no metrics layer, and the request span
#   with the fields it had before the observability work (id, method, path; no route, no user
#   id). The two builds then differ by exactly what the issue's budget is about.
#   BASELINE_SAASKIT: instead, a saaskit binary built from another commit, e.g. main's:
#     git worktree add /tmp/saaskit-base main && cargo build --release --manifest-path \
#       /tmp/saaskit-base/Cargo.toml --target-dir target/bench-baseline
#     scripts/bench-observability.sh target/bench-baseline/release/saaskit
# Settings (environment): ROUNDS=5 (measured runs of each), DURATION=10 (seconds per run),
# WARMUP=2, CONNECTIONS=32, RUST_LOG=warn (the level the services run at; `info` also writes
# one line per request), BENCH_PIN=1 (0: no taskset), METRICS=1 (0: the metrics listener off,
# as in a default deployment; the requests are counted either way, the listener only serves
# them), CALLGRIND=1 (0: skip the instruction counts), REQUESTS=2000 (requests counted under
# callgrind), CURRENT_SAASKIT (a saaskit binary of this checkout, else one is built).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
baseline=
[ $# -eq 0 ] || baseline=$(realpath "$1")
patch_file=$root/scripts/bench/without-observability.patch
rounds=${ROUNDS:-5}
duration=${DURATION:-10}
warmup=${WARMUP:-2}
connections=${CONNECTIONS:-32}
log_level=${RUST_LOG:-warn}
metrics=${METRICS:-1}
email=ada@example.com
password=correct-horse-battery-staple-42

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

. scripts/bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

print_machine
echo "runs: $rounds of each, alternating; ${warmup} s warm-up then ${duration} s measured," \
    "1 wrk thread, $connections connections; RUST_LOG=$log_level"
echo

export CARGO_TARGET_DIR=$root/target/bench-workspaces
# CURRENT_SAASKIT: this checkout's saaskit binary, when already built (any profile: it only
# generates the workspace); else it is built here.
current=${CURRENT_SAASKIT:-}
if [ -z "$current" ]; then
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --target-dir "$root/target"
    current=$root/target/release/saaskit
fi
current=$(realpath "$current")
mkdir -p "$work/bin"
for side in baseline current; do
    saaskit=${baseline:-$current}
    [ "$side" = current ] && saaskit=$current
    "$saaskit" new benchws --yes --output "$work/$side" >/dev/null
    if [ "$side" = baseline ] && [ -z "$baseline" ]; then
        echo "baseline: this checkout's workspace with $(basename "$patch_file")"
        patch --quiet -d "$work/$side" -p1 <"$patch_file" || {
            echo "the patch no longer applies to the generated workspace: update $patch_file" >&2
            exit 1
        }
    fi
    echo "building the $side api (cargo build --release -p api)"
    (cd "$work/$side" && cargo build --release --quiet -p api)
    cp "$CARGO_TARGET_DIR/release/api" "$work/bin/api-$side"
    echo "  crates in Cargo.lock: $(grep -c '^name = ' "$work/$side/Cargo.lock")"
done
echo

# measure SIDE ROUND: one saturating run of /me against a fresh api of SIDE on a fresh database.
measure() {
    local side=$1 round=$2 base token
    base="http://127.0.0.1:$(free_port)"
    rm -f "$work/$side.db"*
    local metrics_env=()
    [ "$metrics" = 1 ] && metrics_env=(API_METRICS_ADDR="127.0.0.1:$(free_port)")
    start_server "$work/$side.log" "$base/healthz" "$work/$side" \
        env "${metrics_env[@]}" API_ADDR="${base#http://}" DATABASE_URL="sqlite://$work/$side.db?mode=rwc" \
        RUST_LOG="$log_level" AUTH_COOKIE_SECURE=false "$work/bin/api-$side"
    token=$(curl -sf -X POST "$base/api/auth/register" -H 'Content-Type: application/json' \
        -d "{\"email\": \"$email\", \"password\": \"$password\", \"full_name\": \"Ada\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
    "${client[@]}" wrk -t1 -c"$connections" -d"${warmup}s" \
        -H "Authorization: Bearer $token" "$base/api/auth/me" >/dev/null
    "${client[@]}" wrk -t1 -c"$connections" -d"${duration}s" --latency \
        -H "Authorization: Bearer $token" "$base/api/auth/me" >"$work/$side-$round.txt"
    stop_server
    local rps non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/$side-$round.txt")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/$side-$round.txt")
    printf '  round %d  %-8s %10s req/s%s\n' "$round" "$side" "$rps" \
        "${non2xx:+  ($non2xx answers not 2xx!)}"
    echo "$rps" >>"$work/$side.rps"
}

for round in $(seq "$rounds"); do
    measure baseline "$round"
    measure current "$round"
done
echo
python3 - "$work/baseline.rps" "$work/current.rps" <<'PY'
import statistics, sys
base, current = ([float(line) for line in open(path)] for path in sys.argv[1:])
for name, runs in (("baseline", base), ("current", current)):
    print(f"{name:9} mean {statistics.mean(runs):9.1f} req/s  median {statistics.median(runs):9.1f}"
          f"  min {min(runs):9.1f}  max {max(runs):9.1f}")
print(f"current / baseline: {statistics.mean(current) / statistics.mean(base) * 100:.1f} % (means),"
      f" {statistics.median(current) / statistics.median(base) * 100:.1f} % (medians)")
PY

[ "${CALLGRIND:-1}" = 0 ] && exit 0
echo
echo "instructions per request under callgrind (scripts/bench/callgrind-api.sh):"
for side in baseline current; do
    rm -f "$work/$side-cg.db"*
    printf '  %-8s ' "$side"
    scripts/bench/callgrind-api.sh "$work/$side" "$work/bin/api-$side" \
        "sqlite://$work/$side-cg.db?mode=rwc" "${REQUESTS:-2000}"
done
