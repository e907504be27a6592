#!/usr/bin/env bash
# The job queue (module `jobs`) of the generated workspace: how fast jobs are enqueued, how fast
# two worker instances process them, and how long a job waits for a worker when the queue is
# idle (pickup latency, p50 and p99). On SQLite and, when one answers on 127.0.0.1:5432, on
# PostgreSQL (a fresh database for each backend, dropped at the end).
#
# Usage: scripts/bench-jobs.sh
# Settings (environment): JOBS=50000 (no-op jobs of the enqueue and processing runs),
# ENQUEUE_BATCH=100 (jobs per enqueueing transaction), ENQUEUE_TASKS=4 (concurrent enqueueing
# transactions), TRICKLE=300 (jobs of the latency run, one per transaction, TRICKLE_GAP_MS=20
# apart), BACKENDS="sqlite postgres", BENCH_PIN=1 (0: no taskset), BENCH_WORKSPACE (an existing
# generated workspace instead of a fresh one). The workers run with the queue's defaults
# (JOBS_BATCH_SIZE=100, 2 loops each) unless JOBS_BATCH_SIZE or BENCH_JOBS_CONCURRENCY are set.
#
# The jobs are of a kind of the benchmark's own, `bench.noop`, whose handler only notes how long
# the job waited: scripts/bench/jobs-load, a program built inside the generated workspace on its
# `shared` crate, enqueues them (`jobs::enqueue_all`, BATCH per transaction) and runs the
# workers (`Jobs::run_worker`, as `<service> worker` does). Processing rate: JOBS over the time
# from the workers' start (the queue full) to the last job marked succeeded. Pickup latency:
# from a job's enqueueing to its handler's start, each job enqueued in its own transaction while
# both workers are idle (woken by PostgreSQL's NOTIFY, or their poll on SQLite:
# JOBS_POLL_INTERVAL_MS).
#
# The enqueueing program runs pinned to the first CPU and the workers to the others (taskset),
# as in scripts/bench-webhooks.sh; PostgreSQL is not pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

jobs=${JOBS:-50000}
enqueue_batch=${ENQUEUE_BATCH:-100}
enqueue_tasks=${ENQUEUE_TASKS:-4}
trickle=${TRICKLE:-300}
trickle_gap_ms=${TRICKLE_GAP_MS:-20}
backends=${BACKENDS:-sqlite postgres}

for tool in cargo python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

. scripts/bench/lib.sh
workers=()
stop_workers() {
    for pid in "${workers[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${workers[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    workers=()
}
trap 'stop_workers; bench_cleanup' EXIT
trap 'exit 130' INT TERM

# query BACKEND DATABASE SQL: the one row SQL returns, columns separated by spaces.
query() {
    local backend=$1 database=$2 sql=$3
    if [ "$backend" = postgres ]; then
        psql -h 127.0.0.1 -U postgres -d "$database" -XAtq -F ' ' -c "$sql"
    else
        python3 -c '
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
print(*db.execute(sys.argv[2]).fetchone())' "$database" "$sql"
    fi
}

now_ms() { python3 -c 'import time; print(int(time.time() * 1000))'; }

print_machine
echo "runs: $jobs no-op jobs ($enqueue_batch per transaction, $enqueue_tasks at once), two worker" \
    "instances; latency: $trickle jobs ${trickle_gap_ms} ms apart"
echo

export CARGO_TARGET_DIR=$root/target/bench-workspaces
if [ -n "${BENCH_WORKSPACE:-}" ]; then
    workspace=$(cd "$BENCH_WORKSPACE" && pwd)
else
    echo "building saaskit (release) and generating the default workspace"
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --target-dir "$root/target"
    workspace=$work/benchws
    "$root/target/release/saaskit" new benchws --yes --output "$workspace" >/dev/null
fi
# The load program joins the workspace (a copy when it is the caller's own) as a member.
build=$work/build
cp -a "$workspace" "$build"
cp -a "$root/scripts/bench/jobs-load" "$build/jobs-load"
mv "$build/jobs-load/Cargo.toml.in" "$build/jobs-load/Cargo.toml"
sed -i 's/^members = \[/members = ["jobs-load", /' "$build/Cargo.toml"
echo "building the api (for its migrate command) and scripts/bench/jobs-load (release)"
(cd "$build" && cargo build --release --quiet -p api -p jobs-load)
load=$CARGO_TARGET_DIR/release/jobs-load
api=$CARGO_TARGET_DIR/release/api

# start_workers URL: two worker instances on the server CPUs.
start_workers() {
    local url=$1 n
    for n in 1 2; do
        (cd "$build" && exec env DATABASE_URL="$url" RUST_LOG=warn JOBS_PURGE_SCHEDULE=off \
            LATENCY_FILE="$work/latency-$n" "${server[@]}" "$load" work) >"$work/worker-$n.log" 2>&1 &
        workers+=("$!")
    done
}

# wait_done BACKEND DATABASE COUNT: until COUNT no-op jobs succeeded.
wait_done() {
    local done
    for _ in $(seq 1200); do
        done=$(query "$1" "$2" "SELECT count(*) FROM jobs WHERE kind = 'bench.noop' AND state = 'succeeded'")
        [ "$done" -ge "$3" ] && return 0
        sleep 0.25
    done
    echo "  only $done of $3 jobs succeeded within 300 s" >&2
    exit 1
}

rows=()
bench() {
    local backend=$1 url=$2 database=$3
    echo "$backend"
    (cd "$build" && DATABASE_URL="$url" RUST_LOG=warn "$api" migrate)

    local enqueue_rate
    enqueue_rate=$(cd "$build" && DATABASE_URL="$url" "${client[@]}" "$load" enqueue "$jobs" \
        "$enqueue_batch" "$enqueue_tasks" | sed -n 's/^RESULT rate=\([0-9]*\).*/\1/p')
    echo "  enqueued: $enqueue_rate jobs/s"

    local started last secs process_rate
    started=$(now_ms)
    start_workers "$url"
    wait_done "$backend" "$database" "$jobs"
    stop_workers
    last=$(query "$backend" "$database" "SELECT max(finished_at_ms) FROM jobs WHERE kind = 'bench.noop'")
    secs=$(awk -v a="$started" -v b="$last" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
    process_rate=$(awk -v n="$jobs" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
    local twice
    twice=$(query "$backend" "$database" "SELECT count(*) FROM jobs WHERE kind = 'bench.noop' AND attempts <> 1")
    echo "  processed by two workers: $process_rate jobs/s ($jobs in $secs s; jobs run more than once: $twice)"

    rm -f "$work"/latency-*
    start_workers "$url"
    sleep 1
    (cd "$build" && DATABASE_URL="$url" "${client[@]}" "$load" trickle "$trickle" "$trickle_gap_ms")
    wait_done "$backend" "$database" "$((jobs + trickle))"
    stop_workers
    local p50 p99
    read -r p50 p99 < <(cat "$work"/latency-* | python3 -c '
import sys
values = sorted(int(line) for line in sys.stdin if line.strip())
pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
print(pick(0.50), pick(0.99))')
    echo "  pickup latency, idle queue: p50 $p50 ms, p99 $p99 ms"
    rows+=("$backend $enqueue_rate $process_rate $p50 $p99")
    echo
}

for backend in $backends; do
    case $backend in
        sqlite) bench sqlite "sqlite://$work/jobs.db?mode=rwc" "$work/jobs.db" ;;
        postgres)
            if ! postgres_answers; then
                echo "no PostgreSQL on 127.0.0.1:5432 (pg_isready): skipped"
                continue
            fi
            create_pg_db "saaskit_jobs_bench_$$"
            bench postgres "postgres://postgres@127.0.0.1:5432/$pg_db" "$pg_db"
            drop_pg_db
            ;;
        *) echo "unknown backend $backend (sqlite or postgres)" >&2; exit 1 ;;
    esac
done

printf '%-10s %12s %14s %10s %10s\n' backend "enqueued/s" "processed/s" "p50 ms" "p99 ms"
for row in "${rows[@]}"; do
    read -r backend enqueue_rate process_rate p50 p99 <<<"$row"
    printf '%-10s %12s %14s %10s %10s\n' "$backend" "$enqueue_rate" "$process_rate" "$p50" "$p99"
done
