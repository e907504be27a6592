#!/usr/bin/env bash
# The NestJS service's figures (docs/nest.md): `npm ci` time and the size of `node_modules`, its
# cold start to a 200 from `/readyz`, and `GET /api/nest/me` requests/s beside the Rust api's
# `GET /api/auth/me` with the same token, in the same run, on the same machine, with wrk over
# loopback (scripts/bench-api.sh's settings and pinning), on SQLite and, when one answers on
# 127.0.0.1:5432, on PostgreSQL.
#
# Both endpoints verify the same EdDSA token and look its session up in the same database; the
# api is a release build (target/bench-workspaces, shared with scripts/bench-api.sh), the nest
# service runs its `npm run build` output on the machine's Node.
#
# `npm ci` runs twice: with an empty npm cache in the scratch directory (everything downloaded
# from the registry, better-sqlite3 compiled) and again with that cache warm (the compile still
# happens: it is not cached). better-sqlite3 is compiled against the headers under
# npm_config_nodedir (default /usr here; see docs/nest.md).
#
# Usage: scripts/bench-nest.sh
# Settings (environment): DURATION=10, WARMUP=2, CONNECTIONS=32, BENCH_PIN=1 (as bench-api.sh);
# NPM_TIMES=0 installs once without timing `npm ci` (for the /me comparison alone).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

duration=${DURATION:-10}
warmup=${WARMUP:-2}
connections=${CONNECTIONS:-32}
email=ada@example.com
password=correct-horse-battery-staple-42
export npm_config_nodedir=${npm_config_nodedir:-/usr}

for tool in wrk curl python3 node npm; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

. scripts/bench/lib.sh
nest_pid=
cleanup() {
    [ -z "$nest_pid" ] || { kill "$nest_pid" 2>/dev/null || true; wait "$nest_pid" 2>/dev/null || true; }
    bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '%s' 'done = function(summary, latency, requests)
    io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99), summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
' >"$work/report.lua"

# measure LABEL URL TOKEN NAME: a warm-up, then the measured run; prints req/s and latencies,
# and keeps the req/s in $work/rps-NAME.
measure() {
    local label=$1 url=$2 token=$3 name=$4
    "${client[@]}" wrk -t1 -c"$connections" -d"${warmup}s" -H "Authorization: Bearer $token" \
        -s "$work/report.lua" "$url" >/dev/null
    "${client[@]}" wrk -t1 -c"$connections" -d"${duration}s" --timeout 30s --latency \
        -H "Authorization: Bearer $token" -s "$work/report.lua" "$url" >"$work/run.txt"
    python3 - "$work/run.txt" "$label" "$work/rps-$name" <<'PY'
import sys
line = next(l for l in open(sys.argv[1]) if l.startswith("RESULT "))
requests, duration_us, p50, p99, status, errors = map(int, line.split()[1:])
extra = (f"  ({status} answers not 2xx!)" if status else "") + (f"  ({errors} socket errors)" if errors else "")
print(f"  {sys.argv[2]:<28} {requests / (duration_us / 1e6):9.1f} req/s  p50 {p50 / 1000:7.2f} ms  p99 {p99 / 1000:7.2f} ms{extra}")
open(sys.argv[3], "w").write(f"{requests / (duration_us / 1e6)}\n")
PY
}

seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

print_machine
echo "node $(node --version), npm $(npm --version); runs: ${warmup} s warm-up then ${duration} s measured, $connections connections"
echo

# --- the workspace -----------------------------------------------------------------------------

cargo build --quiet --manifest-path "$root/Cargo.toml" --target-dir "$root/target"
"$root/target/debug/saaskit" new benchws --yes --services api,nest --output "$work/benchws" >/dev/null
service=$work/benchws/services/nest

if [ "${NPM_TIMES:-1}" = 0 ]; then
    echo "npm ci (services/nest): not timed (NPM_TIMES=0)"
    (cd "$service" && npm ci --no-audit --no-fund >"$work/npm-cold.log" 2>&1)
else
    echo "npm ci (services/nest)"
    start=$EPOCHREALTIME
    (cd "$service" && npm_config_cache=$work/npm-cache npm ci --no-audit --no-fund >"$work/npm-cold.log" 2>&1)
    echo "  cold npm cache: $(seconds_since "$start") s"
    rm -rf "$service/node_modules"
    start=$EPOCHREALTIME
    (cd "$service" && npm_config_cache=$work/npm-cache npm ci --no-audit --no-fund >"$work/npm-warm.log" 2>&1)
    echo "  warm npm cache: $(seconds_since "$start") s"
    echo "  node_modules: $(du -sh "$service/node_modules" | cut -f1) ($(du -sb "$service/node_modules" | cut -f1) bytes), $(grep -c '"node_modules/' "$service/package-lock.json") packages in package-lock.json"
fi
(cd "$service" && npm run --silent build)

export CARGO_TARGET_DIR=$root/target/bench-workspaces
echo "building the generated api (cargo build --release -p api)"
(cd "$work/benchws" && cargo build --release --quiet -p api)
api_bin=$CARGO_TARGET_DIR/release/api
echo

# --- per database ------------------------------------------------------------------------------

# run_on LABEL DATABASE_URL
run_on() {
    local label=$1 url=$2 api_port nest_port token
    api_port=$(free_port)
    nest_port=$(free_port)
    echo "$label"
    DATABASE_URL=$url API_ADDR=127.0.0.1:$api_port AUTH_COOKIE_SECURE=false \
        RATE_LIMIT_AUTH_PER_IP_PER_MINUTE=100000 RUST_LOG=warn \
        start_server "$work/api.log" "http://127.0.0.1:$api_port/readyz" "$work/benchws" "$api_bin"
    token=$(curl -sf -H 'Content-Type: application/json' \
        -d "{\"email\": \"$email\", \"password\": \"$password\"}" \
        "http://127.0.0.1:$api_port/api/auth/register" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

    # Cold start: from the process's start to the first 200 from /readyz (migrations included,
    # already applied after the first database's run: the figure is the process's start).
    local start=$EPOCHREALTIME
    (cd "$service" && DATABASE_URL=$url NEST_ADDR=127.0.0.1:$nest_port NEST_LOG_LEVEL=warn \
        NEST_AUTH_JWKS_URL=http://127.0.0.1:$api_port/.well-known/jwks.json \
        exec "${server[@]}" node dist/main.js) >"$work/nest.log" 2>&1 &
    nest_pid=$!
    until curl -sf -o /dev/null "http://127.0.0.1:$nest_port/readyz"; do
        kill -0 "$nest_pid" 2>/dev/null || { cat "$work/nest.log" >&2; exit 1; }
        sleep 0.01
    done
    echo "  nest cold start to /readyz: $(seconds_since "$start") s"
    curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$nest_port/api/nest/me" ||
        { echo "the nest service refused the api's token:" >&2; cat "$work/nest.log" >&2; exit 1; }

    echo "  load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
    measure "Rust api GET /api/auth/me" "http://127.0.0.1:$api_port/api/auth/me" "$token" rust
    measure "nest GET /api/nest/me" "http://127.0.0.1:$nest_port/api/nest/me" "$token" nest
    # The machine may be busy with other work: the ratio of two runs back to back is the figure
    # that load changes least.
    echo "  nest / Rust: $(python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.3f}")' \
        "$(cat "$work/rps-nest")" "$(cat "$work/rps-rust")")   (load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
    kill "$nest_pid"
    wait "$nest_pid" 2>/dev/null || true
    nest_pid=
    stop_server
}

run_on "SQLite" "sqlite://$work/bench.db?mode=rwc"
if postgres_answers; then
    create_pg_db "bench_nest_$$"
    run_on "PostgreSQL" "postgres://postgres@127.0.0.1:5432/$pg_db"
    drop_pg_db
else
    echo "PostgreSQL: nothing answers on 127.0.0.1:5432, left out"
fi
