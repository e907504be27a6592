#!/usr/bin/env bash
# Wall time of `saaskit new` for the default workspace (release build), with hyperfine, and the
# number of files it writes. Usage: scripts/bench-new.sh [runs]
#
# Each run starts on a quiet disk, as a user's `saaskit new` does: the previous run's output is
# moved aside (not deleted) and `sync` writes out what is pending before the timed command.
# Deleting the previous output right before each run, as a plain `--prepare "rm -rf"` would,
# makes the next run's file creations several times slower on an ext4 without a journal (the
# kernel's inode allocator skips inodes freed in the last 30 s: perf shows most of such a run in
# `find_inode_bit` and `recently_deleted`), which is the benchmark's doing, not the command's.
# For the same reason, give the disk half a minute after deleting many files (a build, an
# earlier run of this script) before running it. The same command is also timed writing to a
# tmpfs, where the disk plays no part.
#
# When Loco's CLI is installed (`loco` on the PATH or in ~/.cargo/bin; scripts/bench-api.sh
# installs it), a last hyperfine run times `saaskit new` and `loco new` (its SaaS starter on
# SQLite, as scripts/bench-api.sh generates it) side by side on the tmpfs, and prints the ratio.
# With BASELINE=<another saaskit binary> (an older build, to compare a change), that binary runs
# in the same hyperfine run too.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)"; exit 1; }
cargo build --release --quiet
out=$(mktemp -d)
shm=$(mktemp -d -p /dev/shm)
trap 'rm -rf "$out" "$shm"' EXIT
mkdir "$out/aside"
hyperfine -N --warmup 10 --runs "$runs" --export-json "$out/disk.json" \
    --prepare "bash -c 'if [ -d $out/acme ]; then mv $out/acme $out/aside/\$RANDOM\$RANDOM; fi; sync'" \
    "target/release/saaskit new acme --yes --output $out/acme"
hyperfine -N --warmup 10 --runs "$runs" --export-json "$out/tmpfs.json" \
    --prepare "rm -rf $shm/acme" \
    "target/release/saaskit new acme --yes --output $shm/acme"
python3 - "$out/disk.json" "$out/tmpfs.json" <<'PY'
import json, sys
for label, path in zip(["disk", "tmpfs"], sys.argv[1:]):
    r = json.load(open(path))["results"][0]
    ms = lambda s: f"{s * 1000:.1f} ms"
    print(f"{label:5}: median {ms(r['median'])}, mean {ms(r['mean'])}, min {ms(r['min'])}, "
          f"max {ms(r['max'])}, user {ms(r['user'])}, system {ms(r['system'])}")
PY
echo "files written: $(find "$out/acme" -type f | wc -l)"

loco=$(command -v loco || true)
[ -n "$loco" ] || [ ! -x "$HOME/.cargo/bin/loco" ] || loco=$HOME/.cargo/bin/loco
if [ -z "$loco" ]; then
    echo "no loco CLI (cargo install loco): the comparison with loco new is skipped"
    exit 0
fi
mkdir "$shm/loco"
baseline=()
if [ -n "${BASELINE:-}" ]; then
    baseline=("$BASELINE new acme --yes --output $shm/acme")
fi
hyperfine -N --warmup 10 --runs "$runs" --export-json "$out/versus.json" \
    --prepare "rm -rf $shm/acme $shm/loco/locobench" \
    "target/release/saaskit new acme --yes --output $shm/acme" \
    "$loco new --name locobench --db sqlite --bg async --assets none --path $shm/loco --allow-in-git-repo" \
    "${baseline[@]}"
python3 - "$out/versus.json" "$($loco --version)" <<'PY'
import json, sys
saaskit, loco, *baseline = json.load(open(sys.argv[1]))["results"]
ms = lambda r: f"mean {r['mean'] * 1000:.1f} ms (median {r['median'] * 1000:.1f}, min {r['min'] * 1000:.1f})"
print(f"saaskit new: {ms(saaskit)}; {sys.argv[2]} new: {ms(loco)}; "
      f"saaskit takes {saaskit['mean'] / loco['mean']:.2f} of loco's time")
for r in baseline:
    print(f"baseline ({r['command'].split()[0]}): {ms(r)}; {r['mean'] / loco['mean']:.2f} of loco's time")
PY
