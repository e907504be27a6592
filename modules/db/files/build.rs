//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the files of
//! `migrations/` but cannot tell Cargo to watch that directory.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
