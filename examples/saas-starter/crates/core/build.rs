//! Embeds the SQL migrations in the crate.
//!
//! Writes `$OUT_DIR/migrations.rs`, included by `src/db.rs`: for each backend, every
//! `migrations/<backend>/<version>_<name>.sql` as `(version, name, include_str!(path))`. Files not
//! named that way (like the READMEs) are skipped. This does what `sqlx::migrate!` would, without
//! sqlx's macros: those compile both database drivers a second time, for the compiler's use.

use std::fmt::Write;
use std::path::Path;
use std::{env, fs};

fn main() {
    // Cargo re-runs this script, and rebuilds the crate, when anything under `migrations/` changes.
    println!("cargo::rerun-if-changed=migrations");
    let root = env::var("CARGO_MANIFEST_DIR").expect("set by Cargo");
    let mut code = String::new();
    for backend in ["sqlite", "postgres"] {
        let dir = Path::new(&root).join("migrations").join(backend);
        let entries = fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));
        let mut migrations = Vec::new();
        for entry in entries {
            let path = entry.expect("readable directory entry").path();
            let file_name = path.file_name().and_then(|name| name.to_str());
            let Some((version, name)) = file_name
                .and_then(|name| name.strip_suffix(".sql"))
                .and_then(|stem| stem.split_once('_'))
            else {
                continue;
            };
            let version: i64 = version.parse().unwrap_or_else(|_| {
                panic!("{}: the name must start with a number", path.display())
            });
            // Spelled like sqlx's own description, so that sqlx-cli reports the same names.
            migrations.push((version, name.replace('_', " "), path.display().to_string()));
        }
        migrations.sort();
        let constant = format!("{}_MIGRATIONS", backend.to_uppercase());
        writeln!(code, "const {constant}: &[(i64, &str, &str)] = &[").unwrap();
        for (version, name, path) in &migrations {
            writeln!(code, "    ({version}, {name:?}, include_str!({path:?})),").unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    let out_dir = env::var("OUT_DIR").expect("set by Cargo");
    fs::write(Path::new(&out_dir).join("migrations.rs"), code).expect("writable OUT_DIR");
}
