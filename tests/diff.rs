//! `saaskit diff`: unchanged, edited, missing and changed-in-templates items, and `--check`.

mod common;

use common::{
    generate, nest_workspace_with_hello, saaskit, saaskit_with_fixtures,
    saaskit_with_later_fixtures,
};
use predicates::prelude::*;
use predicates::str::contains;

#[test]
fn a_fresh_workspace_has_no_drift() {
    let (_temp, root) = generate("acme", &["--yes"]);
    saaskit(&root)
        .args(["diff", "--check"])
        .assert()
        .success()
        .stdout(
            predicate::str::is_match(r"^(\d+) of (\d+) generated files and snippets unchanged\n$")
                .unwrap(),
        );
}

#[test]
fn user_edits_are_reported_but_are_not_drift() {
    let (_temp, root) = generate("acme", &["--yes"]);
    let db = root.join("crates/core/src/db.rs");
    std::fs::write(
        &db,
        std::fs::read_to_string(&db).unwrap() + "\n// my note\n",
    )
    .unwrap();
    let main = root.join("services/api/src/main.rs");
    let text = std::fs::read_to_string(&main)
        .unwrap()
        .replace("db.close().await;", "db.close().await; // bye");
    std::fs::write(&main, text).unwrap();
    saaskit(&root)
        .args(["diff", "--check"])
        .assert()
        .success()
        .stdout(
            contains("edited                   crates/core/src/db.rs (db)")
                .and(contains("-// my note"))
                .and(contains(
                    "edited                   services/api/src/main.rs @ shutdown (db)",
                )),
        );
}

#[test]
fn a_deleted_generated_file_is_missing_and_fails_the_check() {
    let (_temp, root) = generate("acme", &["--yes"]);
    std::fs::remove_file(root.join("crates/core/src/telemetry.rs")).unwrap();
    saaskit(&root)
        .args(["diff", "--check"])
        .assert()
        .failure()
        .stdout(contains(
            "missing                  crates/core/src/telemetry.rs (base)",
        ))
        .stderr(contains("1 generated item(s) differ"));
}

#[test]
fn changed_templates_are_drift_with_a_diff_and_json() {
    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/greeting"])
        .assert()
        .success();
    saaskit_with_fixtures(&root)
        .args(["diff", "--check"])
        .assert()
        .success();

    saaskit_with_later_fixtures(&root)
        .args(["diff", "--check"])
        .assert()
        .failure()
        .stdout(
            contains("template-changed         crates/core/src/greeting.rs (fixture/greeting)")
                .and(contains("+pub fn text_v2()"))
                .and(contains(
                    "template-changed         services/api/src/main.rs @ routes (fixture/greeting)",
                )),
        );

    let output = saaskit_with_later_fixtures(&root)
        .args(["diff", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let items: serde_json::Value = serde_json::from_slice(&output).unwrap();
    let changed: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "template-changed")
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert!(
        changed.contains(&"crates/core/src/greeting.rs"),
        "{changed:?}"
    );
    assert!(
        changed.contains(&"services/webhooks/src/main.rs"),
        "{changed:?}"
    );
}

#[test]
fn a_nest_service_s_typescript_is_compared_like_rust() {
    let (_temp, root) = nest_workspace_with_hello();
    saaskit_with_fixtures(&root)
        .args(["diff", "--check"])
        .assert()
        .success();
    let main = root.join("services/nest/src/main.ts");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, format!("{text}// my note\n")).unwrap();
    let module = root.join("services/nest/src/app.module.ts");
    let text = std::fs::read_to_string(&module).unwrap();
    std::fs::write(
        &module,
        text.replace("        HelloModule,\n", "        HelloModule, // mine\n"),
    )
    .unwrap();
    saaskit_with_fixtures(&root)
        .args(["diff", "--check"])
        .assert()
        .success()
        .stdout(
            contains("edited                   services/nest/src/main.ts (base)")
                .and(contains("-// my note"))
                .and(contains(
                    "edited                   services/nest/src/app.module.ts @ routes (fixture/nest-hello)",
                )),
        );
    // The later templates change the module's file and its snippet: drift.
    saaskit_with_later_fixtures(&root)
        .args(["diff", "--check"])
        .assert()
        .failure()
        .stdout(
            contains("services/nest/src/hello.module.ts (fixture/nest-hello)")
                .and(contains("+  static forRoot(): DynamicModule {")),
        );
}
