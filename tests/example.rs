//! `examples/saas-starter/` must hold exactly what `saaskit new saas-starter --yes` produces (with
//! the test seed). When this fails after a template change, regenerate it as README.md says.

mod common;

use std::path::Path;

use common::{assert_same_tree, generate, read_tree};

#[test]
fn the_example_workspace_matches_what_new_generates() {
    let (_temp, root) = generate("saas-starter", &["--yes"]);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/saas-starter");
    let mut committed = read_tree(&example);
    // A build of the example leaves these behind; they are not part of what `new` writes.
    committed.retain(|path, _| path != "Cargo.lock" && !path.starts_with("data/"));
    assert_same_tree(&read_tree(&root), &committed);
}
