#!/usr/bin/env bash
# Instructions per request of a generated api's endpoint, counted by valgrind's callgrind over
# all of the process's threads: repeatable where wall time is not (a machine shared with other
# work), so that two builds can be compared. docs/benchmarks.md has the figures it gave.
#
# Usage: scripts/bench/callgrind-api.sh WORKSPACE API_BINARY DATABASE_URL [REQUESTS] [PATH]
#   WORKSPACE: the generated workspace (the api reads its .env); API_BINARY: a release build of
#   its api; DATABASE_URL: a fresh database (it registers ada@example.com); REQUESTS (2000) sent
#   to PATH (/api/auth/me) with a Bearer token over one keep-alive connection, after 200 of
#   warm-up. The user is registered before valgrind starts (argon2 under valgrind is slow); the
#   api then runs under callgrind with one Tokio worker thread. The output file is kept and named
#   at the end, for callgrind_annotate.
set -euo pipefail
[ $# -ge 3 ] || { sed -n "6,12p" "$0"; exit 2; }
workspace=$1 api=$(realpath "$2") database_url=$3 requests=${4:-2000} path=${5:-/api/auth/me}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
out=$(mktemp /tmp/callgrind-api.XXXXXX)
log=$out.log
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true' EXIT

# serve [PREFIX...]: starts the api (behind PREFIX) and waits for /healthz.
serve() {
    (cd "$workspace" && exec env API_ADDR="127.0.0.1:$port" DATABASE_URL="$database_url" \
        RUST_LOG=warn AUTH_COOKIE_SECURE=false TOKIO_WORKER_THREADS=1 "$@" "$api") >>"$log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do curl -sf -o /dev/null "$base/healthz" && return 0; sleep 0.2; done
    echo "the api did not answer; its output: $log" >&2
    exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

serve
token=$(curl -sf -X POST "$base/api/auth/register" -H 'Content-Type: application/json' \
    -d '{"email": "ada@example.com", "password": "correct-horse-battery-staple-42"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
stop

serve valgrind --tool=callgrind --callgrind-out-file="$out"
send() {
    python3 - "$port" "$1" "$path" "$token" <<'PY'
import http.client, sys
port, n, path, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
connection = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    connection.request("GET", path, headers={"Authorization": "Bearer " + token})
    reply = connection.getresponse()
    reply.read()
    assert reply.status == 200, reply.status
PY
}
send 200
callgrind_control -z "$pid" >/dev/null 2>&1
send "$requests"
callgrind_control -d "$pid" >/dev/null 2>&1
stop
dump=$(ls -t "$out".* | grep -v '\.log$' | head -1)
total=$(callgrind_annotate "$dump" | grep -m1 'PROGRAM TOTALS' | awk '{ gsub(",", "", $1); print $1 }')
echo "$path: $((total / requests)) instructions per request ($requests requests; $dump)"
