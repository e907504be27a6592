//! `saaskit doctor` finds each broken state it checks for, and passes on a fresh workspace.

mod common;

use std::path::Path;

use common::{generate, nest_workspace, saaskit};
use predicates::prelude::*;
use predicates::str::contains;

/// `saaskit doctor` with the workspace's own ports and database, whatever the caller's env says.
fn doctor(root: &Path) -> assert_cmd::assert::Assert {
    saaskit(root)
        .arg("doctor")
        .env_remove("DATABASE_URL")
        .env("API_ADDR", "127.0.0.1:0")
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .env("WEBHOOKS_ADDR", "127.0.0.1:0")
        .assert()
}

fn edit(root: &Path, path: &str, change: impl FnOnce(String) -> String) {
    let file = root.join(path);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, change(text)).unwrap();
}

#[test]
fn a_fresh_workspace_is_healthy() {
    let (_temp, root) = generate("acme", &["--yes"]);
    doctor(&root).success().stdout(
        contains("injected snippets are intact")
            .and(contains("SQLite at"))
            .and(contains("error").not()),
    );
}

#[test]
fn a_broken_fence_is_an_error_with_file_and_line() {
    let (_temp, root) = generate("acme", &["--yes"]);
    edit(&root, "services/api/src/main.rs", |t| {
        t.replace("    // <<<end:db@startup>>>\n", "")
    });
    doctor(&root)
        .failure()
        .stdout(
            predicate::str::is_match(r"error +fences +services/api/src/main\.rs:\d+: ").unwrap(),
        )
        .stderr(contains("doctor found"));
}

#[test]
fn a_missing_snippet_and_a_missing_marker_are_errors() {
    let (_temp, root) = generate("acme", &["--yes"]);
    edit(&root, "crates/core/src/lib.rs", |t| {
        t.replace(
            "// <<<begin:db@mods>>>\npub mod db;\n// <<<end:db@mods>>>\n",
            "",
        )
    });
    doctor(&root).failure().stdout(contains(
        "crates/core/src/lib.rs: the `mods` snippet of `db` is missing",
    ));

    let (_temp, root) = generate("acme", &["--yes", "--modules", ""]);
    edit(&root, "services/admin/src/main.rs", |t| {
        t.replace("<<<inject:routes>>>", "<<<inject:route s>>>")
    });
    doctor(&root)
        .failure()
        .stdout(contains("services/admin/src/main.rs:"));
}

#[test]
fn an_edited_snippet_is_a_warning_not_an_error() {
    let (_temp, root) = generate("acme", &["--yes"]);
    edit(&root, "services/api/src/main.rs", |t| {
        t.replace("db.close().await;", "db.close().await; // bye")
    });
    doctor(&root)
        .success()
        .stdout(contains("warning").and(contains("the `shutdown` snippet of `db` was edited")));
}

#[test]
fn missing_env_keys_and_a_missing_env_file_are_errors() {
    let (_temp, root) = generate("acme", &["--yes"]);
    edit(&root, ".env", |t| {
        t.replace("DATABASE_MAX_CONNECTIONS=10\n", "")
    });
    doctor(&root).failure().stdout(contains(
        "DATABASE_MAX_CONNECTIONS (needed by `db`) is not set",
    ));
    std::fs::remove_file(root.join(".env")).unwrap();
    doctor(&root)
        .failure()
        .stdout(contains(".env is missing").and(contains("cp .env.example .env")));
}

#[test]
fn an_unreachable_postgres_is_an_error() {
    let (_temp, root) = generate("acme", &["--yes"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    edit(&root, ".env", |t| {
        t.replace(
            "DATABASE_URL=sqlite://data/acme.db?mode=rwc",
            &format!("DATABASE_URL=postgres://postgres@127.0.0.1:{closed}/acme"),
        )
    });
    doctor(&root).failure().stdout(contains(format!(
        "cannot reach the database at 127.0.0.1:{closed}"
    )));
}

#[test]
fn a_broken_manifest_or_lock_is_reported() {
    let (_temp, root) = generate("acme", &["--yes"]);
    edit(&root, "saaskit.toml", |t| {
        t.replace("port = 8081", "port = \"8081\"")
    });
    doctor(&root)
        .failure()
        .stdout(predicate::str::is_match(r"saaskit\.toml:\d+:8: `services\.admin\.port`").unwrap());

    let (_temp, root) = generate("acme", &["--yes"]);
    std::fs::remove_file(root.join("saaskit.lock")).unwrap();
    doctor(&root)
        .failure()
        .stdout(contains("saaskit.lock is missing"));
}

#[test]
fn a_port_in_use_is_a_warning_naming_service_and_port() {
    let (_temp, root) = generate("acme", &["--yes"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    saaskit(&root)
        .arg("doctor")
        .env_remove("DATABASE_URL")
        .env("API_ADDR", format!("127.0.0.1:{port}"))
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .env("WEBHOOKS_ADDR", "127.0.0.1:0")
        .assert()
        .success()
        .stdout(contains(format!(
            "api cannot listen on 127.0.0.1:{port} (API_ADDR)"
        )));
}

#[test]
fn json_output_lists_every_finding() {
    let (_temp, root) = generate("acme", &["--yes"]);
    let output = saaskit(&root)
        .args(["doctor", "--json"])
        .env_remove("DATABASE_URL")
        .env("API_ADDR", "127.0.0.1:0")
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .env("WEBHOOKS_ADDR", "127.0.0.1:0")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let findings: serde_json::Value = serde_json::from_slice(&output).unwrap();
    let checks: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for check in [
        "toolchain",
        "workspace",
        "fences",
        "env",
        "database",
        "ports",
    ] {
        assert!(checks.contains(&check), "{check} missing from {checks:?}");
    }
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "ok")
    );
}

#[test]
fn a_nest_service_is_checked_for_node_its_dependencies_and_its_typescript() {
    let (_temp, root) = nest_workspace();
    let run = || {
        saaskit(&root)
            .arg("doctor")
            .env_remove("DATABASE_URL")
            .env("API_ADDR", "127.0.0.1:0")
            .env("NEST_ADDR", "127.0.0.1:0")
            .assert()
    };
    // Node is on the machines saaskit is tested on; npm ci has not run.
    run().success().stdout(
        contains("ok       toolchain  node v")
            .and(contains(
                "warning  node       services/nest/node_modules is missing",
            ))
            .and(contains("error").not()),
    );
    edit(&root, "services/nest/src/main.ts", |text| {
        text.replacen(
            "async function main(): Promise<void> {",
            "async function main(: Promise<void> {",
            1,
        )
    });
    let main = std::fs::read_to_string(root.join("services/nest/src/main.ts")).unwrap();
    let line = main
        .lines()
        .position(|l| l.starts_with("async function main("))
        .unwrap()
        + 1;
    run().failure().stdout(
        contains(format!("services/nest/src/main.ts:{line}:"))
            .and(contains("not valid TypeScript")),
    );
}
