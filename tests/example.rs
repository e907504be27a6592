//! `examples/saas-starter/` is the one golden copy of the default workspace: it must hold exactly
//! what `saaskit new saas-starter --yes` produces (with the test seed). A template change shows
//! up as a change of the example, reviewed like any other diff; when this test fails after an
//! intended change, regenerate the example with the command below (also in README.md, "The
//! example workspace") and commit it with the change.

mod common;

use std::path::Path;

use common::{assert_same_tree, generate, read_tree};

const REGENERATE: &str = "rm -rf examples/saas-starter && SAASKIT_SEED=42 cargo run -q -- new saas-starter --yes --output examples/saas-starter";

#[test]
fn the_example_workspace_matches_what_new_generates() {
    let (_temp, root) = generate("saas-starter", &["--yes"]);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/saas-starter");
    let mut committed = read_tree(&example);
    // A build of the example leaves these behind; they are not part of what `new` writes.
    committed.retain(|path, _| path != "Cargo.lock" && !path.starts_with("data/"));
    let generated = read_tree(&root);
    if generated != committed {
        eprintln!(
            "examples/saas-starter/ is not what `saaskit new` generates. If the templates changed \
             on purpose, regenerate it from the repository's root and review its diff:\n  \
             {REGENERATE}"
        );
    }
    assert_same_tree(&generated, &committed);
}
