//! insta snapshots of whole generated trees (paths and contents), with the secret generator
//! seeded so that they are stable. Review changes with `cargo insta review`.
//!
//! The default workspace has no snapshot here: its one golden copy is `examples/saas-starter/`,
//! checked by `tests/example.rs`. These are the variants the example does not show.

mod common;

use std::collections::BTreeMap;

use common::{generate, read_tree};
use saaskit::stage::base_store::{self, PACK_FILE};

fn render_tree(tree: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (path, content) in tree {
        if path == PACK_FILE {
            render_copies(&mut out, tree, content);
            continue;
        }
        render_file(&mut out, path, content);
    }
    out
}

/// The base store's pristine copies repeat the generated files: only say so, copy by copy.
fn render_copies(out: &mut String, tree: &BTreeMap<String, String>, pack: &str) {
    let copies = base_store::parse(pack).unwrap_or_else(|e| panic!("{PACK_FILE}:{e}"));
    out.push_str(&format!("==> {PACK_FILE} <==\n"));
    for (original, copy) in &copies {
        if tree.get(original) == Some(copy) {
            out.push_str(&format!("copy of {original}: the same as the file\n"));
        }
    }
    out.push('\n');
    for (original, copy) in &copies {
        if tree.get(original) != Some(copy) {
            render_file(out, &format!("{PACK_FILE}: copy of {original}"), copy);
        }
    }
}

fn render_file(out: &mut String, path: &str, content: &str) {
    out.push_str(&format!("==> {path} <==\n{content}"));
    if !content.ends_with('\n') {
        out.push_str("\n(no newline at end of file)\n");
    }
    out.push('\n');
}

#[test]
fn api_only_workspace() {
    let (_temp, root) = generate("acme", &["--yes", "--services", "api"]);
    insta::assert_snapshot!("api_only_workspace", render_tree(&read_tree(&root)));
}

/// A Rust service beside a NestJS one, without modules: the nest skeleton as generated, and what
/// a TypeScript service changes in the workspace's files (Cargo members, README, `.env`).
#[test]
fn api_and_nest_workspace() {
    let (_temp, root) = generate(
        "acme",
        &["--yes", "--services", "api,nest", "--modules", ""],
    );
    insta::assert_snapshot!("api_and_nest_workspace", render_tree(&read_tree(&root)));
}
