#!/usr/bin/env bash
# Requests per second and latency of the generated api's `GET /api/auth/me` (Bearer token),
# beside a bare axum handler returning a JSON body of the same size (scripts/bench/bare-axum)
# and Loco's SaaS starter's `GET /api/auth/current` (an HS512 JWT, then the user read by pid),
# measured in the same run on the same machine with wrk over loopback; then `/me` again while 16
# clients log in at once (argon2id at OWASP's parameters). On SQLite and, when one answers on
# 127.0.0.1:5432, on PostgreSQL. Also prints the release build time of the generated api and the
# crates in its Cargo.lock.
#
# Loco: the script installs its CLI when `loco` is not on the PATH (`cargo install loco
# --version $LOCO_VERSION --locked`), generates the starter once (`loco new --db sqlite --bg async
# --assets none`) into target/bench-loco/locobench and builds it in release with its own target
# directory, target/bench-loco/target; both are kept between runs. It runs in Loco's
# `production` environment, with the variables that environment requires. When any of that fails
# (no network for a first build, say), Loco is skipped with the reason and the rest still runs.
#
# Usage: scripts/bench-api.sh
# Settings (environment): DURATION=10 (seconds measured per run), WARMUP=2 (seconds of load
# before each measured run, discarded), CONNECTIONS=32 (wrk connections to the measured
# endpoint), LOGIN_CONNECTIONS=16 (clients logging in at once), PACE_MS=10 (pause of each
# connection between two requests in the paced runs), BENCH_PIN=1 (0: no taskset),
# LOCO_VERSION=1.2.0 (the Loco CLI installed when none is), LOCO=1 (0: leave Loco out).
#
# Two kinds of run. A saturating run sends the next request as soon as the answer is in: it
# measures throughput, and its latencies are mostly queueing (32 requests always in flight, so
# p50 is about 32 / throughput). A paced run keeps the load well below capacity (each connection
# waits PACE_MS between requests, at most about 3,200 req/s with the defaults): its latencies are
# service time plus stalls, which is what shows whether password hashing stalls the runtime.
#
# On a machine with several cores, wrk runs pinned to the first core the script may use and the
# server under test to the others (taskset), so that the load generator does not take CPU time
# from the server it measures. On 2 cores that is one core each: the api then sees one CPU, and
# its password hashing (one hash at a time) shares that core with the async runtime.
# PostgreSQL itself is not pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

duration=${DURATION:-10}
warmup=${WARMUP:-2}
connections=${CONNECTIONS:-32}
login_connections=${LOGIN_CONNECTIONS:-16}
pace_ms=${PACE_MS:-10}
email=ada@example.com
password=correct-horse-battery-staple-42

# --- tools -----------------------------------------------------------------------------------

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "wrk is missing: apt-get install wrk"
        apt-get install -y -qq wrk >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } || true
    fi
    command -v wrk >/dev/null || {
        echo "needs wrk, the HTTP load generator (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)" >&2
        exit 1
    }
fi
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

. scripts/bench/lib.sh
logins_pid=
cleanup() {
    [ -z "$logins_pid" ] || kill "$logins_pid" 2>/dev/null || true
    bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wrk scripts. Each one's `done` prints the figures (latencies in microseconds) on one line;
# paced.lua also makes each connection wait between requests, and login.lua logs in.
report='done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99), e.status,
        e.connect + e.read + e.write + e.timeout))
end
'
printf '%s' "$report" >"$work/saturating.lua"
printf 'function delay() return %s end\n%s' "$pace_ms" "$report" >"$work/paced.lua"
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n%s' \
    "'{\"email\": \"$email\", \"password\": \"$password\"}'" "$report" >"$work/login.lua"

# run_wrk NAME SCRIPT CONNECTIONS SECONDS URL [wrk options]: one wrk run with SCRIPT (a file in
# $work); keeps wrk's output in "$work/NAME.txt" and writes "$work/NAME.result": req/s, p50 ms,
# p99 ms, answers not 2xx, socket errors.
run_wrk() {
    local name=$1 script=$2 conns=$3 seconds=$4 url=$5
    shift 5
    "${client[@]}" wrk -t1 -c"$conns" -d"${seconds}s" --timeout 30s --latency \
        -s "$work/$script" "$@" "$url" >"$work/$name.txt"
    python3 - "$work/$name.txt" >"$work/$name.result" <<'PY'
import sys
line = next(l for l in open(sys.argv[1]) if l.startswith("RESULT "))
requests, duration_us, p50, p99, status, errors = map(int, line.split()[1:])
print(f"{requests / (duration_us / 1e6):.1f} {p50 / 1000:.2f} {p99 / 1000:.2f} {status} {errors}")
PY
}

# show NAME LABEL: prints the figures of run NAME.
show() {
    local rps p50 p99 status errors
    read -r rps p50 p99 status errors <"$work/$1.result"
    printf '  %-36s %9s req/s  p50 %8s ms  p99 %8s ms' "$2" "$rps" "$p50" "$p99"
    [ "$status" = 0 ] || printf '  (%s answers not 2xx!)' "$status"
    [ "$errors" = 0 ] || printf '  (%s socket errors)' "$errors"
    echo
}

# measure NAME SCRIPT URL [wrk options]: a warm-up, then the measured run, with $connections.
measure() {
    local name=$1 script=$2 url=$3
    shift 3
    "${client[@]}" wrk -t1 -c"$connections" -d"${warmup}s" -s "$work/$script" "$@" "$url" \
        >/dev/null
    run_wrk "$name" "$script" "$connections" "$duration" "$url" "$@"
}

# measure_under_logins NAME SCRIPT BASE_URL PATH [wrk options]: `measure`, while
# $login_connections clients log in from the start of the warm-up to the end of the measured run
# (their figures are run NAME-logins).
measure_under_logins() {
    local name=$1 script=$2 base=$3 path=$4
    shift 4
    run_wrk "$name-logins" login.lua "$login_connections" "$((warmup + duration))" \
        "$base/api/auth/login" &
    logins_pid=$!
    measure "$name" "$script" "$base$path" "$@"
    wait "$logins_pid"
    logins_pid=
}

rows=() # "label|run name" of the summary table

# --- the machine -----------------------------------------------------------------------------

print_machine
echo "runs: ${warmup} s warm-up then ${duration} s measured, 1 wrk thread, $connections connections;"
echo "      paced runs: each connection waits ${pace_ms} ms between requests"
echo

# --- builds ----------------------------------------------------------------------------------

export CARGO_TARGET_DIR=$root/target/bench-workspaces
if [ -d "$CARGO_TARGET_DIR/release" ]; then
    build_kind="warm: $CARGO_TARGET_DIR already held a release build"
else
    build_kind="cold: empty target directory"
fi
echo "building saaskit (release) and generating the default workspace"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --target-dir "$root/target"
"$root/target/release/saaskit" new benchws --yes --output "$work/benchws" >/dev/null
(cd "$work/benchws" && cargo fetch --quiet) # downloads are not build time
echo "building the generated api (cargo build --release -p api)"
start=$EPOCHREALTIME
(cd "$work/benchws" && cargo build --release --quiet -p api)
end=$EPOCHREALTIME
build_secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
crates=$(grep -c '^name = ' "$work/benchws/Cargo.lock")
echo "  ${build_secs} s ($build_kind); crates in Cargo.lock: $crates"
cargo build --release --quiet --manifest-path "$root/scripts/bench/bare-axum/Cargo.toml"

# Loco's starter: sets loco_bin, or prints why Loco is left out.
loco_bin=
loco_app=$root/target/bench-loco/locobench
loco_skip() { echo "  Loco left out: $1"; }
setup_loco() {
    local loco log=$work/loco-setup.log
    loco=$(command -v loco || true)
    [ -n "$loco" ] || [ ! -x "$HOME/.cargo/bin/loco" ] || loco=$HOME/.cargo/bin/loco
    if [ -z "$loco" ]; then
        echo "installing Loco's CLI (cargo install loco --version ${LOCO_VERSION:-1.2.0} --locked)"
        cargo install --quiet --locked loco --version "${LOCO_VERSION:-1.2.0}" >"$log" 2>&1 || {
            loco_skip "cargo install loco failed (offline?); its output: $(tail -3 "$log")"
            return
        }
        loco=$HOME/.cargo/bin/loco
    fi
    if [ ! -f "$loco_app/Cargo.toml" ]; then
        mkdir -p "${loco_app%/*}"
        "$loco" new --name locobench --db sqlite --bg async --assets none \
            --path "${loco_app%/*}" --allow-in-git-repo >"$log" 2>&1 || {
            loco_skip "loco new failed: $(tail -3 "$log")"
            return
        }
    fi
    echo "building Loco's starter ($("$loco" --version), release, target/bench-loco/target)"
    (cd "$loco_app" && CARGO_TARGET_DIR=$root/target/bench-loco/target \
        cargo build --release --quiet) >"$log" 2>&1 || {
        loco_skip "its release build failed (offline, or a crate missing?): $(tail -3 "$log")"
        return
    }
    loco_bin=$root/target/bench-loco/target/release/locobench-cli
}
[ "${LOCO:-1}" = 0 ] || setup_loco
echo

# --- bare axum -------------------------------------------------------------------------------

port=$(free_port)
echo "bare axum handler (scripts/bench/bare-axum)"
start_server "$work/bare.log" "http://127.0.0.1:$port/" "$work" \
    env BARE_ADDR="127.0.0.1:$port" "$CARGO_TARGET_DIR/release/bare-axum"
bare_body=$(curl -s "http://127.0.0.1:$port/" | wc -c)
measure bare saturating.lua "http://127.0.0.1:$port/"
show bare "GET /"
stop_server
read -r bare_rps _ <"$work/bare.result"
rows+=("bare axum handler|bare")
echo

# --- the generated api -----------------------------------------------------------------------

# bench_api LABEL DATABASE_URL
bench_api() {
    local label=$1 database_url=$2
    local base
    base="http://127.0.0.1:$(free_port)"
    echo "generated api on $label"
    # In the workspace, so that the api reads its .env (the variables given here win over it).
    start_server "$work/api-$label.log" "$base/healthz" "$work/benchws" \
        env API_ADDR="${base#http://}" DATABASE_URL="$database_url" RUST_LOG=warn \
        AUTH_COOKIE_SECURE=false RATE_LIMIT_AUTH_PER_IP_PER_MINUTE=1000000 \
        RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE=1000000 RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR=1000000 \
        "$CARGO_TARGET_DIR/release/api"
    local token
    token=$(curl -sf -X POST "$base/api/auth/register" -H 'Content-Type: application/json' \
        -d "{\"email\": \"$email\", \"password\": \"$password\", \"full_name\": \"Ada\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
    local auth=(-H "Authorization: Bearer $token")
    local me_body
    me_body=$(curl -sf "$base/api/auth/me" "${auth[@]}" | wc -c)
    [ "$me_body" = "$bare_body" ] ||
        echo "  note: /me answers $me_body bytes of JSON, the bare handler $bare_body"

    # For reference: the api's middleware alone, and one trivial query through the pool.
    if [ "$label" = sqlite ]; then
        measure healthz saturating.lua "$base/healthz"
        show healthz "GET /healthz"
        rows+=("api /healthz (middleware, no query)|healthz")
    fi
    measure "readyz-$label" saturating.lua "$base/readyz"
    show "readyz-$label" "GET /readyz"
    rows+=("api /readyz, $label (SELECT 1)|readyz-$label")

    measure "me-$label" saturating.lua "$base/api/auth/me" "${auth[@]}"
    show "me-$label" "GET /api/auth/me"
    measure_under_logins "me-$label-busy" saturating.lua "$base" /api/auth/me "${auth[@]}"
    show "me-$label-busy" "GET /api/auth/me, clients logging in"
    show "me-$label-busy-logins" "  POST /api/auth/login, $login_connections clients"
    measure "paced-$label" paced.lua "$base/api/auth/me" "${auth[@]}"
    show "paced-$label" "GET /api/auth/me, paced"
    measure_under_logins "paced-$label-busy" paced.lua "$base" /api/auth/me "${auth[@]}"
    show "paced-$label-busy" "GET /api/auth/me, paced, logins"
    show "paced-$label-busy-logins" "  POST /api/auth/login, $login_connections clients"
    stop_server
    rows+=(
        "/me, $label|me-$label"
        "/me, $label, $login_connections clients logging in|me-$label-busy"
        "/me paced, $label|paced-$label"
        "/me paced, $label, $login_connections logging in|paced-$label-busy"
    )
    echo
}

# --- Loco's starter --------------------------------------------------------------------------

# bench_loco LABEL DATABASE_URL: `GET /api/auth/current` with a Bearer token.
bench_loco() {
    local label=$1 database_url=$2
    [ -n "$loco_bin" ] || return 0
    local port base secret
    port=$(free_port)
    base="http://127.0.0.1:$port"
    # Loco reads its HS512 key as base64 (`jsonwebtoken`'s `from_base64_secret`).
    secret=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(64)).decode())')
    echo "Loco's starter on $label"
    # `production` takes no default for secrets and addresses: the mailer's are never used here
    # (registration's welcome mail fails in the background, which the request does not wait for).
    start_server "$work/loco-$label.log" "$base/_ping" "$loco_app" \
        env LOCO_ENV=production PORT="$port" BINDING=127.0.0.1 HOST="$base" LOG_LEVEL=warn \
        DATABASE_URL="$database_url" JWT_SECRET="$secret" MAILER_HOST=127.0.0.1 \
        MAILER_USER=bench MAILER_PASSWORD=bench "$loco_bin" start
    curl -sf -o /dev/null -X POST "$base/api/auth/register" -H 'Content-Type: application/json' \
        -d "{\"email\": \"$email\", \"password\": \"$password\", \"name\": \"Ada\"}"
    local token
    token=$(curl -s -X POST "$base/api/auth/login" -H 'Content-Type: application/json' \
        -d "{\"email\": \"$email\", \"password\": \"$password\"}" |
        python3 -c 'import json, sys
try: print(json.load(sys.stdin)["token"])
except Exception: pass')
    if [ -z "$token" ]; then
        # Some versions refuse the password they stored: sign the token Loco would have issued.
        local pid
        if [ "$label" = sqlite ]; then
            # SeaORM stores the UUID as 16 bytes on SQLite.
            pid=$(python3 -c 'import sqlite3, sys, uuid
pid = sqlite3.connect(sys.argv[1]).execute("SELECT pid FROM users WHERE email = ?", (sys.argv[2],)).fetchone()[0]
print(uuid.UUID(bytes=pid) if isinstance(pid, bytes) else pid)' "$loco_db_file" "$email")
        else
            pid=$(psql -h 127.0.0.1 -U postgres -d "$pg_db" -tAc \
                "SELECT pid FROM users WHERE email = '$email'")
        fi
        token=$(python3 - "$secret" "$pid" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret, pid = base64.b64decode(sys.argv[1]), sys.argv[2]
b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=")
part = lambda value: b64(json.dumps(value, separators=(",", ":")).encode())
signed = part({"typ": "JWT", "alg": "HS512"}) + b"." + part({"pid": pid, "exp": int(time.time()) + 3600})
print((signed + b"." + b64(hmac.new(secret, signed, hashlib.sha512).digest())).decode())
PY
        )
        echo "  (its login refused the password: token signed with its JWT_SECRET)"
    fi
    local auth=(-H "Authorization: Bearer $token")
    curl -sf -o /dev/null "$base/api/auth/current" "${auth[@]}" || {
        echo "  GET /api/auth/current refused the token: Loco left out on $label"
        stop_server
        return 0
    }
    measure "loco-$label" saturating.lua "$base/api/auth/current" "${auth[@]}"
    show "loco-$label" "GET /api/auth/current"
    stop_server
    rows+=("Loco /api/auth/current, $label|loco-$label")
    echo
}

bench_api sqlite "sqlite://$work/bench.db?mode=rwc"
loco_db_file=$work/loco.db
bench_loco sqlite "sqlite://$loco_db_file?mode=rwc"

if postgres_answers; then
    if create_pg_db "saaskit_bench_$$"; then
        bench_api postgres "postgres://postgres@127.0.0.1:5432/$pg_db"
        drop_pg_db
    else
        echo "PostgreSQL answers but the database could not be created: skipped"
        pg_db=
    fi
    if [ -n "$loco_bin" ]; then
        if create_pg_db "loco_bench_$$"; then
            bench_loco postgres "postgres://postgres@127.0.0.1:5432/$pg_db"
            drop_pg_db
        else
            echo "PostgreSQL answers but Loco's database could not be created: skipped"
            pg_db=
        fi
    fi
else
    echo "no PostgreSQL on 127.0.0.1:5432 (pg_isready): skipped"
    echo
fi

# --- summary ---------------------------------------------------------------------------------

printf '%-40s %9s %9s %9s %8s\n' "" "req/s" "p50 ms" "p99 ms" "vs bare"
for row in "${rows[@]}"; do
    name=${row#*|}
    read -r rps p50 p99 _ <"$work/$name.result"
    if [[ $name == paced* ]]; then
        ratio="paced"
    else
        ratio=$(awk -v a="$rps" -v b="$bare_rps" 'BEGIN { printf "%.1f %%", 100 * a / b }')
    fi
    printf '%-40s %9.0f %9s %9s %8s\n' "${row%|*}" "$rps" "$p50" "$p99" "$ratio"
done
echo
verdict() { awk -v ok="$1" 'BEGIN { print (ok ? "met" : "NOT met") }'; }
for label in sqlite postgres; do
    [ -f "$work/me-$label.result" ] || continue
    read -r rps _ <"$work/me-$label.result"
    read -r _ _ busy_p99 _ <"$work/me-$label-busy.result"
    read -r _ _ paced_p99 _ <"$work/paced-$label-busy.result"
    percent=$(awk -v a="$rps" -v b="$bare_rps" 'BEGIN { printf "%.1f", 100 * a / b }')
    echo "$label: /me at $percent % of the bare handler's req/s (target: at least 30 %): $(verdict "$(awk -v p="$percent" 'BEGIN { print p >= 30 }')")"
    if [ -f "$work/loco-$label.result" ]; then
        read -r loco_rps _ <"$work/loco-$label.result"
        times=$(awk -v a="$rps" -v b="$loco_rps" 'BEGIN { printf "%.2f", a / b }')
        target=$([ "$label" = sqlite ] && echo 2 || echo 1)
        echo "$label: /me at ${times}x Loco's /api/auth/current (target: at least ${target}x): $(verdict "$(awk -v t="$times" -v g="$target" 'BEGIN { print t >= g }')")"
    fi
    # Judged on the paced run: a stall of the runtime shows there as latency, while the p99 of a
    # saturating run is mostly the queue of $connections requests in flight (see the top).
    echo "$label: /me p99 while $login_connections clients log in: $paced_p99 ms paced (target: under 5 ms): $(verdict "$(awk -v b="$paced_p99" 'BEGIN { print b < 5 }')"); saturating: $busy_p99 ms"
    for kind in me paced; do
        read -r rps p50 p99 _ <"$work/$kind-$label-busy-logins.result"
        run=$([ "$kind" = me ] && echo saturating || echo paced)
        echo "$label: logins during the $run /me run: $rps per second ($login_connections clients), p50 $p50 ms, p99 $p99 ms"
    done
done
echo "release build of the generated api: ${build_secs} s ($build_kind); crates in Cargo.lock: $crates"
