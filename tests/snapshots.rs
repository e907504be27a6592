//! insta snapshots of whole generated trees (paths and contents), with the secret generator
//! seeded so that they are stable. Review changes with `cargo insta review`.

mod common;

use std::collections::BTreeMap;

use common::{generate, read_tree};

fn render_tree(tree: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (path, content) in tree {
        // The base store's pristine copies repeat the generated files: only say so.
        if let Some(original) = path.strip_prefix(".saaskit/base/")
            && tree.get(original) == Some(content)
        {
            out.push_str(&format!("==> {path} <==\n(the same as {original})\n\n"));
            continue;
        }
        out.push_str(&format!("==> {path} <==\n{content}"));
        if !content.ends_with('\n') {
            out.push_str("\n(no newline at end of file)\n");
        }
        out.push('\n');
    }
    out
}

#[test]
fn default_workspace() {
    let (_temp, root) = generate("acme", &["--yes"]);
    insta::assert_snapshot!("default_workspace", render_tree(&read_tree(&root)));
}

#[test]
fn api_only_workspace() {
    let (_temp, root) = generate("acme", &["--yes", "--services", "api"]);
    insta::assert_snapshot!("api_only_workspace", render_tree(&read_tree(&root)));
}
