#!/usr/bin/env bash
# Wall time of `saaskit new` for the default workspace (release build), with hyperfine, and the
# number of files it writes. Usage: scripts/bench-new.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 1; }
cargo build --release --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
hyperfine -N --warmup 10 --runs "$runs" --export-json "$out/new.json" \
    --prepare "rm -rf $out/acme" \
    "target/release/saaskit new acme --yes --output $out/acme"
python3 - "$out/new.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"median {r['median']*1000:.1f} ms, mean {r['mean']*1000:.1f} ms, min {r['min']*1000:.1f} ms, max {r['max']*1000:.1f} ms")
PY
echo "files written: $(find "$out/acme" -type f | wc -l)"
