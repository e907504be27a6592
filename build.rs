//! Rebuilds saaskit when a file under `modules/` or `templates/` is added, removed or changed:
//! the catalog is embedded with `include_dir!`, and the compiler tracks the files it embedded,
//! not the ones added since.
//!
//! Also turns each embedded `module.toml` into JSON once, here, so that `saaskit` does not parse
//! TOML for its own catalog on every run (toml_edit builds a whole editable document, spans and
//! all: that was the largest part of loading the catalog). Only the syntax moves: the JSON is
//! deserialized into the same `Module` type at run time, with the same checks (unknown keys,
//! types, `Module::validate`). A `module.toml` that is not valid TOML gets no JSON, so saaskit
//! parses it itself at run time and reports the error as it always did, with the TOML's line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=modules");
    println!("cargo::rerun-if-changed=templates");

    let mut manifests = Vec::new();
    for root in ["modules", "templates"] {
        find_manifests(Path::new(root), &mut manifests);
    }
    let mut entries: Vec<(String, String)> = Vec::new();
    for manifest in &manifests {
        let text = std::fs::read_to_string(manifest)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", manifest.display()));
        let Ok(value) = toml_edit::de::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let dir = manifest
            .parent()
            .expect("a module.toml is in a directory")
            .to_string_lossy()
            .replace('\\', "/");
        let json = serde_json::to_string(&value).expect("a TOML document is valid JSON data");
        entries.push((dir, json));
    }
    // Sorted as strings: saaskit looks a directory up by binary search.
    entries.sort();

    let mut out = String::from(
        "/// `(directory of a module.toml, its content as JSON)`, sorted by directory.\n\
         pub static PREPARSED: &[(&str, &str)] = &[\n",
    );
    for (dir, json) in &entries {
        writeln!(out, "    ({dir:?}, {json:?}),").expect("writing to a String");
    }
    out.push_str("];\n");
    let target = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(target.join("preparsed_catalog.rs"), out).expect("cannot write OUT_DIR");
}

fn find_manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_manifests(&path, out);
        } else if path.file_name().is_some_and(|name| name == "module.toml") {
            out.push(path);
        }
    }
}
