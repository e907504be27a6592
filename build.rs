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
//!
//! And hashes each embedded file that is shipped as it is (not a `.jinja` template), as the
//! lockfile records it: most of a new workspace is such files (a megabyte of `saaskit new`'s
//! 1.3), and hashing them was the largest single cost left on the thread that installs modules.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    println!("cargo::rerun-if-changed=modules");
    println!("cargo::rerun-if-changed=templates");

    let mut files = Vec::new();
    for root in ["modules", "templates"] {
        find_files(Path::new(root), &mut files);
    }
    let is_manifest = |path: &&PathBuf| path.file_name().is_some_and(|name| name == "module.toml");
    let manifests: Vec<&PathBuf> = files.iter().filter(is_manifest).collect();
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

    let mut hashes: Vec<(String, String)> = files
        .iter()
        .filter(|path| !is_manifest(path) && path.extension().is_none_or(|ext| ext != "jinja"))
        .map(|path| {
            let bytes = std::fs::read(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let hex: String = Sha256::digest(&bytes)
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            let key = path.to_string_lossy().replace('\\', "/");
            (key, format!("sha256:{hex}"))
        })
        .collect();
    // Sorted as strings: saaskit looks a path up by binary search.
    hashes.sort();
    let mut out = String::from(
        "/// `(path of an embedded file shipped as it is, its hash as saaskit.lock writes it)`,\n\
         /// sorted by path.\n\
         pub static SOURCE_SHA256: &[(&str, &str)] = &[\n",
    );
    for (path, hash) in &hashes {
        writeln!(out, "    ({path:?}, {hash:?}),").expect("writing to a String");
    }
    out.push_str("];\n");
    std::fs::write(target.join("source_sha256.rs"), out).expect("cannot write OUT_DIR");
}

/// Every file under `dir`, recursively.
fn find_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_files(&path, out);
        } else {
            out.push(path);
        }
    }
}
