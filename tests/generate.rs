//! `saaskit generate resource` and `saaskit destroy resource` on the default workspace: what they
//! write and record, what they refuse (before writing anything), and that destroying returns every
//! file byte for byte. Building the result and calling its endpoints is tests/e2e/resources.rs.

mod common;

use std::path::Path;

use common::{
    LONG_RESOURCES, RESOURCES, assert_fails_unchanged, assert_same_tree, generate, read_tree,
    saaskit,
};

fn generate_resource(root: &Path, spec: &[&str]) {
    saaskit(root)
        .args(["generate", "resource"])
        .args(spec)
        .assert()
        .success();
}

#[test]
fn three_resources_generated_then_destroyed_leave_the_tree_byte_identical() {
    let (_temp, root) = generate("acme", &["--yes"]);
    let fresh = read_tree(&root);
    for spec in RESOURCES {
        generate_resource(&root, spec);
    }
    let tree = read_tree(&root);
    for file in [
        "crates/core/src/resources.rs",
        "crates/core/src/project.rs",
        "crates/core/src/task.rs",
        "services/api/src/label.rs",
        "services/api/openapi/resource-label.json",
        "crates/core/src/task/tests.rs",
    ] {
        assert!(tree.contains_key(file), "{file} was not generated");
    }
    let migrations: Vec<&String> = tree
        .keys()
        .filter(|p| p.contains("_create_") && p.contains("/migrations/"))
        .collect();
    assert_eq!(migrations.len(), 6, "{migrations:?}");
    // The default workspace has organizations: the rows are theirs unless told otherwise.
    assert!(tree["services/api/src/task.rs"].contains("/api/orgs/{org}/tasks/{id}"));
    assert!(tree["crates/core/src/task.rs"].contains("owner: &TenantId"));
    assert!(tree["saaskit.toml"].contains("[resources.task]"));
    // The admin pages: the kit with the first, a file and a navigation link each.
    for file in [
        "services/admin/src/resource_pages.rs",
        "services/admin/templates/resource_list.html",
        "services/admin/templates/resource.html",
        "services/admin/src/admin_tasks.rs",
    ] {
        assert!(tree.contains_key(file), "{file} was not generated");
    }
    assert!(tree["services/admin/src/panel.rs"].contains("let link = crate::admin_tasks::link();"));
    assert!(tree["services/admin/src/admin_tasks.rs"].contains("title: \"Tasks\","));
    assert!(tree["crates/core/src/task.rs"].contains("pub async fn staff_search("));
    // A line each in the README.
    let readme = &tree["README.md"];
    assert!(
        readme.contains(
            "- `task`: table `tasks`, each row an organization's; `/api/orgs/{org}/tasks` on \
             service `api`; admin pages at `/admin/resources/tasks`."
        ),
        "{readme}"
    );
    let lock = &tree["saaskit.lock"];
    assert!(lock.contains("module = \"resource/task\""));
    assert!(lock.contains("id = \"resources\""));
    // `diff` sees them as generated and unchanged; `doctor` finds nothing wrong.
    saaskit(&root).args(["diff", "--check"]).assert().success();

    // A referenced resource goes last.
    let refused = assert_fails_unchanged(
        &root,
        saaskit(&root).args(["destroy", "resource", "project"]),
    );
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains("resource `task` references `project`"),
        "{stderr}"
    );
    for name in ["task", "label", "project"] {
        saaskit(&root)
            .args(["destroy", "resource", name])
            .assert()
            .success();
    }
    assert_same_tree(&fresh, &read_tree(&root));
}

/// The files of the three resources (their tests and OpenAPI parts too) and the shared one, as a
/// review sees them (`cargo insta review`); the migrations' names hold a version that depends on
/// the day, so they are keyed by their table.
#[test]
fn snapshots_of_the_generated_files() {
    let (_temp, root) = generate("acme", &["--yes"]);
    for spec in RESOURCES {
        generate_resource(&root, spec);
    }
    let tree = read_tree(&root);
    for (path, content) in &tree {
        let name = if path.contains("/migrations/") && path.contains("_create_") {
            let table = path.rsplit("_create_").next().unwrap_or_default();
            let backend = if path.contains("/sqlite/") {
                "sqlite"
            } else {
                "postgres"
            };
            format!("migration_{backend}_{table}")
        } else if path.starts_with("crates/core/src/") || path.starts_with("services/api/src/") {
            let file = path.rsplit('/').next().unwrap_or_default();
            let tests = ["project", "label", "task"]
                .iter()
                .any(|name| path.ends_with(&format!("/{name}/tests.rs")));
            if !tests && !["project.rs", "label.rs", "task.rs", "resources.rs"].contains(&file) {
                continue;
            }
            path.replace('/', "__")
        } else if path.starts_with("services/api/openapi/resource-") {
            path.replace('/', "__")
        } else if path.starts_with("services/admin/") {
            let file = path.rsplit('/').next().unwrap_or_default();
            if !(file.starts_with("resource")
                || (file.starts_with("admin_") && tree_has_resource(file)))
            {
                continue;
            }
            path.replace('/', "__")
        } else {
            continue;
        };
        insta::assert_snapshot!(name, content);
    }
}

/// `admin_<plural>.rs` of one of the three resources (not a module's `admin_orgs.rs`).
fn tree_has_resource(file: &str) -> bool {
    ["admin_projects.rs", "admin_labels.rs", "admin_tasks.rs"].contains(&file)
}

#[test]
fn no_admin_pages_with_no_admin_nor_without_the_admin_service() {
    let (_temp, root) = generate("acme", &["--yes"]);
    let fresh = read_tree(&root);
    generate_resource(&root, &["note", "body:text", "--no-admin"]);
    let tree = read_tree(&root);
    assert!(!tree.contains_key("services/admin/src/admin_notes.rs"));
    assert!(!tree.contains_key("services/admin/src/resource_pages.rs"));
    assert!(!tree["crates/core/src/note.rs"].contains("staff_search"));
    assert!(tree["README.md"].contains("- `note`: table `notes`"));
    assert!(!tree["README.md"].contains("/admin/resources/notes"));
    assert!(!tree["saaskit.toml"].contains("admin = true"));
    // A name its admin file would clash with, unless it has none.
    let refused = assert_fails_unchanged(
        &root,
        saaskit(&root).args(["generate", "resource", "viewer", "title:string"]),
    );
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("--no-admin"), "{stderr}");
    // A resource with pages after one without: the kit comes with it, and goes with it.
    generate_resource(&root, &["memo", "title:string"]);
    assert!(root.join("services/admin/src/resource_pages.rs").exists());
    saaskit(&root).args(["diff", "--check"]).assert().success();
    for name in ["memo", "note"] {
        saaskit(&root)
            .args(["destroy", "resource", name])
            .assert()
            .success();
    }
    assert_same_tree(&fresh, &read_tree(&root));

    let (_temp, root) = generate("acme", &["--yes", "--services", "api"]);
    let out = saaskit(&root)
        .args(["generate", "resource", "note", "body:text"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        format!("{stdout}{stderr}").contains("no admin pages for resource `note`"),
        "{stdout}{stderr}"
    );
    assert!(!read_tree(&root)["saaskit.toml"].contains("admin = true"));
}

/// Resources of one or two fields that need no check: rustfmt keeps a struct literal whose
/// fields take at most 18 columns on one line (`NewTag { name: current.name }`), and `values`
/// of a resource with nothing to check has no `errors` to fill (a `let mut` never changed fails
/// clippy's `unused_mut`; `FieldErrors` would be an unused import).
#[test]
fn resources_of_few_fields_are_rustfmt_clean_and_check_only_what_they_have() {
    let (_temp, root) = generate("acme", &["--yes"]);
    for spec in [
        &["tag", "name:string"][..],
        &["counter", "n:int"],
        &["pair", "a:int", "b:bool"],
        &["entry", "amount:float", "tag:ref?"],
        &["memo", "body:text?"],
    ] {
        generate_resource(&root, spec);
    }
    let core = root.join("crates/core/src");
    // rustfmt follows `mod tests;` into each core file's tests file.
    let files: Vec<_> = ["tag", "counter", "pair", "entry", "memo"]
        .iter()
        .map(|name| core.join(format!("{name}.rs")))
        .collect();
    let rustfmt = std::process::Command::new("rustfmt")
        .args(["--edition", "2024", "--check"])
        .args(&files)
        .output()
        .expect("rustfmt runs");
    assert!(
        rustfmt.status.success(),
        "{}",
        String::from_utf8_lossy(&rustfmt.stdout)
    );
    let tree = read_tree(&root);
    let counter = &tree["crates/core/src/counter.rs"];
    assert!(counter.contains("let merged = NewCounter { n: current.n };"));
    assert!(!counter.contains("errors"), "{counter}");
    assert!(!counter.contains("FieldErrors"), "{counter}");
    // `n: n` is written `n` (clippy's `redundant_field_names`).
    let counter_tests = &tree["crates/core/src/counter/tests.rs"];
    assert!(
        counter_tests.contains("    NewCounter { n }\n"),
        "{counter_tests}"
    );
    // An update of the only field names them all (no `..Default::default()`: clippy's
    // `needless_update`).
    assert!(counter_tests.contains("let change = CounterUpdate { n: Some(value) };"));
    let memo_tests = &tree["crates/core/src/memo/tests.rs"];
    assert!(
        memo_tests.contains("let clear = MemoUpdate { body: Some(None) };"),
        "{memo_tests}"
    );
    assert!(
        !tree["crates/core/src/tag/tests.rs"]
            .contains("TagUpdate {\n        name: Some(value.clone()),\n        ..")
    );
    // 19 columns of fields: one a line.
    assert!(
        tree["crates/core/src/pair/tests.rs"]
            .contains("    NewPair {\n        a: n,\n        b: n % 2 == 1,\n    }\n")
    );
    // A reference is checked even when no field has a check of its own.
    let entry = &tree["crates/core/src/entry.rs"];
    assert!(
        entry.contains("let mut errors = FieldErrors::new();"),
        "{entry}"
    );
    assert!(tree["crates/core/src/tag.rs"].contains("let mut errors = FieldErrors::new();"));
}

/// The longest names: a line's layout must not depend on them, or rustfmt would lay it out
/// again. rustfmt is run on the roots of every crate of the workspace (it follows `mod` into
/// every file, the snippets' targets too); building and linting them is
/// tests/e2e/resources.rs.
#[test]
fn resources_of_the_longest_names_are_rustfmt_clean() {
    let (_temp, root) = generate("acme", &["--yes"]);
    for spec in LONG_RESOURCES {
        generate_resource(&root, spec);
    }
    let roots: Vec<_> = [
        "crates/core/src/lib.rs",
        "services/api/src/main.rs",
        "services/admin/src/main.rs",
        "services/webhooks/src/main.rs",
    ]
    .iter()
    .map(|file| root.join(file))
    .collect();
    let rustfmt = std::process::Command::new("rustfmt")
        .args(["--edition", "2024", "--check"])
        .args(&roots)
        .output()
        .expect("rustfmt runs");
    assert!(
        rustfmt.status.success(),
        "{}{}",
        String::from_utf8_lossy(&rustfmt.stdout),
        String::from_utf8_lossy(&rustfmt.stderr)
    );
    let tree = read_tree(&root);
    // The files were generated where expected (else rustfmt would have checked nothing of theirs).
    let entry = &tree["services/api/src/warehouse_inventory_line_entry.rs"];
    assert!(
        entry.contains("let updated = repository::update(&db, &tenant.id, &id, update).await?;")
    );
    assert!(tree.contains_key(
        "services/admin/src/admin_quarterly_regional_supplier_performance_categories.rs"
    ));
    let main = &tree["services/admin/src/main.rs"];
    assert!(main.contains(
        "    let pages = admin_quarterly_regional_supplier_performance_categories::routes(&state);\n    let app = app.merge(pages);\n"
    ));
    // A name longer than 48 characters is refused, saying so.
    let name = format!("{}s_x", LONG_RESOURCES[0][0]);
    let refused = assert_fails_unchanged(
        &root,
        saaskit(&root).args(["generate", "resource", &name, "title:string"]),
    );
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("longer than 48 characters"), "{stderr}");
}

#[test]
fn an_edited_generated_snippet_stops_destroy_with_its_line_unless_forced() {
    let (_temp, root) = generate("acme", &["--yes", "--services", "api"]);
    let fresh = read_tree(&root);
    generate_resource(&root, &["note", "body:text", "--owner", "user"]);
    let main = root.join("services/api/src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    let edited = text.replace(
        "let app = app.merge(routes);",
        "let app = app.merge(routes); // mine",
    );
    assert_ne!(text, edited);
    std::fs::write(&main, &edited).unwrap();
    let refused =
        assert_fails_unchanged(&root, saaskit(&root).args(["destroy", "resource", "note"]));
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("services/api/src/main.rs:"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    std::fs::write(&main, &text).unwrap();
    saaskit(&root)
        .args(["destroy", "resource", "note"])
        .assert()
        .success();
    assert_same_tree(&fresh, &read_tree(&root));
}

#[test]
fn bad_specs_names_and_owners_are_refused_before_anything_is_written() {
    let (_temp, root) = generate("acme", &["--yes", "--services", "api"]);
    let cases: &[(&[&str], &str)] = &[
        (&["note", "title:strng"], "column 7: unknown type `strng`"),
        (&["note", "title:string:uniq"], "unknown marker `uniq`"),
        (&["note", "type:string"], "Rust keyword"),
        (&["note", "id:string"], "reserved"),
        (&["notes", "title:string"], "looks plural"),
        (&["impl", "title:string"], "Rust keyword"),
        (&["orgs", "title:string"], "looks plural"),
        (&["user", "title:string"], "module `users`"),
        (&["config", "title:string"], "file of that name"),
        (&["task", "project:ref"], "no resource `project`"),
        (&["note", "note:ref"], "must be optional (`note:ref?`)"),
        (
            &["note", "title:string", "--service", "nope"],
            "no service `nope`",
        ),
    ];
    for (args, expected) in cases {
        let outcome = assert_fails_unchanged(
            &root,
            saaskit(&root).args(["generate", "resource"]).args(*args),
        );
        let stderr = String::from_utf8_lossy(&outcome.get_output().stderr).into_owned();
        assert!(
            stderr.contains(expected),
            "{args:?}: expected `{expected}` in:\n{stderr}"
        );
    }
    // A second resource of one name, and a dry run, change nothing either.
    generate_resource(&root, &["note", "body:text"]);
    let outcome = assert_fails_unchanged(
        &root,
        saaskit(&root).args(["generate", "resource", "note", "x:int"]),
    );
    assert!(String::from_utf8_lossy(&outcome.get_output().stderr).contains("exists already"));
    let before = read_tree(&root);
    let dry = saaskit(&root)
        .args(["generate", "resource", "memo", "body:text", "--dry-run"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&dry.get_output().stdout).into_owned();
    assert!(stdout.contains("+++ b/crates/core/src/memo.rs"), "{stdout}");
    assert_same_tree(&before, &read_tree(&root));
}

#[test]
fn org_owner_needs_the_orgs_module() {
    let (_temp, root) = generate("acme", &["--yes", "--services", "api", "--modules", "auth"]);
    let outcome = assert_fails_unchanged(
        &root,
        saaskit(&root).args([
            "generate",
            "resource",
            "note",
            "body:text",
            "--owner",
            "org",
        ]),
    );
    let stderr = String::from_utf8_lossy(&outcome.get_output().stderr).into_owned();
    assert!(stderr.contains("needs the `orgs` module"), "{stderr}");
    // Without orgs, the rows are the user's by default.
    generate_resource(&root, &["note", "body:text"]);
    let handlers = std::fs::read_to_string(root.join("services/api/src/note.rs")).unwrap();
    assert!(handlers.contains("path = \"/api/notes/{id}\""));
}

// `generate job` and `generate email`.
#[path = "generate/handlers.rs"]
mod handlers;
