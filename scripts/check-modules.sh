#!/usr/bin/env bash
# Compiler feedback on the module sources (modules/, templates/) without waiting for the e2e tests:
# generates the default workspace and an api-only one with the catalog as it is on disk, then runs
# `cargo clippy --all-targets -D warnings` in each. Paths in the compiler's messages that point at
# a generated file copied from a module are followed by the module source they come from.
#
#   scripts/check-modules.sh            # both workspaces, and rustfmt with the longest name
#   scripts/check-modules.sh default    # only the default one (faster)
#
# The workspaces are kept under target/check-modules/ and their build output in
# target/generated-workspaces (the e2e tests' target directory): only the generated crates are
# checked again on each run. See docs/modules.md, "Checking a module as you edit it".
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$repo/target/check-modules"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/generated-workspaces}"
which="${1:-all}"

# saaskit embeds the catalog when it is built: build it (a no-op when nothing changed), and point
# it at the catalog on disk as well.
cargo build --quiet --manifest-path "$repo/Cargo.toml" --bin saaskit
saaskit="$repo/target/debug/saaskit"
mkdir -p "$work"

# `generated path<TAB>module source` for every file a module copies, services named by their kind.
"${PYTHON:-python3}" - "$repo/modules" >"$work/sources.tsv" <<'PY'
import pathlib, sys, tomllib
root = pathlib.Path(sys.argv[1])
for manifest in sorted(root.rglob("module.toml")):
    module = manifest.parent
    for entry in tomllib.loads(manifest.read_text()).get("files", []):
        source = (module / entry["source"]).relative_to(root.parent)
        for kind in ("api", "admin", "webhooks"):
            target = entry["target"].replace("{{ service.dir }}", f"services/{kind}")
            target = target.replace("{{ workspace.core.dir }}", "crates/core")
            print(f"{target}\t{source}")
PY

# Appends `(from modules/...)` to the compiler's ` --> path:line:col` lines it can map.
annotate() {
    awk -F'\t' -v OFS='' '
        NR == FNR { source[$1] = $2; next }
        match($0, /--> [^:]+:[0-9]+/) {
            split(substr($0, RSTART + 4, RLENGTH - 4), at, ":")
            if (at[1] in source) { print $0, "   (from ", source[at[1]], ":", at[2], ")"; next }
        }
        { print }
    ' "$work/sources.tsv" -
}

check() {
    local name="$1"
    shift
    local root="$work/$name"
    rm -rf "$root"
    SAASKIT_SEED=42 SAASKIT_MODULES="$repo/modules" \
        "$saaskit" new "$name" --yes --output "$root" "$@" >/dev/null
    echo "== $name: cargo clippy --workspace --all-targets -D warnings ($root)"
    local status=0
    (cd "$root" && cargo clippy --quiet --workspace --all-targets --color never -- -D warnings) \
        2>&1 | annotate || status=1
    # Like the e2e tests: as generated, the code must be rustfmt-clean too.
    (cd "$root" && cargo fmt --all -- --check >/dev/null) ||
        { echo "$name: not rustfmt-clean as generated: run \`cargo fmt --all -- --check\` in $root"; status=1; }
    return "$status"
}

# The library crate's Rust name, `<workspace>_core`, stands in generated lines: with the longest
# workspace name `saaskit new` accepts (20 characters), they must still be rustfmt-clean.
check_long_name() {
    local name=northwind-analytics1
    local root="$work/$name"
    rm -rf "$root"
    SAASKIT_SEED=42 SAASKIT_MODULES="$repo/modules" \
        "$saaskit" new "$name" --yes --output "$root" >/dev/null
    echo "== $name: cargo fmt --check ($root)"
    (cd "$root" && cargo fmt --all -- --check >/dev/null) ||
        { echo "$name: not rustfmt-clean as generated: run \`cargo fmt --all -- --check\` in $root"; return 1; }
}

failed=0
check acme || failed=1
if [ "$which" != default ]; then
    check acme-api --services api || failed=1
    check_long_name || failed=1
fi
exit "$failed"
