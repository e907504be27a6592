//! Rebuilds saaskit when a file under `modules/` or `templates/` is added, removed or changed:
//! the catalog is embedded with `include_dir!`, and the compiler tracks the files it embedded,
//! not the ones added since.

fn main() {
    println!("cargo::rerun-if-changed=modules");
    println!("cargo::rerun-if-changed=templates");
}
