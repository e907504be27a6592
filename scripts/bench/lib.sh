# Shared by the benchmark scripts (source it after `cd` to the repository): CPU pinning, a
# scratch directory, starting and stopping the server under test, and a PostgreSQL database
# per run. The sourcing script sets its own EXIT trap and calls `bench_cleanup` from it.

# --- pinning ---------------------------------------------------------------------------------

# On a machine with several cores, the load generator runs pinned to the first core the script
# may use and the server under test to the others (taskset), so that the load generator does not
# take CPU time from the server it measures. On 2 cores that is one core each. PostgreSQL itself
# is not pinned. `client` and `server` are the command prefixes; BENCH_PIN=0 turns pinning off.
client=()
server=()
read -r -a cpus <<<"$(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
if [ "${BENCH_PIN:-1}" = 1 ] && command -v taskset >/dev/null && [ "${#cpus[@]}" -ge 2 ]; then
    server_cpus=$(IFS=,; echo "${cpus[*]:1}")
    client=(taskset -c "${cpus[0]}")
    server=(taskset -c "$server_cpus")
    pinning="load generator on CPU ${cpus[0]}, the server under test on CPU $server_cpus (taskset)"
else
    pinning="none (the load generator and the server share ${#cpus[@]} CPU(s))"
fi

# --- state and clean-up ----------------------------------------------------------------------

work=$(mktemp -d)
server_pid=
pg_db=

stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}

# create_pg_db NAME: a fresh database on 127.0.0.1:5432, dropped by drop_pg_db or at exit.
create_pg_db() {
    pg_db=$1
    psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE $pg_db" >/dev/null
}

drop_pg_db() {
    if [ -n "$pg_db" ]; then
        psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" \
            >/dev/null 2>&1 || echo "could not drop database $pg_db" >&2
        pg_db=
    fi
}

postgres_answers() {
    command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1
}

bench_cleanup() {
    stop_server
    drop_pg_db
    rm -rf "$work"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server LOG URL DIR COMMAND...: starts COMMAND in DIR on the server CPUs and waits until
# URL answers.
start_server() {
    local log=$1 url=$2 dir=$3
    shift 3
    (cd "$dir" && exec "${server[@]}" "$@") >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 300); do
        curl -sf -o /dev/null "$url" && return 0
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "the server exited before answering $url:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "the server did not answer $url within 30 s:" >&2
    cat "$log" >&2
    exit 1
}

# print_machine: the CPUs, the load right now and the pinning, at the top of a report.
print_machine() {
    local cpu_model
    cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
    echo "machine: $(nproc) CPU(s), ${cpu_model:-unknown model}; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "pinning: $pinning"
}
