#!/usr/bin/env bash
# Durable ingestion of signed Stripe events by the generated webhooks service: how many events
# per second `POST /api/webhooks/stripe` acknowledges (each answer 200 only once the event and its
# processing, or its job, are committed), with latencies; then how long the service's worker takes until every event
# is processed (or ignored), and whether any was lost. On SQLite and, when one answers on
# 127.0.0.1:5432, on PostgreSQL (a fresh database for each run, dropped at the end).
#
# Usage: scripts/bench-webhooks.sh
# Settings (environment): EVENTS=50000 (distinct events per run), CONNECTIONS=64 (keep-alive
# connections of the load generator, each with one request in flight), KINDS="ignored
# subscription" (one run per kind and backend: `ignored` is an event type no handler takes,
# `subscription` a customer.subscription.updated that the billing handler upserts into
# `subscriptions`, `mix` half of each), DUPLICATES=0 (share of the events also sent a second
# time, which must be answered `duplicate` and stored once), BACKENDS="sqlite postgres",
# PROCESS_TIMEOUT=300 (seconds to wait for the worker after the load), BENCH_PIN=1 (0: no
# taskset), BENCH_WORKSPACE (an existing generated workspace to measure instead of generating
# one). DATABASE_MAX_CONNECTIONS, WEBHOOKS_JOBS_CONCURRENCY, JOBS_BATCH_SIZE and
# WEBHOOKS_PROCESS_ON_RECEIPT, when set, are passed to the service; otherwise it runs with its
# workspace's `.env` (10, 2, 100 and true by default). The events are processed at receipt, in
# the transaction that stores them, or (WEBHOOKS_PROCESS_ON_RECEIPT=false, or when that fails)
# by the service's jobs worker (`webhooks.process` jobs).
#
# The load generator (scripts/bench/webhook-load) builds every body and signature before it
# starts the clock, and sends each connection's next event as soon as the previous answer is in:
# the accepted rate is the service's throughput, and its latencies are mostly queueing
# (CONNECTIONS requests always in flight, so p50 is about CONNECTIONS / rate). "Processed end to
# end" is the number of events divided by the time from the first request sent to the last
# attempt recorded (webhook_attempts.finished_at_ms, or for a first attempt at receipt the
# event's receipt_finished_at_ms): the worker runs in the same
# process and starts while events are still arriving. Lost is the number of events not in
# `webhook_events` with the status their type should end in; the script also checks that every
# event was attempted exactly once and that no webhook job is left unfinished. Per event it also
# prints the CPU time of the service's process and (PostgreSQL) of the server processes of its
# connections, from /proc, and on PostgreSQL this database's commits and rollbacks and the
# server's write-ahead log records, bytes and flushes: figures that other work on a shared
# machine disturbs far less than the rates.
#
# On a machine with several cores, the load generator runs pinned to the first core the script
# may use and the service to the others (taskset), as in scripts/bench-api.sh: on 2 cores, one
# core each. PostgreSQL itself is not pinned: it shares both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

events=${EVENTS:-50000}
connections=${CONNECTIONS:-64}
kinds=${KINDS:-ignored subscription}
duplicates=${DUPLICATES:-0}
backends=${BACKENDS:-sqlite postgres}
process_timeout=${PROCESS_TIMEOUT:-300}

# --- tools -----------------------------------------------------------------------------------

for tool in cargo curl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

. scripts/bench/lib.sh
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# query BACKEND DATABASE SQL: prints the one row SQL returns, columns separated by spaces. Runs
# on the load generator's CPU, out of the service's way.
query() {
    local backend=$1 database=$2 sql=$3
    if [ "$backend" = postgres ]; then
        "${client[@]}" psql -h 127.0.0.1 -U postgres -d "$database" -XAtq -F ' ' -c "$sql"
    else
        "${client[@]}" python3 -c '
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
print(*db.execute(sys.argv[2]).fetchone())' "$database" "$sql"
    fi
}

failures=0
rows=() # "backend|kind|result file" of the summary table

# --- the machine -----------------------------------------------------------------------------

print_machine
echo "runs: $events events per run over $connections keep-alive connections; kinds: $kinds;" \
    "duplicates: $duplicates"
echo

# --- builds ----------------------------------------------------------------------------------

# BENCH_TARGET_DIR: another target directory, for a second workspace measured beside the first
# (cargo tells two generated workspaces of one name apart by the files' times only).
export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$root/target/bench-workspaces}
if [ -n "${BENCH_WORKSPACE:-}" ]; then
    workspace=$(cd "$BENCH_WORKSPACE" && pwd)
    echo "measuring the workspace in $workspace"
else
    echo "building saaskit (release) and generating the default workspace"
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --target-dir "$root/target"
    workspace=$work/benchws
    "$root/target/release/saaskit" new benchws --yes --output "$workspace" >/dev/null
fi
echo "building the generated webhooks service (cargo build --release -p webhooks)"
(cd "$workspace" && cargo build --release --quiet -p webhooks)
echo "building the load generator (scripts/bench/webhook-load)"
cargo build --release --quiet --manifest-path "$root/scripts/bench/webhook-load/Cargo.toml"
load=$CARGO_TARGET_DIR/release/webhook-load
# Stripe signs with one secret; the service accepts any of its comma-separated list.
secret=$(sed -n 's/^STRIPE_WEBHOOK_SECRETS=//p' "$workspace/.env" | cut -d, -f1)
[ -n "$secret" ] || { echo "no STRIPE_WEBHOOK_SECRETS in $workspace/.env" >&2; exit 1; }
service_env=(RUST_LOG=warn)
for key in DATABASE_MAX_CONNECTIONS WEBHOOKS_JOBS_CONCURRENCY JOBS_BATCH_SIZE \
    WEBHOOKS_PROCESS_ON_RECEIPT; do
    [ -z "${!key:-}" ] || service_env+=("$key=${!key}")
done
setting() { # the service's value of setting $1 (default $2): ours, else its .env's, else $2
    local value=${!1:-}
    [ -n "$value" ] || value=$(sed -n "s/^$1=//p" "$workspace/.env")
    echo "${value:-$2}"
}
echo "service settings: DATABASE_MAX_CONNECTIONS=$(setting DATABASE_MAX_CONNECTIONS 10)" \
    "WEBHOOKS_JOBS_CONCURRENCY=$(setting WEBHOOKS_JOBS_CONCURRENCY 2)" \
    "JOBS_BATCH_SIZE=$(setting JOBS_BATCH_SIZE 100)" \
    "WEBHOOKS_PROCESS_ON_RECEIPT=$(setting WEBHOOKS_PROCESS_ON_RECEIPT true) RUST_LOG=warn"
echo

# cpu_ticks PID...: the user and system CPU time the processes used so far, in clock ticks.
cpu_ticks() {
    local total=0 pid fields
    for pid in "$@"; do
        # The fields after the command's name, which is in parentheses: utime is the 12th.
        fields=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a fields <<<"$fields"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# service_backends DATABASE: the pids of the PostgreSQL processes serving the service's
# connections to DATABASE (psql's, this script's, are left out).
service_backends() {
    "${client[@]}" psql -h 127.0.0.1 -U postgres -d "$1" -XAtq -c "
        SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND application_name <> 'psql'
            AND backend_type = 'client backend'"
}

# PostgreSQL's counters a run reads before and after (see `bench`), in one row.
pg_counters="SELECT xact_commit, pg_current_wal_lsn() - '0/0', wal_records, wal_fpi, wal_sync,
    xact_rollback
    FROM pg_stat_database, pg_stat_wal WHERE datname = current_database()"

# --- one run ---------------------------------------------------------------------------------

# bench BACKEND KIND DATABASE_URL DATABASE: starts the service on DATABASE_URL (empty), sends
# the events, waits for the worker and checks the tables (DATABASE is what `query` takes).
bench() {
    local backend=$1 kind=$2 database_url=$3 database=$4
    local name=$backend-$kind
    local base
    base="http://127.0.0.1:$(free_port)"
    echo "$backend, $kind events"
    start_server "$work/$name.log" "$base/healthz" "$workspace" \
        env WEBHOOKS_ADDR="${base#http://}" DATABASE_URL="$database_url" "${service_env[@]}" \
        "$CARGO_TARGET_DIR/release/webhooks"

    # On PostgreSQL, what its backends serving this database are doing, sampled every 50 ms
    # during the load and the processing that follows (one psql session, on the load
    # generator's CPU): `CPU` for a backend running, else its wait event.
    local sampler=
    if [ "$backend" = postgres ]; then
        while :; do
            echo "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
                  WHERE datname = '$database' AND state = 'active' AND pid <> pg_backend_pid();"
            sleep 0.05
        done | "${client[@]}" psql -h 127.0.0.1 -U postgres -d "$database" -XAtq \
            >"$work/$name.waits" 2>/dev/null &
        sampler=$!
    fi

    # PostgreSQL's counters before the load (the service has migrated the database by now):
    # this database's commits and rollbacks (a worker loop that finds nothing to take rolls
    # back), and the server's write-ahead log (position, records, full-page images, flushes).
    # The log is the whole server's: other databases' work counts too.
    local pg_before= pg_cpu_before=0 service_cpu_before
    if [ "$backend" = postgres ]; then
        pg_before=$(query "$backend" "$database" "$pg_counters")
        pg_cpu_before=$(cpu_ticks $(service_backends "$database"))
    fi
    service_cpu_before=$(cpu_ticks "$server_pid")

    local status=0
    "${client[@]}" "$load" --url "$base/api/webhooks/stripe" --secret "$secret" \
        --events "$events" --connections "$connections" --kind "$kind" \
        --duplicates "$duplicates" --id-prefix "evt_${kind}" >"$work/$name.load" 2>&1 ||
        status=$?
    sed -e '/^RESULT /d' -e 's/^/  /' "$work/$name.load"
    [ "$status" = 0 ] || { echo "  the load generator failed (status $status)"; failures=$((failures + 1)); }
    local result
    result=$(sed -n 's/^RESULT //p' "$work/$name.load")
    [ -n "$result" ] || { echo "  the load generator printed no result" >&2; exit 1; }
    # The load generator's figures as shell variables: rate, p50_ms, p99_ms, started_ms, ...
    eval "$(tr ' ' '\n' <<<"$result" | sed 's/^/local l_/')"

    # What the worker still had to do when the last answer came in.
    local backlog
    backlog=$(query "$backend" "$database" \
        "SELECT count(*) FROM webhook_events WHERE status IN ('pending', 'retrying')")
    echo "  still to process when the load ended: $backlog"

    local expected_done=$l_received waited=0 done=0
    while :; do
        done=$(query "$backend" "$database" \
            "SELECT count(*) FROM webhook_events WHERE status IN ('processed', 'ignored')")
        [ "$done" -lt "$expected_done" ] || break
        if [ "$waited" -ge "$((process_timeout * 2))" ]; then
            echo "  the worker did not finish within ${process_timeout} s: $done of $expected_done done"
            break
        fi
        sleep 0.5
        waited=$((waited + 1))
    done

    local total processed ignored failed attempts jobs last_ms subscriptions
    read -r total processed ignored failed attempts jobs last_ms subscriptions <<<"$(query "$backend" "$database" "
        SELECT (SELECT count(*) FROM webhook_events),
               (SELECT count(*) FROM webhook_events WHERE status = 'processed'),
               (SELECT count(*) FROM webhook_events WHERE status = 'ignored'),
               (SELECT count(*) FROM webhook_events WHERE status IN ('retrying', 'dead_letter')),
               (SELECT count(*) FROM webhook_attempts)
                 + (SELECT count(*) FROM webhook_events WHERE receipt_worker IS NOT NULL),
               (SELECT count(*) FROM jobs
                WHERE kind = 'webhooks.process' AND finished_at_ms IS NULL),
               (SELECT coalesce(max(finished), 0) FROM (
                    SELECT max(finished_at_ms) AS finished FROM webhook_attempts
                    UNION ALL SELECT max(receipt_finished_at_ms) FROM webhook_events) AS ends),
               (SELECT count(*) FROM subscriptions)")"
    # CPU time per event, from /proc: the service's process (on SQLite, SQLite's work too), and
    # on PostgreSQL the server processes of its connections (not the server's background
    # writers). Less noisy than rates on a shared machine: time others' work takes is not
    # counted.
    local service_cpu pg_cpu=0
    service_cpu=$(($(cpu_ticks "$server_pid") - service_cpu_before))
    [ "$backend" != postgres ] ||
        pg_cpu=$(($(cpu_ticks $(service_backends "$database")) - pg_cpu_before))
    awk -v n="$events" -v s="$service_cpu" -v p="$pg_cpu" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        printf "  CPU per event: service %.1f us", s * 1e6 / hz / n
        if (p > 0) printf ", PostgreSQL backends %.1f us", p * 1e6 / hz / n
        printf "\n"
    }'
    stop_server
    if [ -n "$pg_before" ]; then
        local pg_after
        pg_after=$(query "$backend" "$database" "$pg_counters")
        echo "  PostgreSQL per event (commits of this database; the log is the server's):"
        awk -v n="$events" -v before="$pg_before" -v after="$pg_after" 'BEGIN {
            split(before, b, " "); split(after, a, " ")
            printf "    commits %.3f, rollbacks %.3f, WAL bytes %.0f, WAL records %.2f, full-page images %.3f, WAL flushes %.3f\n",
                (a[1] - b[1]) / n, (a[6] - b[6]) / n, (a[2] - b[2]) / n, (a[3] - b[3]) / n,
                (a[4] - b[4]) / n, (a[5] - b[5]) / n
        }'
    fi
    if [ -n "$sampler" ]; then
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        local samples
        samples=$(grep -c . "$work/$name.waits" || true)
        echo "  PostgreSQL backends of this database, $samples samples of the active ones" \
            "(CPU: running; otherwise the wait event):"
        sort "$work/$name.waits" | uniq -c | sort -rn | head -8 |
            awk -v n="$samples" '{ printf "    %-28s %6d  %5.1f %%\n", $2, $1, 100 * $1 / (n ? n : 1) }'
        # Row writes per table, and how many updates were HOT (no new index entries).
        echo "  PostgreSQL row writes (inserted, updated, of which HOT, deleted):"
        "${client[@]}" psql -h 127.0.0.1 -U postgres -d "$database" -XAtq -F ' ' -c "
            SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables
            WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY relname" |
            awk '{ printf "    %-22s %8d %8d %8d %8d\n", $1, $2, $3, $4, $5 }'
    fi

    # The events of each kind, and the status they must end in.
    local want_processed=0 want_ignored=0
    case $kind in
        ignored) want_ignored=$events ;;
        subscription) want_processed=$events ;;
        mix) want_processed=$((events / 2)); want_ignored=$((events - events / 2)) ;;
    esac
    local lost=$((events - (processed < want_processed ? processed : want_processed) -
        (ignored < want_ignored ? ignored : want_ignored)))
    local e2e_secs e2e_rate
    e2e_secs=$(awk -v a="$l_started_ms" -v b="$last_ms" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
    e2e_rate=$(awk -v n="$events" -v s="$e2e_secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    echo "  webhook_events: $total rows, $processed processed, $ignored ignored, $failed retrying" \
        "or dead-lettered; attempts: $attempts; jobs left: $jobs; subscriptions: $subscriptions"
    echo "  every event processed $e2e_secs s after the first request: $e2e_rate events/s end to end; lost: $lost"
    local problems=()
    [ "$total" = "$events" ] || problems+=("$total rows in webhook_events for $events events")
    [ "$lost" = 0 ] || problems+=("$lost events lost or not processed")
    [ "$attempts" = "$events" ] || problems+=("$attempts attempts for $events events")
    [ "$jobs" = 0 ] || problems+=("$jobs jobs left")
    [ "$subscriptions" = "$want_processed" ] ||
        problems+=("$subscriptions subscriptions for $want_processed subscription events")
    local warnings
    warnings=$(grep -cE '\b(WARN|ERROR)\b' "$work/$name.log" || true)
    [ "$warnings" = 0 ] || {
        problems+=("$warnings warnings or errors in the service's log")
        grep -m5 -E '\b(WARN|ERROR)\b' "$work/$name.log" | sed 's/^/    /'
    }
    if [ "${#problems[@]}" -gt 0 ]; then
        printf '  PROBLEM: %s\n' "${problems[@]}"
        failures=$((failures + 1))
    fi
    echo "$l_rate $l_p50_ms $l_p99_ms $backlog $e2e_rate $e2e_secs $lost" >"$work/$name.result"
    rows+=("$backend|$kind|$name")
    echo
}

for backend in $backends; do
    for kind in $kinds; do
        case $backend in
            sqlite)
                bench sqlite "$kind" "sqlite://$work/$kind.db?mode=rwc" "$work/$kind.db"
                ;;
            postgres)
                if ! postgres_answers; then
                    echo "no PostgreSQL on 127.0.0.1:5432 (pg_isready): skipped"
                    echo
                    continue 2
                fi
                create_pg_db "saaskit_webhooks_bench_$$_$kind"
                bench postgres "$kind" "postgres://postgres@127.0.0.1:5432/$pg_db" "$pg_db"
                drop_pg_db
                ;;
            *)
                echo "unknown backend $backend (sqlite or postgres)" >&2
                exit 1
                ;;
        esac
    done
done

# --- summary ---------------------------------------------------------------------------------

printf '%-10s %-13s %11s %8s %8s %9s %13s %8s %5s\n' backend kind "accepted/s" "p50 ms" \
    "p99 ms" "backlog" "processed/s" "e2e s" lost
for row in "${rows[@]}"; do
    IFS='|' read -r backend kind name <<<"$row"
    read -r rate p50 p99 backlog e2e_rate e2e_secs lost <"$work/$name.result"
    printf '%-10s %-13s %11.0f %8s %8s %9s %13s %8s %5s\n' "$backend" "$kind" "$rate" "$p50" \
        "$p99" "$backlog" "$e2e_rate" "$e2e_secs" "$lost"
done
echo "(backlog: events still to process when the last answer came in; processed/s: events over"
echo " the time from the first request to the last processing attempt)"
echo
for row in "${rows[@]}"; do
    IFS='|' read -r backend kind name <<<"$row"
    [ "$backend" = postgres ] || continue
    read -r rate _ _ _ _ _ lost <"$work/$name.result"
    met=$(awk -v r="$rate" -v l="$lost" 'BEGIN { print (r >= 7000 && l == 0) ? "met" : "NOT met" }')
    echo "postgres, $kind: $(printf '%.0f' "$rate") events/s accepted, $lost lost (target: at least 7,000/s, none lost): $met"
done
[ "$failures" = 0 ] || { echo "$failures run(s) had problems: see above" >&2; exit 1; }
