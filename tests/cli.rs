//! Every command and every error a user can hit, through the real binary.

mod common;

use common::{
    assert_fails_unchanged, assert_same_tree, assert_succeeds_unchanged, generate, nest_workspace,
    nest_workspace_with_hello, read_tree, saaskit, saaskit_with_fixtures,
};
use predicates::prelude::*;
use predicates::str::contains;

fn env_value(root: &std::path::Path, file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(root.join(file)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
}

// ----------------------------------------------------------------------------------------- new

#[test]
fn new_generates_the_default_workspace() {
    let (_temp, root) = generate("acme", &["--yes"]);
    for path in [
        "saaskit.toml",
        "saaskit.lock",
        "Cargo.toml",
        "README.md",
        ".gitignore",
        ".env",
        ".env.example",
        "crates/core/Cargo.toml",
        "crates/core/src/lib.rs",
        "services/api/src/main.rs",
        "services/admin/src/main.rs",
        "services/webhooks/src/main.rs",
    ] {
        assert!(root.join(path).is_file(), "{path} is missing");
    }
    let manifest = std::fs::read_to_string(root.join("saaskit.toml")).unwrap();
    assert!(manifest.contains("name = \"acme\""));
    assert!(manifest.contains("core = \"acme-core\""), "{manifest}");
    assert!(manifest.contains("[services.webhooks]"));
    // The library crate is named after the workspace, and so are the paths into it.
    let core = std::fs::read_to_string(root.join("crates/core/Cargo.toml")).unwrap();
    assert!(core.contains("name = \"acme-core\""), "{core}");
    let api = std::fs::read_to_string(root.join("services/api/Cargo.toml")).unwrap();
    assert!(
        api.contains("acme-core = { path = \"../../crates/core\" }"),
        "{api}"
    );
    let main = std::fs::read_to_string(root.join("services/api/src/main.rs")).unwrap();
    assert!(
        main.contains("acme_core::") && !main.contains("saaskit_core"),
        "{main}"
    );
    assert!(manifest.contains("modules = [\"db\""), "{manifest}");
    let gitignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(
        gitignore.lines().any(|l| l == ".env" || l == "/.env"),
        "{gitignore}"
    );
}

#[test]
fn new_dry_run_prints_a_diff_and_writes_nothing() {
    let temp = tempfile::tempdir().unwrap();
    assert_succeeds_unchanged(
        temp.path(),
        saaskit(temp.path()).args(["new", "acme", "--yes", "--dry-run"]),
    )
    .stdout(contains("--- /dev/null\n+++ b/saaskit.toml").and(contains("nothing was written")));
}

#[test]
fn new_refuses_a_non_empty_directory_unless_forced() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("acme");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("notes.txt"), "mine").unwrap();
    assert_fails_unchanged(
        temp.path(),
        saaskit(temp.path()).args(["new", "acme", "--yes"]),
    )
    .stderr(contains("already exists and is not empty").and(contains("--force")));

    saaskit(temp.path())
        .args(["new", "acme", "--yes", "--force"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(root.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(root.join("saaskit.toml").is_file());
}

#[test]
fn new_honours_output_services_modules_and_database() {
    let temp = tempfile::tempdir().unwrap();
    saaskit(temp.path())
        .args([
            "new",
            "acme",
            "--yes",
            "--output",
            "out/here",
            "--services",
            "api,billing=webhooks",
        ])
        .args(["--modules", "", "--db", "postgres"])
        .assert()
        .success();
    let root = temp.path().join("out/here");
    let manifest = std::fs::read_to_string(root.join("saaskit.toml")).unwrap();
    assert!(
        manifest.contains("[services.billing]\nkind = \"webhooks\"\nport = 8081\nmodules = []"),
        "{manifest}"
    );
    assert!(manifest.contains("database = \"postgres\""));
    assert!(!root.join("services/admin").exists());
    assert!(root.join("services/billing/src/main.rs").is_file());
    assert!(
        !root.join("crates/core/src/db.rs").exists(),
        "no modules were asked for"
    );
}

#[test]
fn new_with_a_nest_service_keeps_it_out_of_the_cargo_workspace() {
    let (_temp, root) = generate("acme", &["--yes", "--services", "api,nest"]);
    let manifest = std::fs::read_to_string(root.join("saaskit.toml")).unwrap();
    assert!(
        manifest.contains("[services.nest]\nkind = \"nest\"\nport = 8081\n"),
        "{manifest}"
    );
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains("members = [\n    \"crates/core\",\n    \"services/api\",\n]"),
        "only Rust services are Cargo workspace members:\n{cargo}"
    );
    assert!(!root.join("services/nest/Cargo.toml").exists());
    assert!(!root.join("services/nest/src/main.rs").exists());
    assert_eq!(
        env_value(&root, ".env", "NEST_ADDR").as_deref(),
        Some("127.0.0.1:8081")
    );
    // The default stays the three Rust services.
    let (_temp, root) = generate("acme", &["--yes"]);
    let manifest = std::fs::read_to_string(root.join("saaskit.toml")).unwrap();
    assert!(!manifest.contains("kind = \"nest\""), "{manifest}");
}

#[test]
fn new_with_postgres_points_database_url_at_postgres() {
    let (_temp, root) = generate("acme", &["--yes", "--db", "postgres", "--services", "api"]);
    let url = env_value(&root, ".env", "DATABASE_URL").expect("db is a default module");
    assert!(url.starts_with("postgres://"), "{url}");
}

#[test]
fn new_rejects_bad_names_kinds_and_modules() {
    let temp = tempfile::tempdir().unwrap();
    // A failed `new` writes nothing.
    let new = |args: &[&str]| {
        assert_fails_unchanged(temp.path(), saaskit(temp.path()).arg("new").args(args))
    };
    new(&["Acme!", "--yes"]).stderr(contains("not a valid name"));
    new(&["northwind-analytics-x", "--yes"]).stderr(contains("a workspace name has at most 20"));
    new(&["acme", "--yes", "--services", "api,mailer"])
        .stderr(contains("unknown service kind `mailer`"));
    new(&["acme", "--yes", "--services", "acme-core=api"]).stderr(contains(
        "`acme-core` is the package name of the workspace's library crate",
    ));
    new(&["acme", "--yes", "--modules", "dbb"])
        .stderr(contains("unknown module `dbb`; did you mean `db`"));
}

#[test]
fn each_workspace_gets_fresh_secrets() {
    let temp = tempfile::tempdir().unwrap();
    for name in ["one", "two"] {
        saaskit_with_fixtures(temp.path())
            .env_remove("SAASKIT_SEED")
            .args(["new", name, "--yes", "--modules", "fixture/greeting"])
            .assert()
            .success();
    }
    let one = env_value(&temp.path().join("one"), ".env", "GREETING_SECRET").unwrap();
    let two = env_value(&temp.path().join("two"), ".env", "GREETING_SECRET").unwrap();
    assert_eq!(one.len(), 64);
    assert_ne!(one, two);
    let example = env_value(&temp.path().join("one"), ".env.example", "GREETING_SECRET").unwrap();
    assert_eq!(example, "", "secrets never reach the committed example");
}

// ----------------------------------------------------------------------------------------- add

#[test]
fn add_outside_a_workspace_says_how_to_create_one() {
    let temp = tempfile::tempdir().unwrap();
    assert_fails_unchanged(temp.path(), saaskit(temp.path()).args(["add", "db"]))
        .stderr(contains("not inside a saaskit workspace").and(contains("saaskit new <name>")));
}

#[test]
fn add_installs_requirements_first_and_a_second_add_changes_nothing() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/needs-greeting"])
        .assert()
        .success()
        .stdout(contains(
            "installed `fixture/greeting` on api; `fixture/needs-greeting` on api",
        ));
    let lock = std::fs::read_to_string(root.join("saaskit.lock")).unwrap();
    assert!(
        lock.contains("id = \"fixture/greeting\"\nversion = \"0.1.0\"\nreason = \"dependency\""),
        "{lock}"
    );
    assert!(root.join("services/api/src/hello.rs").is_file());

    assert_succeeds_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["add", "fixture/needs-greeting"]),
    )
    .stdout(contains("already installed on api: nothing to do"));
}

#[test]
fn add_from_a_subdirectory_finds_the_workspace() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    saaskit(&root.join("services/api/src"))
        .args(["add", "db"])
        .assert()
        .success();
    assert!(root.join("crates/core/src/db.rs").is_file());
}

#[test]
fn add_refuses_conflicting_modules_naming_both() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/greeting"])
        .assert()
        .success();
    assert_fails_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["add", "fixture/rival"]),
    )
    .stderr(contains(
        "modules `fixture/greeting` and `fixture/rival` conflict",
    ));
}

#[test]
fn add_unknown_module_lists_the_closest_names() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    assert_fails_unchanged(&root, saaskit(&root).args(["add", "bd"]))
        .stderr(contains("did you mean `db`"));
    assert_fails_unchanged(&root, saaskit(&root).args(["add", "zzzzzz"]))
        .stderr(contains("the catalog has:").and(contains("db")));
}

#[test]
fn add_to_a_service_of_the_wrong_kind_or_an_unknown_service_fails() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    assert_fails_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["add", "fixture/needs-greeting", "--service", "admin"]),
    )
    .stderr(contains(
        "applies to services of kind api; `admin` is a `admin` service",
    ));
    assert_fails_unchanged(
        &root,
        saaskit(&root).args(["add", "db", "--service", "nope"]),
    )
    .stderr(contains("no service `nope`"));
}

#[test]
fn add_to_one_service_then_the_others() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    saaskit(&root)
        .args(["add", "db", "--service", "api"])
        .assert()
        .success();
    let main = std::fs::read_to_string(root.join("services/admin/src/main.rs")).unwrap();
    assert!(!main.contains("<<<begin:db@"), "admin was not asked for");
    saaskit(&root)
        .args(["add", "db"])
        .assert()
        .success()
        .stdout(contains("installed `db` on admin, webhooks"));
    let main = std::fs::read_to_string(root.join("services/admin/src/main.rs")).unwrap();
    assert!(main.contains("<<<begin:db@startup>>>"));
}

#[test]
fn add_dry_run_prints_the_diff_and_changes_nothing() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    assert_succeeds_unchanged(&root, saaskit(&root).args(["add", "db", "--dry-run"])).stdout(
        contains("+++ b/crates/core/src/db.rs").and(contains("+    // <<<begin:db@startup>>>")),
    );
}

#[test]
fn a_snippet_that_breaks_the_file_names_module_marker_file_and_line() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    assert_fails_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["add", "fixture/broken"]),
    )
    .stderr(
        contains("module `fixture/broken`, marker `mods`: services/api/src/main.rs")
            .and(contains("line")),
    );
}

#[test]
fn a_missing_or_duplicated_marker_is_an_error_naming_file_and_marker() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    let main = root.join("services/api/src/main.rs");
    let original = std::fs::read_to_string(&main).unwrap();

    std::fs::write(
        &main,
        original.replace("// <<<inject:startup>>>", "// (marker removed)"),
    )
    .unwrap();
    assert_fails_unchanged(&root, saaskit(&root).args(["add", "db"]))
        .stderr(contains("services/api/src/main.rs").and(contains("startup")));

    let doubled = original.replace(
        "// <<<inject:startup>>>",
        "// <<<inject:startup>>>\n    // <<<inject:startup>>>",
    );
    std::fs::write(&main, doubled).unwrap();
    assert_fails_unchanged(&root, saaskit(&root).args(["add", "db"])).stderr(
        contains("services/api/src/main.rs")
            .and(contains("startup"))
            .and(contains("appears 2 times")),
    );
}

// -------------------------------------------------------------------------------------- remove

#[test]
fn remove_refuses_while_another_module_requires_it() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/needs-greeting"])
        .assert()
        .success();
    assert_fails_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["remove", "fixture/greeting"]),
    )
    .stderr(contains(
        "module `fixture/needs-greeting` on service `api` requires it",
    ));
}

#[test]
fn remove_refuses_while_a_module_on_another_service_requires_it() {
    // `admin/orgs` (admin service) requires `orgs` (api), whose library code it uses.
    let (_temp, root) = generate("acme", &["--yes"]);
    // The api's own dependents of `orgs` first (billing per organization, and its page section).
    for module in ["admin/org-billing", "billing/orgs"] {
        saaskit(&root).args(["remove", module]).assert().success();
    }
    assert_fails_unchanged(&root, saaskit(&root).args(["remove", "orgs"])).stderr(contains(
        "cannot remove `orgs`: module `admin/orgs` on service `admin` requires it",
    ));
    for module in ["admin/orgs", "orgs"] {
        saaskit(&root).args(["remove", module]).assert().success();
    }
}

#[test]
fn remove_takes_out_requirements_nothing_else_needs() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    let fresh = read_tree(&root);
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/needs-greeting"])
        .assert()
        .success();
    saaskit_with_fixtures(&root)
        .args(["remove", "fixture/needs-greeting"])
        .assert()
        .success()
        .stdout(contains(
            "removed `fixture/needs-greeting` on api; `fixture/greeting` on",
        ));
    let mut after = read_tree(&root);
    // The generated secret is the one thing that differs between runs of `new` and `add`.
    after.insert(".env".into(), fresh[".env"].clone());
    assert_same_tree(&fresh, &after);
}

#[test]
fn remove_keeps_an_edited_file_and_reports_it_unless_forced() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/needs-greeting"])
        .assert()
        .success();
    let hello = root.join("services/api/src/hello.rs");
    std::fs::write(&hello, "// my own hello\n").unwrap();
    saaskit_with_fixtures(&root)
        .args(["remove", "fixture/needs-greeting"])
        .assert()
        .success()
        .stdout(contains("kept services/api/src/hello.rs"));
    assert_eq!(
        std::fs::read_to_string(&hello).unwrap(),
        "// my own hello\n"
    );

    assert_fails_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["add", "fixture/needs-greeting"]),
    )
    .stderr(contains(
        "services/api/src/hello.rs already exists and was not generated by saaskit",
    ));
    std::fs::remove_file(&hello).unwrap();
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/needs-greeting"])
        .assert()
        .success();
    std::fs::write(&hello, "// edited again\n").unwrap();
    saaskit_with_fixtures(&root)
        .args(["remove", "fixture/needs-greeting", "--force"])
        .assert()
        .success();
    assert!(!hello.exists());
}

#[test]
fn remove_refuses_to_drop_an_edited_snippet_unless_forced() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    saaskit(&root).args(["add", "db"]).assert().success();
    let main = root.join("services/api/src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    let edited = text.replacen(
        "// <<<begin:db@startup>>>\n",
        "// <<<begin:db@startup>>>\n    tracing::info!(\"db!\");\n",
        1,
    );
    assert_ne!(text, edited);
    std::fs::write(&main, &edited).unwrap();
    assert_fails_unchanged(&root, saaskit(&root).args(["remove", "db"])).stderr(
        contains("services/api/src/main.rs:")
            .and(contains("`startup` snippet of module `db` was edited")),
    );
    saaskit(&root)
        .args(["remove", "db", "--force"])
        .assert()
        .success();
    assert!(
        !std::fs::read_to_string(&main)
            .unwrap()
            .contains("begin:db@")
    );
}

#[test]
fn remove_of_a_module_that_is_not_installed_fails() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    assert_fails_unchanged(&root, saaskit(&root).args(["remove", "db"]))
        .stderr(contains("`db` is not installed"));
}

#[test]
fn remove_dry_run_changes_nothing() {
    let (_temp, root) = generate("acme", &["--yes"]);
    assert_succeeds_unchanged(&root, saaskit(&root).args(["remove", "users", "--dry-run"]))
        .stdout(contains("--- a/crates/core/src/profile.rs"));
}

// ------------------------------------------------------------------------ manifest and lock

#[test]
fn a_broken_manifest_is_reported_with_file_line_and_column() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    let path = root.join("saaskit.toml");
    let text = std::fs::read_to_string(&path).unwrap();

    let add_db = || assert_fails_unchanged(&root, saaskit(&root).args(["add", "db"]));

    std::fs::write(&path, text.replace("kind = \"admin\"", "kind = \"admn\"")).unwrap();
    add_db().stderr(
        predicate::str::is_match(r"saaskit\.toml:\d+:8: unknown service kind `admn`").unwrap(),
    );

    std::fs::write(&path, text.replace("[workspace]", "[workspace")).unwrap();
    add_db().stderr(predicate::str::is_match(r"saaskit\.toml:\d+:\d+: invalid TOML").unwrap());

    std::fs::write(&path, text.replace("port = 8081", "port = 8080")).unwrap();
    add_db().stderr(contains("port 8080 is already used by service `api`"));
}

#[test]
fn user_comments_in_the_manifest_survive_add_and_remove() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    let path = root.join("saaskit.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let commented = text.replace(
        "[services.api]\n",
        "# our public API\n[services.api]\nowner = \"team-a\" # who to page\n",
    );
    std::fs::write(&path, &commented).unwrap();
    saaskit(&root).args(["add", "db"]).assert().success();
    let added = std::fs::read_to_string(&path).unwrap();
    assert!(
        added.contains("# our public API\n[services.api]\nowner = \"team-a\" # who to page\n"),
        "{added}"
    );
    saaskit(&root).args(["remove", "db"]).assert().success();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), commented);
}

#[test]
fn a_damaged_or_missing_lock_is_reported_not_a_panic() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    let add_db = || assert_fails_unchanged(&root, saaskit(&root).args(["add", "db"]));
    std::fs::write(root.join("saaskit.lock"), "this is = = not toml").unwrap();
    add_db().stderr(contains("saaskit.lock is damaged"));
    std::fs::remove_file(root.join("saaskit.lock")).unwrap();
    add_db().stderr(contains("saaskit.lock is missing"));
}

// ------------------------------------------------------------ kinds, kind defaults, teardown order

const API_MAIN: &str = "services/api/src/main.rs";
const WEBHOOKS_MAIN: &str = "services/webhooks/src/main.rs";

fn read(root: &std::path::Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// `fixture/per-kind` has its handlers file and its `mods` and `routes` snippets for api
/// services only, and a `shutdown` snippet for every service it is on.
#[test]
fn entries_limited_to_some_kinds_are_generated_checked_and_removed_alike() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    let bare = read_tree(&root);
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/per-kind"])
        .assert()
        .success()
        .stdout(contains("installed `fixture/per-kind` on api, webhooks"));
    assert!(root.join("services/api/src/handlers.rs").is_file());
    assert!(!root.join("services/webhooks/src/handlers.rs").exists());
    let api = read(&root, API_MAIN);
    let webhooks = read(&root, WEBHOOKS_MAIN);
    for marker in ["mods", "routes", "shutdown"] {
        let begin = format!("<<<begin:fixture/per-kind@{marker}>>>");
        assert!(api.contains(&begin), "api lacks {begin}:\n{api}");
        assert_eq!(
            webhooks.contains(&begin),
            marker == "shutdown",
            "{webhooks}"
        );
    }

    // diff, upgrade and doctor re-render or check the same entries.
    assert_succeeds_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["diff", "--check"]),
    );
    assert_succeeds_unchanged(&root, saaskit_with_fixtures(&root).arg("upgrade"))
        .stdout(contains("already up to date"));
    let output = saaskit_with_fixtures(&root)
        .args(["doctor", "--json"])
        .env("API_ADDR", "127.0.0.1:0")
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .env("WEBHOOKS_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    let findings: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let fences: Vec<&serde_json::Value> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "fences")
        .collect();
    assert!(
        fences.len() == 1 && fences[0]["severity"] == "ok",
        "doctor: {fences:?}"
    );

    saaskit_with_fixtures(&root)
        .args(["remove", "fixture/per-kind"])
        .assert()
        .success()
        .stdout(contains("note:").not());
    assert_same_tree(&bare, &read_tree(&root));
}

#[test]
fn new_installs_a_default_on_some_kinds_on_those_services_only() {
    let temp = tempfile::tempdir().unwrap();
    saaskit_with_fixtures(temp.path())
        .args(["new", "acme", "--yes"])
        .assert()
        .success();
    let root = temp.path().join("acme");
    let manifest: toml_edit::DocumentMut = read(&root, "saaskit.toml").parse().unwrap();
    let has = |service: &str| {
        manifest["services"][service]["modules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str() == Some("fixture/per-kind"))
    };
    assert!(has("api"));
    assert!(!has("webhooks"), "a default on api services only");
    // `add` still puts it on the other kind it applies to.
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/per-kind"])
        .assert()
        .success()
        .stdout(contains("installed `fixture/per-kind` on webhooks"));

    saaskit_with_fixtures(temp.path())
        .arg("list")
        .assert()
        .success()
        .stdout(contains("(default on api)"));
    let output = saaskit_with_fixtures(temp.path())
        .args(["info", "fixture/per-kind", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let info: serde_json::Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(info["default"], serde_json::json!(["api"]));
    assert_eq!(
        info["files"],
        serde_json::json!(["{{ service.dir }}/src/handlers.rs (per service of kind api)"])
    );
}

#[test]
fn shutdown_blocks_run_in_reverse_install_order() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", "", "--services", "api"]);
    saaskit(&root).args(["add", "db"]).assert().success();
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/per-kind"])
        .assert()
        .success();
    let main = read(&root, API_MAIN);
    let at = |fence: &str| {
        main.find(fence)
            .unwrap_or_else(|| panic!("no {fence}:\n{main}"))
    };
    // Installed last, stopped first: before `db` closes the pool it might still use.
    assert!(
        at("<<<inject:shutdown>>>") < at("<<<begin:fixture/per-kind@shutdown>>>")
            && at("<<<end:fixture/per-kind@shutdown>>>") < at("<<<begin:db@shutdown>>>"),
        "{main}"
    );
    let installed = read_tree(&root);
    assert_succeeds_unchanged(&root, saaskit_with_fixtures(&root).arg("upgrade"))
        .stdout(contains("already up to date"));
    assert_succeeds_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["diff", "--check"]),
    );
    saaskit_with_fixtures(&root)
        .args(["remove", "fixture/per-kind"])
        .assert()
        .success();
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/per-kind"])
        .assert()
        .success();
    assert_same_tree(&installed, &read_tree(&root));
}

// ----------------------------------------------------------------------------------- list, info

#[test]
fn list_shows_the_catalog_and_installed_state() {
    let temp = tempfile::tempdir().unwrap();
    saaskit(temp.path())
        .arg("list")
        .assert()
        .success()
        .stdout(contains("db").and(contains("(default)")));

    let (_temp, root) = generate("acme", &["--yes", "--services", "api"]);
    let output = saaskit(&root)
        .args(["list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let modules: serde_json::Value = serde_json::from_slice(&output).unwrap();
    let db = modules
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "db")
        .expect("db is listed");
    assert_eq!(db["installed_on"], serde_json::json!(["api"]));
    assert_eq!(db["default"], true);
}

#[test]
fn info_describes_a_module() {
    let temp = tempfile::tempdir().unwrap();
    saaskit(temp.path())
        .args(["info", "db"])
        .assert()
        .success()
        .stdout(contains("DATABASE_URL").and(contains("{{ workspace.core.dir }}/src/db.rs")));
    let output = saaskit(temp.path())
        .args(["info", "db", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let info: serde_json::Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(info["id"], "db");
    assert_eq!(
        info["installed_on"],
        serde_json::Value::Null,
        "not inside a workspace"
    );
    saaskit(temp.path())
        .args(["info", "dv"])
        .assert()
        .failure()
        .stderr(contains("did you mean `db`"));
}

// ---------------------------------------------------------------------------------------- wizard

/// Drives the interactive wizard through a pseudo-terminal (util-linux `script`): accept the
/// services, untick the default module, pick PostgreSQL. Each answer is typed once its prompt
/// shows, and `timeout` bounds the whole run so that a stuck prompt fails instead of hanging.
#[test]
fn the_wizard_asks_for_services_modules_and_database_in_a_terminal() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let temp = tempfile::tempdir().unwrap();
    let binary = assert_cmd::cargo::cargo_bin("saaskit");
    let mut child = Command::new("timeout")
        .args([
            "60",
            "script",
            "-qec",
            &format!("{} new wiz", binary.display()),
            "/dev/null",
        ])
        .current_dir(temp.path())
        .env("SAASKIT_SEED", common::TEST_SEED)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("util-linux `script` is installed");
    let screen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let screen = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1024];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                screen
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    // Enter: all services; `a` twice + enter: no modules (`a` ticks every module unless all
    // are, and only the defaults are ticked at first); down + enter: postgres.
    for (prompt, keys) in [
        ("Services", "\r"),
        ("Modules", "aa\r"),
        ("Default database", "\x1b[B\r"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !screen.lock().unwrap().contains(prompt) {
            assert!(
                Instant::now() < deadline,
                "no `{prompt}` prompt: {}",
                screen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the prompt finish drawing and switch the terminal to raw mode.
        std::thread::sleep(Duration::from_millis(200));
        stdin.write_all(keys.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "{}", screen.lock().unwrap());
    let manifest = std::fs::read_to_string(temp.path().join("wiz/saaskit.toml")).unwrap();
    assert!(manifest.contains("database = \"postgres\""), "{manifest}");
    assert!(manifest.contains("[services.webhooks]"), "{manifest}");
    assert!(
        manifest.contains("modules = []"),
        "the default modules were unticked: {manifest}"
    );
}

// ----------------------------------------------------------------------------------- completions

#[test]
fn completions_are_printed_for_each_shell() {
    let temp = tempfile::tempdir().unwrap();
    for (shell, expected) in [
        ("bash", "_saaskit()"),
        ("zsh", "#compdef saaskit"),
        ("fish", "complete -c saaskit"),
    ] {
        saaskit(temp.path())
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(contains(expected).and(contains("doctor")));
    }
    saaskit(temp.path())
        .args(["completions", "tcsh"])
        .assert()
        .failure()
        .stderr(contains("invalid value 'tcsh'"));
}

// ----------------------------------------------------------------------------------- pipes

#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let temp = tempfile::tempdir().unwrap();
    let saaskit = assert_cmd::cargo::cargo_bin("saaskit");
    // The dry-run diff of a new workspace is far larger than a pipe's buffer, so the write after
    // `head` has gone fails.
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' new acme --yes --dry-run | head -n 1 >/dev/null; echo \"status ${{PIPESTATUS[0]}}\" >&2",
            saaskit.display()
        ))
        .current_dir(temp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("status 141"), "{stderr}");
}

// ---------------------------------------------------------------------------------- nest kind

#[test]
fn add_and_remove_splice_typescript_into_a_nest_service() {
    let (_temp, root) = nest_workspace();
    let before = read_tree(&root);
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/nest-hello"])
        .assert()
        .success()
        .stdout(contains("installed `fixture/nest-hello` on nest"));
    let module = std::fs::read_to_string(root.join("services/nest/src/app.module.ts")).unwrap();
    assert!(
        module.contains(
            "// <<<inject:imports>>>\n// <<<begin:fixture/nest-hello@imports>>>\n\
             import { HelloModule } from \"./hello.module\";\n// <<<end:fixture/nest-hello@imports>>>"
        ),
        "{module}"
    );
    assert!(
        module.contains("        // <<<begin:fixture/nest-hello@routes>>>\n        HelloModule,\n"),
        "{module}"
    );
    assert!(root.join("services/nest/src/hello.module.ts").is_file());
    assert_eq!(
        env_value(&root, ".env", "NEST_HELLO_GREETING").as_deref(),
        Some("hello")
    );
    // Nothing Cargo: the nest service is not a crate.
    let after = read_tree(&root);
    for cargo in [
        "Cargo.toml",
        "services/api/Cargo.toml",
        "crates/core/Cargo.toml",
    ] {
        assert_eq!(before[cargo], after[cargo], "{cargo} changed");
    }

    saaskit_with_fixtures(&root)
        .args(["remove", "fixture/nest-hello"])
        .assert()
        .success();
    assert_same_tree(&before, &read_tree(&root));
}

#[test]
fn a_typescript_snippet_that_breaks_its_file_is_refused_with_file_and_line() {
    let (_temp, root) = nest_workspace();
    let message = assert_fails_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["add", "fixture/nest-broken"]),
    )
    .get_output()
    .stderr
    .clone();
    let message = String::from_utf8(message).unwrap();
    let module = std::fs::read_to_string(root.join("services/nest/src/app.module.ts")).unwrap();
    // The error is on the snippet's line: the line after the marker and the block's opening fence.
    let marker_line = module
        .lines()
        .position(|l| l.contains("<<<inject:routes>>>"))
        .unwrap()
        + 1;
    let expected = format!("services/nest/src/app.module.ts:{}:", marker_line + 2);
    assert!(
        message.contains(&expected)
            && message.contains(
                "inserting the block of `fixture/nest-broken` at marker `routes` leaves invalid \
                 TypeScript"
            ),
        "expected {expected} in:\n{message}"
    );
}

#[test]
fn a_nest_file_broken_before_the_splice_is_reported_as_such() {
    let (_temp, root) = nest_workspace();
    let path = root.join("services/nest/src/app.module.ts");
    let text = std::fs::read_to_string(&path).unwrap();
    let broken = text.replacen("export class AppModule {", "export class AppModule {{", 1);
    std::fs::write(&path, &broken).unwrap();
    assert_fails_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["add", "fixture/nest-hello"]),
    )
    .stderr(
        contains("services/nest/src/app.module.ts:")
            .and(contains("is not valid TypeScript even before injecting")),
    );
}

#[test]
fn remove_refuses_an_edited_typescript_snippet_with_its_line_unless_forced() {
    let (_temp, root) = nest_workspace_with_hello();
    let path = root.join("services/nest/src/app.module.ts");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("        HelloModule,\n", "        HelloModule, // mine\n"),
    )
    .unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("<<<begin:fixture/nest-hello@routes>>>"))
        .unwrap()
        + 1;
    assert_fails_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["remove", "fixture/nest-hello"]),
    )
    .stderr(contains(format!(
        "services/nest/src/app.module.ts:{line}: the `routes` snippet of module \
         `fixture/nest-hello` was edited"
    )));
    saaskit_with_fixtures(&root)
        .args(["remove", "fixture/nest-hello", "--force"])
        .assert()
        .success();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("HelloModule"), "{text}");
}

// ------------------------------------------------------------------------------------- service

#[test]
fn service_add_then_remove_gives_back_the_same_tree_for_each_language() {
    let (_temp, root) = generate("acme", &["--yes", "--services", "api"]);
    let before = read_tree(&root);
    saaskit(&root)
        .args(["service", "add", "billing", "--kind", "webhooks"])
        .assert()
        .success()
        .stdout(contains(
            "added service `billing` (webhooks kind, port 8081)",
        ));
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains("    \"services/api\",\n    \"services/billing\",\n]"),
        "{cargo}"
    );
    let manifest = std::fs::read_to_string(root.join("saaskit.toml")).unwrap();
    assert!(
        manifest
            .contains("[services.billing]\nkind = \"webhooks\"\nport = 8081\nmodules = [\"db\""),
        "the kind's default modules are installed:\n{manifest}"
    );
    assert!(root.join("services/billing/src/main.rs").is_file());
    assert_eq!(
        env_value(&root, ".env", "BILLING_ADDR").as_deref(),
        Some("127.0.0.1:8081")
    );
    saaskit(&root)
        .args(["service", "add", "nest", "--kind", "nest", "--port", "9000"])
        .assert()
        .success();
    let cargo_after_nest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert_eq!(cargo, cargo_after_nest, "a nest service is no Cargo member");
    assert!(root.join("services/nest/package.json").is_file());
    assert_eq!(
        env_value(&root, ".env", "NEST_ADDR").as_deref(),
        Some("127.0.0.1:9000")
    );
    // What `service add` generated is what the templates generate: nothing to upgrade.
    saaskit(&root).args(["diff", "--check"]).assert().success();

    saaskit(&root)
        .args(["service", "remove", "nest"])
        .assert()
        .success();
    saaskit(&root)
        .args(["service", "remove", "billing"])
        .assert()
        .success()
        .stdout(contains("removed service `billing` and"));
    assert_same_tree(&before, &read_tree(&root));
}

#[test]
fn service_add_refuses_bad_names_kinds_and_ports_unchanged() {
    let (_temp, root) = generate("acme", &["--yes", "--services", "api", "--modules", ""]);
    let add = |args: &[&str]| {
        assert_fails_unchanged(&root, saaskit(&root).args(["service", "add"]).args(args))
    };
    add(&["web", "--kind", "nextjs"]).stderr(contains(
        "unknown service kind `nextjs`; expected one of api, admin, webhooks, nest",
    ));
    add(&["api", "--kind", "api"]).stderr(contains("already has a service `api`"));
    add(&["Web", "--kind", "nest"]).stderr(contains("not a valid name"));
    add(&["acme-core", "--kind", "api"]).stderr(contains("library crate"));
    add(&["web", "--kind", "nest", "--port", "8080"])
        .stderr(contains("port 8080 is already used by service `api`"));
    assert_succeeds_unchanged(
        &root,
        saaskit(&root).args(["service", "add", "web", "--kind", "nest", "--dry-run"]),
    )
    .stdout(contains("+++ b/services/web/src/main.ts"));
}

#[test]
fn service_add_keeps_the_user_s_edits_of_the_files_it_changes() {
    let (_temp, root) = generate("acme", &["--yes", "--services", "api", "--modules", ""]);
    let cargo = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&cargo).unwrap();
    std::fs::write(&cargo, format!("{text}\n# mine\n")).unwrap();
    saaskit(&root)
        .args(["service", "add", "ops", "--kind", "admin"])
        .assert()
        .success();
    let text = std::fs::read_to_string(&cargo).unwrap();
    assert!(
        text.contains("\"services/ops\",") && text.ends_with("\n# mine\n"),
        "{text}"
    );
    // Editing the lines the change touches stops it, naming the place.
    std::fs::write(
        &cargo,
        text.replace(
            "    \"services/ops\",\n]",
            "    \"services/ops\", \"x\",\n]",
        ),
    )
    .unwrap();
    assert_fails_unchanged(
        &root,
        saaskit(&root).args(["service", "add", "web", "--kind", "api"]),
    )
    .stderr(contains("Cargo.toml:").and(contains("adding service `web` changes lines")));
}

#[test]
fn service_remove_refuses_edited_files_with_their_line_unless_forced() {
    let (_temp, root) = nest_workspace();
    let main = root.join("services/nest/src/main.ts");
    let text = std::fs::read_to_string(&main).unwrap();
    let edited = text.replacen(
        "async function main()",
        "async function main() /* mine */",
        1,
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("async function main()"))
        .unwrap()
        + 1;
    std::fs::write(&main, edited).unwrap();
    assert_fails_unchanged(&root, saaskit(&root).args(["service", "remove", "nest"])).stderr(
        contains(format!(
            "services/nest/src/main.ts:{line}: edited since saaskit generated it"
        ))
        .and(contains("--force")),
    );
    assert_fails_unchanged(&root, saaskit(&root).args(["service", "remove", "web"])).stderr(
        contains("no service `web` in this workspace (services: api, nest)"),
    );
    saaskit(&root)
        .args(["service", "remove", "nest", "--force"])
        .assert()
        .success();
    assert!(!main.exists());
    assert_fails_unchanged(&root, saaskit(&root).args(["service", "remove", "api"]))
        .stderr(contains("the workspace's only service"));
}

#[test]
fn list_and_info_show_the_kinds_a_module_supports_by_language() {
    let temp = tempfile::tempdir().unwrap();
    saaskit_with_fixtures(temp.path())
        .arg("list")
        .assert()
        .success()
        .stdout(
            contains("kinds: nest (TypeScript)  requires: -")
                .and(contains("kinds: api, admin, webhooks (Rust)  requires: -")),
        );
    saaskit_with_fixtures(temp.path())
        .args(["info", "fixture/nest-hello"])
        .assert()
        .success()
        .stdout(contains("  kinds:      nest (TypeScript)\n"));
    let json = saaskit_with_fixtures(temp.path())
        .args(["info", "fixture/nest-hello", "--json"])
        .output()
        .unwrap()
        .stdout;
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["services"], serde_json::json!(["nest"]));
    assert_eq!(json["languages"], serde_json::json!(["typescript"]));
}

#[test]
fn deployment_files_ship_release_binaries_of_the_rust_services_and_node_for_nest() {
    let (_temp, root) = generate(
        "acme",
        &[
            "--yes",
            "--services",
            "nest,api",
            "--modules",
            "db,deploy/docker,deploy/compose",
        ],
    );
    for file in ["Dockerfile", "compose.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(text.contains("acme-api"), "{file}:\n{text}");
        // No Rust binary named after the nest service: it is no Cargo package.
        assert!(
            !text.contains("release/nest") && !text.contains("nest migrate"),
            "{file} ships no nest binary:\n{text}"
        );
    }
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("FROM node:20-bookworm-slim AS nest\n"),
        "{dockerfile}"
    );
}
