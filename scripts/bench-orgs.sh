#!/usr/bin/env bash
# What the organizations' membership check costs: `GET /api/auth/me` (the token check and the
# user) beside one org-scoped read, `GET /api/orgs/{org}` (the same token check, the `Tenant`
# extractor's membership lookup, then the organization's row), in one run, on SQLite and, when
# one answers on 127.0.0.1:5432, on PostgreSQL.
#
# Two measures:
# - throughput with wrk (1 thread, CONNECTIONS connections, WARMUP s then DURATION s per run),
#   the two endpoints alternating for ROUNDS rounds so that a change of the machine's load
#   touches both (on a shared machine the absolute figures move; their ratio is the point);
# - instructions per request under callgrind (valgrind), which do not depend on the machine's
#   load: the api runs under `valgrind --tool=callgrind --instr-atstart=no`, instrumentation is
#   switched on after start-up and a warm-up, then for each endpoint the counters are zeroed,
#   REQUESTS requests are sent one after another on one keep-alive connection, and the counters
#   dumped: total instructions (Ir) / REQUESTS. The api's job worker is off (API_JOBS_WORKER=false)
#   so that its polling is not counted; the request's own work in every thread is.
# On PostgreSQL it also counts the transactions the database commits per request
# (pg_stat_database.xact_commit, before and after REQUESTS requests): a statement outside a
# transaction is one, so this is the number of round trips that end one.
#
# Usage: scripts/bench-orgs.sh
# Settings: DURATION=10, WARMUP=2, CONNECTIONS=32, ROUNDS=3, REQUESTS=500, BENCH_PIN=1,
# CALLGRIND=1 (0: skip the callgrind part), THROUGHPUT=1 (0: skip wrk),
# SAASKIT_BIN (a saaskit binary to generate the workspace with, instead of building this
# repository's debug one), API_BIN (an api binary of the default workspace to measure instead of
# building one in release: a debug build's figures say how the two endpoints compare, not what a
# release build serves; the binary carries its migrations, so one of another commit measures that
# commit). Needs the Rust toolchain, curl, python3, wrk and, for instruction counts, valgrind (as
# root the script installs wrk and valgrind with apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

duration=${DURATION:-10}
warmup=${WARMUP:-2}
connections=${CONNECTIONS:-32}
rounds=${ROUNDS:-3}
requests=${REQUESTS:-500}
password=correct-horse-battery-staple-42

for tool in wrk valgrind; do
    if ! command -v "$tool" >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "$tool is missing: apt-get install $tool"
        apt-get install -y -qq "$tool" >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$tool" >/dev/null 2>&1; } || true
    fi
done
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
callgrind=${CALLGRIND:-1}
if [ "$callgrind" = 1 ] && ! command -v valgrind >/dev/null; then
    echo "valgrind is missing: instruction counts left out"
    callgrind=0
fi

. scripts/bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

printf 'done = function(summary, latency, requests)
    io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99), summary.errors.status))
end
' >"$work/report.lua"

# rate NAME URL: a warm-up then a measured wrk run with the token; "req/s p50_ms p99_ms non2xx"
# into $work/NAME.result.
rate() {
    local name=$1 url=$2
    "${client[@]}" wrk -t1 -c"$connections" -d"${warmup}s" -H "Authorization: Bearer $token" \
        "$url" >/dev/null
    "${client[@]}" wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$work/report.lua" \
        -H "Authorization: Bearer $token" "$url" >"$work/$name.txt"
    python3 - "$work/$name.txt" >"$work/$name.result" <<'PY'
import sys
line = next(l for l in open(sys.argv[1]) if l.startswith("RESULT "))
n, us, p50, p99, status = map(int, line.split()[1:])
print(f"{n / (us / 1e6):.0f} {p50 / 1000:.2f} {p99 / 1000:.2f} {status}")
PY
}

print_machine
echo "wrk: ${warmup} s warm-up then ${duration} s measured, 1 thread, $connections connections, $rounds rounds"
echo

export CARGO_TARGET_DIR=$root/target/bench-workspaces
if [ -n "${SAASKIT_BIN:-}" ]; then
    saaskit_bin=$(realpath "$SAASKIT_BIN")
else
    echo "building saaskit"
    cargo build --quiet --manifest-path "$root/Cargo.toml" --target-dir "$root/target" --bin saaskit
    saaskit_bin=$root/target/debug/saaskit
fi
echo "generating the default workspace with $saaskit_bin"
"$saaskit_bin" new benchws --yes --output "$work/benchws" >/dev/null
if [ -n "${API_BIN:-}" ]; then
    api_bin=$(realpath "$API_BIN")
    echo "measuring $api_bin (API_BIN), not a release build"
else
    echo "building its api (release)"
    (cd "$work/benchws" && cargo build --release --quiet -p api)
    api_bin=$CARGO_TARGET_DIR/release/api
fi
api_env=(RUST_LOG=warn AUTH_COOKIE_SECURE=false API_JOBS_WORKER=false
    RATE_LIMIT_AUTH_PER_IP_PER_MINUTE=1000000 RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE=1000000
    RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR=1000000)

# sign_up BASE: registers an account (its personal organization comes with it); sets `token` and
# `org`.
sign_up() {
    local base=$1 reply
    reply=$(curl -sf -X POST "$base/api/auth/register" -H 'Content-Type: application/json' \
        -d "{\"email\": \"ada@example.com\", \"password\": \"$password\", \"full_name\": \"Ada\"}")
    token=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["access_token"])' "$reply")
    org=$(curl -sf "$base/api/orgs" -H "Authorization: Bearer $token" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
}

# sequential URL COUNT: COUNT GETs of URL one after another on one connection.
sequential() {
    local url=$1 count=$2 urls=()
    # Each URL with its own `-o`: curl pairs them in order.
    for _ in $(seq "$count"); do urls+=(-o /dev/null "$url"); done
    curl -sf -H "Authorization: Bearer $token" "${urls[@]}"
}

# throughput LABEL DATABASE_URL
throughput() {
    local label=$1 database_url=$2 base
    base="http://127.0.0.1:$(free_port)"
    start_server "$work/api-$label.log" "$base/healthz" "$work/benchws" \
        env API_ADDR="${base#http://}" DATABASE_URL="$database_url" "${api_env[@]}" "$api_bin"
    sign_up "$base"
    echo "$label (GET /api/orgs/$org):"
    for round in $(seq "$rounds"); do
        rate "me-$label-$round" "$base/api/auth/me"
        rate "org-$label-$round" "$base/api/orgs/$org"
        local me org_rps
        read -r me _ <"$work/me-$label-$round.result"
        read -r org_rps _ <"$work/org-$label-$round.result"
        printf '  round %s: /me %7s req/s (p50 %s ms, p99 %s ms)   /orgs/{org} %7s req/s (p50 %s ms, p99 %s ms)   ratio %s\n' \
            "$round" "$me" "$(cut -d' ' -f2 "$work/me-$label-$round.result")" \
            "$(cut -d' ' -f3 "$work/me-$label-$round.result")" "$org_rps" \
            "$(cut -d' ' -f2 "$work/org-$label-$round.result")" \
            "$(cut -d' ' -f3 "$work/org-$label-$round.result")" \
            "$(awk -v a="$org_rps" -v b="$me" 'BEGIN { printf "%.2f", a / b }')"
    done
    if [[ $database_url == postgres* ]]; then
        # The database's commits around COUNT requests, less those of the same measurement
        # around none (psql's own, the statistics' flush).
        local db=${database_url##*/} idle
        commits() {
            sleep 1.5
            psql -h 127.0.0.1 -U postgres -d "$db" -tAc \
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        }
        around() {
            local before after
            before=$(commits)
            [ "$2" = 0 ] || sequential "$1" "$2"
            after=$(commits)
            echo $((after - before))
        }
        idle=$(around "$base/api/auth/me" 0)
        for path in /api/auth/me "/api/orgs/$org"; do
            awk -v d="$(around "$base$path" "$requests")" -v i="$idle" -v n="$requests" -v p="$path" \
                'BEGIN { printf "  PostgreSQL transactions committed per request, %s: %.2f\n", p, (d - i) / n }'
        done
    fi
    stop_server
}

# instructions LABEL DATABASE_URL
instructions() {
    local label=$1 database_url=$2 base out=$work/callgrind-$1
    base="http://127.0.0.1:$(free_port)"
    mkdir -p "$out"
    start_server "$work/callgrind-$label.log" "$base/healthz" "$work/benchws" \
        env API_ADDR="${base#http://}" DATABASE_URL="$database_url" "${api_env[@]}" \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out" \
        "$api_bin"
    sign_up "$base"
    # The subshell start_server made execs taskset, env, then valgrind, which runs the api in
    # its own process: the same id.
    local pid=$server_pid
    callgrind_control -i on "$pid" >/dev/null
    sequential "$base/api/auth/me" 50
    sequential "$base/api/orgs/$org" 50
    echo "$label, instructions per request under callgrind ($requests requests each):"
    local me_ir
    for path in /api/auth/me "/api/orgs/$org"; do
        callgrind_control -z "$pid" >/dev/null
        sequential "$base$path" "$requests"
        callgrind_control -d "$pid" >/dev/null
        local dump ir
        sleep 1
        dump=$(ls -t "$out"/callgrind.out.* | head -1)
        ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
        local per=$((ir / requests))
        if [ "$path" = /api/auth/me ]; then
            me_ir=$per
            printf '  %-24s %9d Ir\n' "$path" "$per"
        else
            printf '  %-24s %9d Ir  (%+d Ir, %.2fx /me)\n' "/api/orgs/{org}" "$per" \
                "$((per - me_ir))" "$(awk -v a="$per" -v b="$me_ir" 'BEGIN { print a / b }')"
        fi
    done
    stop_server
}

[ "${THROUGHPUT:-1}" = 0 ] || throughput sqlite "sqlite://$work/bench.db?mode=rwc"
[ "$callgrind" = 0 ] || instructions sqlite "sqlite://$work/callgrind.db?mode=rwc"
if postgres_answers; then
    create_pg_db "bench_orgs_$$"
    [ "${THROUGHPUT:-1}" = 0 ] || throughput postgres "postgres://postgres@127.0.0.1:5432/$pg_db"
    drop_pg_db
    if [ "$callgrind" = 1 ]; then
        create_pg_db "bench_orgs_cg_$$"
        instructions postgres "postgres://postgres@127.0.0.1:5432/$pg_db"
        drop_pg_db
    fi
fi
