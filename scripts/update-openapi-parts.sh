#!/usr/bin/env bash
# Regenerates the committed OpenAPI parts that saaskit writes into each service's `openapi/`
# folder (docs/openapi.md) from the documents the default workspace's services serve:
#
#   templates/base/files/service/openapi/base.json.jinja   the health endpoints, the security
#                                                          schemes, the error envelope
#   modules/<module>/files/<kind>/openapi/<module>.json    the operations a module's sources
#                                                          annotate, with the schemas they use
#
# Run it after changing a handler's `#[utoipa::path]` or a schema; tests/e2e/openapi.rs fails
# until the parts match what the services serve. A new part also needs its `[[files]]` entry in
# the module's module.toml: the script prints the entry when it is missing.
#
#   scripts/update-openapi-parts.sh
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$repo/target/openapi-parts"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/generated-workspaces}"

# saaskit itself builds into its own target/ (run below), not the generated workspaces' one.
env -u CARGO_TARGET_DIR cargo build --quiet --manifest-path "$repo/Cargo.toml" --bin saaskit
rm -rf "$work"
mkdir -p "$work"
"$repo/target/debug/saaskit" new acme --yes --output "$work/acme" >/dev/null
(
    cd "$work/acme"
    cargo build --quiet --workspace
    mkdir -p data
    for service in api admin webhooks; do
        "$CARGO_TARGET_DIR/debug/$service" openapi >"$work/$service.json"
    done
)

"${PYTHON:-python3}" - "$repo" "$work" <<'PY'
import json, pathlib, re, sys, tomllib

repo, work = map(pathlib.Path, sys.argv[1:3])

def module_of(source):
    """The module directory (or templates/base) a source file belongs to."""
    for parent in source.parents:
        if (parent / "module.toml").exists():
            return parent
    raise SystemExit(f"{source} is in no module")

# Which module annotates each path: the first `path = "..."` after each `#[utoipa::path(`.
owners = {}
for source in sorted([*repo.glob("modules/**/*.rs"), *repo.glob("templates/base/**/*.rs")]):
    text = source.read_text()
    for start in re.finditer(r"#\[utoipa::path\(", text):
        found = re.search(r'path = "([^"]+)"', text[start.end():])
        owners[found.group(1)] = module_of(source)

def refs(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item.rsplit("/", 1)[-1]
            else:
                yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)

def closure(roots, schemas):
    """The schemas `roots` refer to, directly or through other schemas."""
    seen, todo = set(), list(refs(roots))
    while todo:
        name = todo.pop()
        if name not in seen and name in schemas:
            seen.add(name)
            todo.extend(refs(schemas[name]))
    return {name: schemas[name] for name in sorted(seen)}

def write(path, part):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(part, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

base_dir = repo / "templates/base"
for kind in ("api", "admin", "webhooks"):
    document = json.loads((work / f"{kind}.json").read_text())
    schemas = document.get("components", {}).get("schemas", {})
    by_module = {}
    for path, item in document["paths"].items():
        owner = owners.get(path)
        if owner is None:
            raise SystemExit(f"the {kind} serves {path}, which no module source annotates")
        by_module.setdefault(owner, {})[path] = item
    # A schema no path refers to (utoipa registers the item type of a generic one, which it
    # inlines) goes to the module that defines it.
    reached = set(closure(list(by_module.values()) + [{"$ref": "#/components/schemas/ErrorBody"}],
                          schemas))
    extra = {}
    for name in sorted(set(schemas) - reached):
        definition = re.compile(rf"(as = {name}\b|(struct|enum) {name}\b)")
        found = [module for module in by_module
                 if any(definition.search(source.read_text()) for source in module.rglob("*.rs"))]
        if len(found) != 1:
            raise SystemExit(f"the {kind}'s schema {name} is defined in {len(found)} modules")
        extra.setdefault(found[0], {})[name] = schemas[name]
    for module, paths in sorted(by_module.items()):
        part = {"paths": paths}
        used = {**closure(paths, schemas), **extra.get(module, {})}
        if used:
            part["components"] = {"schemas": dict(sorted(used.items()))}
        if module == base_dir:
            continue
        module_id = module.relative_to(repo / "modules").as_posix()
        name = module_id.replace("/", "-")
        source = f"files/{kind}/openapi/{name}.json"
        write(module / source, part)
        manifest = tomllib.loads((module / "module.toml").read_text())
        if not any(entry["source"] == source for entry in manifest.get("files", [])):
            print(f"{module_id}/module.toml needs:\n\n[[files]]\nsource = \"{source}\"\n"
                  f"target = \"{{{{ service.dir }}}}/openapi/{name}.json\"\nscope = \"service\"\n"
                  f"kinds = [\"{kind}\"]\n")
    # The base: every top-level field, the base's paths, the security schemes and the envelope.
    base = {key: value for key, value in document.items() if key not in ("paths", "components")}
    base["info"]["title"] = "{{ workspace.name }} {{ service.name }}"
    base_paths = by_module.get(base_dir, {})
    base["paths"] = base_paths
    components = {key: value for key, value in document.get("components", {}).items()
                  if key != "schemas"}
    components["schemas"] = closure([base_paths, {"$ref": "#/components/schemas/ErrorBody"}],
                                    schemas)
    base["components"] = components
    if kind == "api":
        write(base_dir / "files/service/openapi/base.json.jinja", base)
PY
echo "parts updated: git diff -- modules templates"
