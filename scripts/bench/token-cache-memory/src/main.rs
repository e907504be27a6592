//! Fills a cache of verified tokens as the generated api's key set keeps it (a `quick_cache`
//! of SHA-256 digests, sized for all of them) and prints the resident memory it added.

use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

fn main() {
    let tokens: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |arg| arg.parse().expect("a number of tokens"));
    let before = resident_bytes();
    let cache: Cache<[u8; 32], ()> = Cache::new(tokens);
    for n in 0..tokens {
        // A token's digest; the text stands in for a 400-byte JWS, which is not stored.
        let digest: [u8; 32] = Sha256::digest(format!("token {n}").as_bytes()).into();
        cache.insert(digest, ());
    }
    let after = resident_bytes();
    let added = after.saturating_sub(before);
    println!(
        "{} tokens remembered (of {tokens} inserted): {:.1} MiB resident added, {:.0} bytes per token",
        cache.len(),
        added as f64 / (1024.0 * 1024.0),
        added as f64 / cache.len() as f64,
    );
}

/// The process's resident set size, from /proc/self/statm (Linux, 4 KiB pages).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux's /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages in statm");
    pages * 4096
}
