//! `saaskit upgrade` across two versions of a fixture module: a workspace gets
//! `fixture/greeting` 0.1.0 from `tests/fixtures/modules`, then upgrades to 0.2.0 from
//! `tests/fixtures/modules-v2` (`greeting.rs` changes on its `text` lines, the `routes` snippet
//! calls the renamed function, `farewell.rs` is dropped, `welcome.rs` is new, and there is a new
//! env key).

mod common;

use std::path::{Path, PathBuf};

use common::{
    assert_fails_unchanged, assert_succeeds_unchanged, copies, generate, nest_workspace_with_hello,
    read_tree, saaskit, saaskit_with_fixtures, saaskit_with_later_fixtures,
};
use predicates::prelude::*;
use predicates::str::contains;

const GREETING: &str = "crates/core/src/greeting.rs";
const FAREWELL: &str = "crates/core/src/farewell.rs";
const WELCOME: &str = "crates/core/src/welcome.rs";
const API_MAIN: &str = "services/api/src/main.rs";

fn fixture(version_dir: &str, file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(version_dir)
        .join("fixture/greeting/files/core/src")
        .join(file);
    std::fs::read_to_string(path).unwrap()
}

fn upgrade(root: &Path) -> assert_cmd::Command {
    let mut command = saaskit_with_later_fixtures(root);
    command.arg("upgrade");
    command
}

/// A workspace without modules, then `fixture/greeting` 0.1.0 added on every service.
fn workspace_with_greeting_v1() -> (tempfile::TempDir, PathBuf) {
    let (temp, root) = generate("acme", &["--yes", "--modules", ""]);
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/greeting"])
        .assert()
        .success();
    (temp, root)
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap()
}

fn edit(root: &Path, path: &str, from: &str, to: &str) {
    let text = read(root, path);
    assert!(text.contains(from), "{path} has no `{from}`");
    std::fs::write(root.join(path), text.replacen(from, to, 1)).unwrap();
}

fn env_value(root: &Path, key: &str) -> Option<String> {
    read(root, ".env")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[test]
fn new_add_and_remove_keep_a_pristine_copy_of_every_generated_file_but_env() {
    let (_temp, root) = workspace_with_greeting_v1();
    let tree = read_tree(&root);
    let stored = copies(&root);
    let saaskit_files: Vec<&String> = tree.keys().filter(|p| p.starts_with(".saaskit/")).collect();
    assert_eq!(
        saaskit_files,
        [".saaskit/base.pack"],
        "one file holds the copies"
    );
    for (path, content) in &tree {
        if path.starts_with(".saaskit/")
            || ["saaskit.toml", "saaskit.lock", ".env"].contains(&path.as_str())
        {
            continue;
        }
        assert_eq!(stored.get(path), Some(content), "the copy of {path}");
    }
    assert_eq!(stored.len(), tree.len() - 4, "a copy of each file, no more");
    assert!(!stored.contains_key(".env"), ".env holds secrets");
    assert!(stored.contains_key(".env.example"));
    assert!(
        !read(&root, ".gitignore").contains(".saaskit"),
        "the base store is committed with the workspace"
    );

    saaskit_with_fixtures(&root)
        .args(["remove", "fixture/greeting"])
        .assert()
        .success();
    assert!(!copies(&root).contains_key(GREETING));
    assert_eq!(copies(&root)[API_MAIN], read(&root, API_MAIN));
}

#[test]
fn an_untouched_workspace_takes_the_new_templates() {
    let (_temp, root) = workspace_with_greeting_v1();
    let secret = env_value(&root, "GREETING_SECRET").unwrap();
    upgrade(&root).assert().success().stdout(
        contains(format!("updated          {GREETING}\n"))
            .and(contains(format!("updated          {API_MAIN}\n")))
            .and(contains(format!("added            {WELCOME}\n")))
            .and(contains(format!("removed          {FAREWELL}\n")))
            .and(contains("updated          .env (new keys GREETING_STYLE;"))
            .and(contains("fixture/greeting 0.1.0 -> 0.2.0")),
    );
    assert_eq!(read(&root, GREETING), fixture("modules-v2", "greeting.rs"));
    assert_eq!(read(&root, WELCOME), fixture("modules-v2", "welcome.rs"));
    assert!(!root.join(FAREWELL).exists());
    assert!(read(&root, API_MAIN).contains("acme_core::greeting::text_v2()"));
    assert_eq!(
        env_value(&root, "GREETING_SECRET"),
        Some(secret),
        "values are kept"
    );
    assert_eq!(env_value(&root, "GREETING_STYLE").as_deref(), Some("plain"));
    assert!(read(&root, ".env.example").contains("GREETING_STYLE=plain"));
    let lock = read(&root, "saaskit.lock");
    assert!(
        lock.contains("id = \"fixture/greeting\"\nversion = \"0.2.0\"\nreason = \"explicit\""),
        "{lock}"
    );
    assert!(!lock.contains(FAREWELL), "{lock}");
    assert_eq!(copies(&root)[GREETING], read(&root, GREETING));
    assert!(!copies(&root).contains_key(FAREWELL));
    // The workspace is now exactly what the new templates generate.
    saaskit_with_later_fixtures(&root)
        .args(["diff", "--check"])
        .assert()
        .success();
}

#[test]
fn a_user_edit_away_from_the_change_merges_cleanly() {
    let (_temp, root) = workspace_with_greeting_v1();
    edit(
        &root,
        GREETING,
        "MAX_LEN: usize = 64",
        "MAX_LEN: usize = 128",
    );
    edit(
        &root,
        API_MAIN,
        "// <<<inject:mods>>>\n",
        "// <<<inject:mods>>>\nmod mine;\n",
    );
    upgrade(&root).assert().success().stdout(
        contains(format!("merged           {GREETING}\n"))
            .and(contains(format!("merged           {API_MAIN}\n"))),
    );
    let expected = fixture("modules-v2", "greeting.rs").replace("= 64", "= 128");
    assert_eq!(read(&root, GREETING), expected);
    let main = read(&root, API_MAIN);
    assert!(
        main.contains("mod mine;\n") && main.contains("text_v2()"),
        "{main}"
    );
    // The user's edits are all that differs from the new templates.
    saaskit_with_later_fixtures(&root)
        .args(["diff", "--check"])
        .assert()
        .success()
        .stdout(contains(format!("edited                   {GREETING}")));
}

#[test]
fn an_edit_on_the_same_lines_yields_conflict_markers_and_a_failure() {
    let (_temp, root) = workspace_with_greeting_v1();
    edit(&root, GREETING, "\"hello\"", "\"hi\"");
    upgrade(&root)
        .assert()
        .failure()
        .stdout(
            contains(format!("conflict         {GREETING} (1 conflict)\n"))
                .and(contains(format!("updated          {API_MAIN}\n"))),
        )
        .stderr(contains(format!("1 file(s) have conflicts: {GREETING}")));
    let text = read(&root, GREETING);
    let conflict = format!(
        "<<<<<<< ours: {GREETING}\n\
         pub fn text() -> &'static str {{\n    \"hi\"\n\
         ||||||| base: {GREETING} as saaskit 0.1.0 generated it\n\
         pub fn text() -> &'static str {{\n    \"hello\"\n\
         =======\n\
         pub fn text_v2() -> &'static str {{\n    \"hello, again\"\n\
         >>>>>>> theirs: {GREETING} as saaskit 0.1.0 generates it\n\
         }}\n"
    );
    assert!(text.contains(&conflict), "{text}");
    assert!(text.ends_with("pub const MAX_LEN: usize = 64;\n"), "{text}");
    // The rest of the upgrade was applied, and the base is the new render.
    assert!(read(&root, API_MAIN).contains("text_v2()"));
    assert_eq!(
        copies(&root)[GREETING],
        fixture("modules-v2", "greeting.rs")
    );

    // Unresolved markers stop the next upgrade, which changes nothing.
    assert_fails_unchanged(&root, &mut upgrade(&root))
        .stderr(contains("unresolved conflicts").and(contains(format!("{GREETING}:4"))));

    // Resolved, the hunk does not come back.
    let resolved = fixture("modules-v2", "greeting.rs").replace("\"hello, again\"", "\"hi\"");
    std::fs::write(root.join(GREETING), &resolved).unwrap();
    upgrade(&root)
        .assert()
        .success()
        .stdout(contains("already up to date"));
    assert_eq!(read(&root, GREETING), resolved);
}

#[test]
fn a_file_the_user_deleted_stays_deleted() {
    let (_temp, root) = workspace_with_greeting_v1();
    std::fs::remove_file(root.join(GREETING)).unwrap();
    upgrade(&root).assert().success().stdout(contains(format!(
        "deleted-by-user  {GREETING} (you deleted it"
    )));
    assert!(!root.join(GREETING).exists());
    assert!(
        read(&root, "saaskit.lock").contains(GREETING),
        "still generated, so still recorded"
    );
    assert_succeeds_unchanged(&root, &mut upgrade(&root))
        .stdout(contains(format!("deleted-by-user  {GREETING}")));
}

#[test]
fn an_edited_file_the_templates_no_longer_generate_is_kept() {
    let (_temp, root) = workspace_with_greeting_v1();
    edit(&root, FAREWELL, "Farewells", "Farewells, mine");
    upgrade(&root).assert().success().stdout(contains(format!(
        "kept             {FAREWELL} (you edited it"
    )));
    assert!(read(&root, FAREWELL).contains("Farewells, mine"));
    assert!(!read(&root, "saaskit.lock").contains(FAREWELL));
    assert!(!copies(&root).contains_key(FAREWELL));
}

#[test]
fn dry_run_prints_the_planned_diff_and_writes_nothing() {
    let (_temp, root) = workspace_with_greeting_v1();
    edit(&root, GREETING, "\"hello\"", "\"hi\"");
    assert_succeeds_unchanged(&root, upgrade(&root).arg("--dry-run")).stdout(
        contains(format!("+++ b/{GREETING}"))
            .and(contains("+<<<<<<< ours"))
            .and(contains(format!("+++ b/{WELCOME}")))
            .and(contains(format!("conflict         {GREETING}")))
            .and(contains("would upgrade"))
            .and(contains("nothing was written")),
    );
}

#[test]
fn a_second_upgrade_is_a_no_op() {
    let (_temp, root) = workspace_with_greeting_v1();
    edit(
        &root,
        GREETING,
        "MAX_LEN: usize = 64",
        "MAX_LEN: usize = 128",
    );
    upgrade(&root).assert().success();
    assert_succeeds_unchanged(&root, &mut upgrade(&root)).stdout(contains("already up to date"));
}

#[test]
fn a_workspace_with_the_current_templates_is_already_up_to_date() {
    let (_temp, root) = generate("acme", &["--yes"]);
    assert_succeeds_unchanged(&root, saaskit(&root).arg("upgrade"))
        .stdout(contains("already up to date"));
}

#[test]
fn blocks_installed_in_another_order_than_a_fresh_render_are_not_moved() {
    // `fixture/greeting` first on webhooks only, then `db` everywhere: `crates/core/src/lib.rs`
    // has greeting's block before db's, where a fresh render (service by service, api first)
    // would put db's first.
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    for args in [
        &["add", "fixture/greeting", "--service", "webhooks"][..],
        &["add", "db"],
        &["add", "fixture/greeting"],
    ] {
        saaskit_with_fixtures(&root).args(args).assert().success();
    }
    assert_succeeds_unchanged(&root, saaskit_with_fixtures(&root).arg("upgrade"))
        .stdout(contains("already up to date"));
}

#[test]
fn a_workspace_without_pristine_copies_upgrades_by_the_lock_s_hashes() {
    let (_temp, root) = workspace_with_greeting_v1();
    std::fs::remove_dir_all(root.join(".saaskit")).unwrap();
    edit(
        &root,
        GREETING,
        "MAX_LEN: usize = 64",
        "MAX_LEN: usize = 128",
    );
    upgrade(&root).assert().failure().stdout(
        // Untouched (by hash): replaced.
        contains(format!("updated          {API_MAIN}\n"))
            .and(contains(format!("removed          {FAREWELL}\n")))
            // Edited, and no base to tell whose each difference is: all are conflicts.
            .and(contains(format!(
                "conflict         {GREETING} (2 conflicts)"
            )))
            .and(contains("no usable pristine copy")),
    );
    let text = read(&root, GREETING);
    assert!(
        text.contains(
            "<<<<<<< ours: crates/core/src/greeting.rs\npub const MAX_LEN: usize = 128;\n=======\n"
        ),
        "{text}"
    );
    assert!(!text.contains("|||||||"), "there is no base to show");
    assert_eq!(copies(&root)[API_MAIN], read(&root, API_MAIN));
}

#[test]
fn copies_kept_as_files_by_an_older_saaskit_are_used_then_moved_into_the_pack() {
    let (_temp, root) = workspace_with_greeting_v1();
    // How saaskit kept the copies before the pack: a file each under .saaskit/base/.
    for (path, content) in copies(&root) {
        let file = root.join(".saaskit/base").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    std::fs::remove_file(root.join(".saaskit/base.pack")).unwrap();
    edit(
        &root,
        GREETING,
        "MAX_LEN: usize = 64",
        "MAX_LEN: usize = 128",
    );
    // With the copies, the user's edit and the templates' change merge cleanly.
    upgrade(&root)
        .assert()
        .success()
        .stdout(contains(format!("merged           {GREETING}")));
    let text = read(&root, GREETING);
    assert!(text.contains("MAX_LEN: usize = 128"), "{text}");
    assert!(text.contains("text_v2"), "{text}");
    assert!(
        !root.join(".saaskit/base").exists(),
        "the loose copies are gone"
    );
    assert_eq!(copies(&root)[API_MAIN], read(&root, API_MAIN));
}

#[test]
fn a_damaged_pack_stops_a_command_and_says_which_file_and_what_to_do() {
    let (_temp, root) = workspace_with_greeting_v1();
    let pack = root.join(".saaskit/base.pack");
    let text = std::fs::read_to_string(&pack).unwrap();
    std::fs::write(&pack, &text[..text.len() / 2]).unwrap();
    assert_fails_unchanged(
        &root,
        saaskit_with_fixtures(&root).args(["remove", "fixture/greeting"]),
    )
    .stderr(
        contains(".saaskit/base.pack:")
            .and(contains("is cut short"))
            .and(contains("restore the file from version control")),
    );
}

#[test]
fn a_failed_upgrade_changes_nothing() {
    let (_temp, root) = workspace_with_greeting_v1();
    // A directory where the new templates put a file: the upgrade cannot write it.
    std::fs::create_dir_all(root.join(WELCOME).join("inside")).unwrap();
    assert_fails_unchanged(&root, &mut upgrade(&root)).stderr(contains(WELCOME));
}

#[test]
fn a_key_no_module_reads_any_more_keeps_its_value_below_the_blocks() {
    // An .env from before each service had its own CORS key: the shared key, with a value, in
    // the base block, and an empty key some module dropped.
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    edit(
        &root,
        ".env",
        "APP_ENV=development\n",
        "APP_ENV=development\nCORS_ALLOWED_ORIGINS=https://app.example.com\nRETIRED_KEY=\n",
    );

    saaskit(&root).arg("upgrade").assert().success().stdout(
        contains("dropped RETIRED_KEY").and(contains("kept CORS_ALLOWED_ORIGINS at the end")),
    );

    let env = read(&root, ".env");
    let (blocks, below) = env.split_once("# <<<end:base@env>>>\n").unwrap();
    assert!(!blocks.contains("CORS_ALLOWED_ORIGINS=https"), "{env}");
    assert!(
        below.ends_with("CORS_ALLOWED_ORIGINS=https://app.example.com\n"),
        "{env}"
    );
    assert!(
        below.contains("no module reads these keys any more"),
        "{env}"
    );
    assert!(!env.contains("RETIRED_KEY"), "{env}");
    for service in ["API", "ADMIN", "WEBHOOKS"] {
        assert_eq!(
            env_value(&root, &format!("{service}_CORS_ALLOWED_ORIGINS")).as_deref(),
            Some(""),
            "{env}"
        );
    }
    saaskit(&root)
        .arg("upgrade")
        .assert()
        .success()
        .stdout(contains("already up to date"));
}

/// The workspace at `root` as an earlier saaskit generated it, before the service templates had
/// the `layers` marker: taken out of each `main.rs`, of its pristine copy (kept as loose files,
/// which saaskit still reads) and of its hash in the lockfile.
fn without_the_layers_marker(root: &Path) {
    let strip = |text: &str| text.replace("    // <<<inject:layers>>>\n", "");
    for (path, content) in copies(root) {
        let file = root.join(".saaskit/base").join(&path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, strip(&content)).unwrap();
    }
    std::fs::remove_file(root.join(".saaskit/base.pack")).unwrap();
    for service in ["api", "admin", "webhooks"] {
        let main = format!("services/{service}/src/main.rs");
        let text = read(root, &main);
        assert!(text.contains("<<<inject:layers>>>"), "{main}");
        std::fs::write(root.join(&main), strip(&text)).unwrap();
        edit(
            root,
            "saaskit.lock",
            &saaskit::model::lock::hash(&text),
            &saaskit::model::lock::hash(&strip(&text)),
        );
    }
}

#[test]
fn a_workspace_from_before_the_layers_marker_gets_it_from_upgrade() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    without_the_layers_marker(&root);
    edit(
        &root,
        API_MAIN,
        "use std::process::ExitCode;",
        "use std::process::ExitCode; // mine",
    );

    // Adding a module that puts a layer there says what is missing, and what to do.
    assert_fails_unchanged(
        &root,
        saaskit(&root).args(["add", "security/rate-limiting"]),
    )
    .stderr(
        contains("`<<<inject:layers>>>` not found")
            .and(contains(API_MAIN))
            .and(contains("run `saaskit upgrade` first")),
    );

    // The upgrade adds the marker, keeping the user's edit.
    saaskit(&root)
        .arg("upgrade")
        .assert()
        .success()
        .stdout(contains(format!("merged           {API_MAIN}\n")));
    let main = read(&root, API_MAIN);
    assert!(main.contains("    // <<<inject:layers>>>\n"), "{main}");
    assert!(main.contains("ExitCode; // mine"), "{main}");

    saaskit(&root)
        .args(["add", "security/rate-limiting"])
        .assert()
        .success();
    let main = read(&root, API_MAIN);
    let layer = main.find("rate_limits.protect(app").unwrap();
    assert!(
        main.find("<<<inject:layers>>>").unwrap() < layer,
        "the rate limits go on at `layers`:\n{main}"
    );
}

/// A workspace as saaskit generated it before the library crate was named after the workspace:
/// no `core` in saaskit.toml, the crate `shared` in crates/shared. Rebuilt from what that saaskit
/// wrote (tests/fixtures/workspaces/shared-crate: `saaskit new acme --modules ""`): the manifest,
/// the lockfile and `.env` as they were, every other file from its pristine copy in the base
/// store, which is that file as generated.
fn workspace_with_the_shared_crate() -> (tempfile::TempDir, PathBuf) {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workspaces/shared-crate");
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("acme");
    let pack = std::fs::read_to_string(fixture.join("base.pack")).unwrap();
    let files = saaskit::stage::base_store::parse(&pack).unwrap();
    for (path, content) in files
        .iter()
        .map(|(path, content)| (path.as_str(), content.as_str()))
        .chain([
            (".saaskit/base.pack", pack.as_str()),
            (
                ".env",
                &std::fs::read_to_string(fixture.join("env")).unwrap(),
            ),
            (
                "saaskit.toml",
                &std::fs::read_to_string(fixture.join("saaskit.toml")).unwrap(),
            ),
            (
                "saaskit.lock",
                &std::fs::read_to_string(fixture.join("saaskit.lock")).unwrap(),
            ),
        ])
    {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    (temp, root)
}

#[test]
fn a_workspace_with_the_shared_crate_keeps_it_through_every_command() {
    let (_temp, root) = workspace_with_the_shared_crate();
    assert!(!read(&root, "saaskit.toml").contains("core ="));
    // What changed in the templates since is a template change of the same files, never a file
    // gone missing or a crate moved.
    saaskit(&root).arg("diff").assert().stdout(
        contains("missing")
            .not()
            .and(contains("crates/core").not())
            .and(contains("crates/shared/src/lib.rs")),
    );
    upgrade(&root).assert().success();
    saaskit(&root).args(["diff", "--check"]).assert().success();
    let before = read_tree(&root);

    saaskit(&root).args(["add", "auth"]).assert().success();
    assert!(root.join("crates/shared/src/auth.rs").is_file());
    assert!(root.join("crates/shared/migrations/sqlite").is_dir());
    assert!(!root.join("crates/core").exists());
    let main = read(&root, API_MAIN);
    assert!(
        main.contains("use shared::auth::{Auth, AuthConfig};"),
        "{main}"
    );
    assert!(
        !main.contains("saaskit_core") && !main.contains("acme_core"),
        "{main}"
    );
    let shared = read(&root, "crates/shared/Cargo.toml");
    assert!(
        shared.contains("name = \"shared\"") && shared.contains("argon2"),
        "{shared}"
    );
    saaskit(&root).args(["diff", "--check"]).assert().success();
    saaskit(&root)
        .arg("doctor")
        .env_remove("DATABASE_URL")
        .assert()
        .stdout(contains("injected snippets are intact"));

    saaskit(&root).args(["remove", "auth"]).assert().success();
    common::assert_same_tree(&before, &read_tree(&root));
}

#[test]
fn a_nest_service_s_typescript_is_merged_and_checked() {
    let (_temp, root) = nest_workspace_with_hello();
    let hello = "services/nest/src/hello.module.ts";
    // The user's edit, away from the lines the templates change.
    edit(
        &root,
        hello,
        "@Controller(\"hello\")",
        "// Greets.\n@Controller(\"hello\")",
    );
    upgrade(&root)
        .assert()
        .success()
        .stdout(contains("merged").and(contains(hello)));
    let text = read(&root, hello);
    assert!(
        text.contains("// Greets.\n@Controller(\"hello\")")
            && text.contains("static forRoot(): DynamicModule"),
        "{text}"
    );
    let module = read(&root, "services/nest/src/app.module.ts");
    assert!(
        module.contains("        HelloModule.forRoot(),\n"),
        "{module}"
    );
    assert_succeeds_unchanged(&root, &mut upgrade(&root));
}
