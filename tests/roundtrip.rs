//! `add` then `remove` is an exact undo, for every module of the catalog, and code a user wrote
//! around the markers survives both byte for byte.

mod common;

use common::{assert_same_tree, generate, read_tree, saaskit};

/// The catalog's modules in its order, each with the ids it requires.
fn catalog(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let output = saaskit(dir).args(["list", "--json"]).output().unwrap();
    assert!(output.status.success());
    let modules: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let text = |value: &serde_json::Value| value.as_str().unwrap().to_string();
    modules
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let requires = m["requires"].as_array().unwrap().iter().map(text);
            (text(&m["id"]), requires.collect())
        })
        .collect()
}

fn catalog_ids(dir: &std::path::Path) -> Vec<String> {
    catalog(dir).into_iter().map(|(id, _)| id).collect()
}

/// Removes the modules `remaining` from the workspace at `root`, each step the last module no other remaining
/// one requires.
fn remove_dependents_first(root: &std::path::Path, mut remaining: Vec<String>) {
    let requires: std::collections::BTreeMap<_, _> = catalog(root).into_iter().collect();
    while let Some(index) = remaining
        .iter()
        .rposition(|id| !remaining.iter().any(|other| requires[other].contains(id)))
    {
        let id = remaining.remove(index);
        saaskit(root).args(["remove", &id]).assert().success();
    }
    assert!(
        remaining.is_empty(),
        "requirements form a cycle: {remaining:?}"
    );
}

#[test]
fn every_module_added_then_removed_leaves_the_tree_as_new_made_it() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    let fresh = read_tree(&root);
    let ids = catalog_ids(&root);
    assert!(!ids.is_empty());
    for id in ids {
        saaskit(&root).args(["add", &id]).assert().success();
        assert_ne!(read_tree(&root), fresh, "adding {id} changed nothing");
        saaskit(&root).args(["remove", &id]).assert().success();
        assert_same_tree(&fresh, &read_tree(&root));
    }
}

#[test]
fn adding_all_defaults_then_removing_them_is_an_exact_undo() {
    let (_temp, bare) = generate("acme", &["--yes", "--modules", ""]);
    let (_temp2, full) = generate("acme", &["--yes"]);
    let defaults: Vec<String> = {
        let manifest = std::fs::read_to_string(full.join("saaskit.toml")).unwrap();
        let doc: toml_edit::DocumentMut = manifest.parse().unwrap();
        let mut ids: Vec<String> = Vec::new();
        for (_, service) in doc["services"].as_table().unwrap().iter() {
            for id in service["modules"].as_array().unwrap() {
                let id = id.as_str().unwrap().to_string();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    };
    // `new` installs them in catalog order (requirements first), which shared files show in the
    // order of their snippets.
    let mut catalog_order = defaults.clone();
    catalog_order.sort();
    let fresh = read_tree(&bare);
    for id in &catalog_order {
        saaskit(&bare).args(["add", id]).assert().success();
    }
    // `add` of the defaults one by one gives what `new` gives at once.
    assert_same_tree(&read_tree(&full), &read_tree(&bare));
    // Dependents first: each step removes the last module no other remaining one requires (a
    // module on several services may require one that only a later service lists, as
    // admin/feature-flags on the api and the admin service requires admin/core).
    remove_dependents_first(&bare, defaults);
    assert_same_tree(&fresh, &read_tree(&bare));
}

#[test]
fn user_code_around_markers_survives_add_and_remove() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    let main = root.join("services/api/src/main.rs");
    let lib = root.join("crates/core/src/lib.rs");
    let mut main_text = std::fs::read_to_string(&main).unwrap();
    for marker in ["config", "startup", "routes", "shutdown"] {
        let line = format!("    // <<<inject:{marker}>>>\n");
        let wrapped = format!("    // mine: before {marker}\n{line}    // mine: after {marker}\n");
        main_text = main_text.replace(&line, &wrapped);
    }
    main_text = main_text.replace(
        "// <<<inject:mods>>>\n",
        "// <<<inject:mods>>>\n// mine: after mods\n",
    );
    std::fs::write(&main, &main_text).unwrap();
    let lib_text = std::fs::read_to_string(&lib).unwrap().replace(
        "// <<<inject:mods>>>\n",
        "// mine\n// <<<inject:mods>>>\n\n// mine too\n",
    );
    std::fs::write(&lib, &lib_text).unwrap();
    let edited = read_tree(&root);

    for id in catalog_ids(&root) {
        saaskit(&root).args(["add", &id]).assert().success();
        let with_module = std::fs::read_to_string(&main).unwrap();
        let user_lines: Vec<&str> = main_text.lines().collect();
        let mut remaining = with_module.lines();
        for line in &user_lines {
            assert!(
                remaining.any(|l| l == *line),
                "after adding {id}, `{line}` is missing or out of order"
            );
        }
        saaskit(&root).args(["remove", &id]).assert().success();
        assert_same_tree(&edited, &read_tree(&root));
    }
}

/// The deployment modules on the default workspace (where they meet every service and module):
/// each one added, then removed, leaves the workspace byte for byte as it was.
#[test]
fn deployment_modules_on_the_default_workspace_come_off_byte_exact() {
    let (_temp, root) = generate("acme", &["--yes"]);
    let fresh = read_tree(&root);
    let ids: Vec<String> = catalog_ids(&root)
        .into_iter()
        .filter(|id| id.starts_with("deploy/") || id.starts_with("ci/"))
        .collect();
    assert!(ids.len() >= 5, "{ids:?}");
    for id in &ids {
        saaskit(&root).args(["add", id]).assert().success();
        assert_ne!(read_tree(&root), fresh, "adding {id} changed nothing");
        saaskit(&root).args(["remove", id]).assert().success();
        assert_same_tree(&fresh, &read_tree(&root));
    }
    // All of them at once, then off again, each once no other remaining one requires it.
    for id in &ids {
        saaskit(&root).args(["add", id]).assert().success();
    }
    remove_dependents_first(&root, ids);
    assert_same_tree(&fresh, &read_tree(&root));
}
