//! `saaskit keys rotate|list|remove` on a workspace's `.env`, through the real binary.

mod common;

use std::path::Path;

use common::{assert_fails_unchanged, assert_succeeds_unchanged, generate, saaskit};
use predicates::prelude::*;
use predicates::str::contains;

/// RFC 8037 A.1 seed, whose public key (A.3) has this RFC 7638 thumbprint.
const SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const PUBLIC: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const KID: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

/// A workspace without modules whose `.env` gets `keys` appended (the `auth` module's block,
/// or lines of the user's own).
fn workspace_with(keys: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (temp, root) = generate("acme", &["--modules", ""]);
    let env = root.join(".env");
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, format!("{text}{keys}")).unwrap();
    (temp, root)
}

fn auth_block(previous: &str) -> String {
    format!(
        "# <<<begin:auth@env>>>\n\
         # Ed25519 private key (32-byte seed, base64url) that signs access tokens\n\
         AUTH_SIGNING_KEY={SEED}\n\
         # Public keys of former signing keys\n\
         AUTH_PREVIOUS_KEYS={previous}\n\
         AUTH_ACCESS_TOKEN_TTL_SECS=600\n\
         # <<<end:auth@env>>>\n"
    )
}

fn read_env(root: &Path) -> String {
    std::fs::read_to_string(root.join(".env")).unwrap()
}

/// Every line but the two key lines, terminators included.
fn other_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n')
        .filter(|l| !l.starts_with("AUTH_SIGNING_KEY=") && !l.starts_with("AUTH_PREVIOUS_KEYS="))
        .collect()
}

fn value<'t>(text: &'t str, key: &str) -> &'t str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
        .trim_end_matches('\r')
}

/// `saaskit keys list` as (kid, role) pairs.
fn list(root: &Path) -> Vec<(String, String)> {
    let output = saaskit(root).args(["keys", "list"]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (kid, role) = l.split_once("  ").expect("kid  role");
            (kid.to_string(), role.to_string())
        })
        .collect()
}

#[test]
fn rotate_then_list_shows_the_new_signing_key_and_the_old_one() {
    let (_temp, root) = workspace_with(&auth_block(""));
    assert_eq!(list(&root), vec![(KID.to_string(), "signing".to_string())]);
    let before = read_env(&root);

    saaskit(&root)
        .args(["keys", "rotate"])
        .assert()
        .success()
        .stdout(
            contains("update .env")
                .and(contains(format!("old kid  {KID}")))
                .and(contains("600 s in .env"))
                .and(contains(format!("saaskit keys remove {KID}"))),
        );

    let after = read_env(&root);
    assert_eq!(
        other_lines(&after),
        other_lines(&before),
        "only the key lines change"
    );
    assert_eq!(value(&after, "AUTH_PREVIOUS_KEYS"), PUBLIC);
    let new_seed = value(&after, "AUTH_SIGNING_KEY");
    assert_eq!(new_seed.len(), 43);
    assert_ne!(new_seed, SEED);

    let keys = list(&root);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0].1, "signing");
    assert_ne!(keys[0].0, KID);
    assert_eq!(keys[1], (KID.to_string(), "previous".to_string()));

    // A second rotation puts the first new key in front, without duplicates.
    saaskit(&root).args(["keys", "rotate"]).assert().success();
    let keys_after = list(&root);
    assert_eq!(keys_after.len(), 3, "{keys_after:?}");
    assert_eq!(keys_after[1], (keys[0].0.clone(), "previous".to_string()));
    assert_eq!(keys_after[2], (KID.to_string(), "previous".to_string()));
}

#[test]
fn list_json_marks_the_signing_key() {
    let (_temp, root) = workspace_with(&auth_block(""));
    let output = saaskit(&root)
        .args(["keys", "list", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "file": ".env",
            "keys": [{"kid": KID, "x": PUBLIC, "role": "signing"}],
        })
    );
}

#[test]
fn remove_drops_a_previous_key() {
    let (_temp, root) = workspace_with(&auth_block(""));
    saaskit(&root).args(["keys", "rotate"]).assert().success();
    let rotated = read_env(&root);
    saaskit(&root)
        .args(["keys", "remove", KID])
        .assert()
        .success()
        .stdout(contains(format!(
            "removed kid {KID} from AUTH_PREVIOUS_KEYS"
        )));
    let after = read_env(&root);
    assert_eq!(value(&after, "AUTH_PREVIOUS_KEYS"), "");
    assert_eq!(
        value(&after, "AUTH_SIGNING_KEY"),
        value(&rotated, "AUTH_SIGNING_KEY")
    );
    assert_eq!(other_lines(&after), other_lines(&rotated));
    let keys = list(&root);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].1, "signing");
}

#[test]
fn removing_the_signing_key_or_an_unknown_kid_fails_and_writes_nothing() {
    let (_temp, root) = workspace_with(&auth_block(""));
    saaskit(&root).args(["keys", "rotate"]).assert().success();
    let signing = list(&root)[0].0.clone();

    assert_fails_unchanged(&root, saaskit(&root).args(["keys", "remove", &signing]))
        .stderr(contains("kid of the signing key").and(contains("saaskit keys rotate")));

    assert_fails_unchanged(
        &root,
        saaskit(&root).args(["keys", "remove", "no-such-kid"]),
    )
    .stderr(
        contains("no previous key in .env has the kid `no-such-kid`")
            .and(contains(format!("{signing}  signing")))
            .and(contains(format!("{KID}  previous"))),
    );
}

#[test]
fn dry_runs_print_the_diff_and_write_nothing() {
    let (_temp, root) = workspace_with(&auth_block(PUBLIC));
    assert_succeeds_unchanged(&root, saaskit(&root).args(["keys", "rotate", "--dry-run"])).stdout(
        contains("--- a/.env")
            .and(contains(format!("-AUTH_SIGNING_KEY={SEED}")))
            .and(contains("+AUTH_SIGNING_KEY="))
            .and(contains("nothing was written")),
    );

    assert_fails_unchanged(
        &root,
        saaskit(&root).args(["keys", "remove", KID, "--dry-run"]),
    )
    .stderr(contains("kid of the signing key"));
    saaskit(&root).args(["keys", "rotate"]).assert().success();
    assert_succeeds_unchanged(
        &root,
        saaskit(&root).args(["keys", "remove", KID, "--dry-run"]),
    )
    .stdout(contains(format!("would remove kid {KID}")).and(contains("nothing was written")));
}

#[test]
fn key_lines_outside_any_block_are_found_and_comments_and_crlf_are_kept() {
    let own = format!(
        "# my keys, kept by hand\r\nAUTH_PREVIOUS_KEYS = \"{PUBLIC}\"  # quoted on purpose\r\n\r\n\
         # the signing key\r\nexport AUTH_SIGNING_KEY={SEED}\r\n# trailing comment, no newline"
    );
    let (_temp, root) = workspace_with(&own);
    let before = read_env(&root);
    saaskit(&root).args(["keys", "rotate"]).assert().success();
    let after = read_env(&root);

    let changed: Vec<(&str, &str)> = before
        .split_inclusive('\n')
        .zip(after.split_inclusive('\n'))
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "only the signing key's line changes: {changed:?}"
    );
    let (old, new) = changed[0];
    assert_eq!(old, format!("export AUTH_SIGNING_KEY={SEED}\r\n"));
    assert!(
        new.starts_with("export AUTH_SIGNING_KEY=") && new.ends_with("\r\n"),
        "{new:?}"
    );
    assert_eq!(
        before.split_inclusive('\n').count(),
        after.split_inclusive('\n').count()
    );
    // The old key was already a previous key: it is not listed twice.
    assert!(after.contains(&format!(
        "AUTH_PREVIOUS_KEYS = \"{PUBLIC}\"  # quoted on purpose\r\n"
    )));
    assert!(after.ends_with("# trailing comment, no newline"));
}

#[test]
fn a_missing_previous_keys_line_is_added_after_the_signing_key() {
    let (_temp, root) = workspace_with(&format!("AUTH_SIGNING_KEY={SEED}\nLAST=1\n"));
    saaskit(&root).args(["keys", "rotate"]).assert().success();
    let after = read_env(&root);
    assert!(
        after.contains(&format!("\nAUTH_PREVIOUS_KEYS={PUBLIC}\nLAST=1\n")),
        "{after}"
    );
}

#[test]
fn errors_say_what_to_do_and_leave_the_file_untouched() {
    // No signing key at all: the auth module is not installed.
    let (_temp, root) = generate("acme", &["--modules", ""]);
    let before = read_env(&root);
    assert_fails_unchanged(&root, saaskit(&root).args(["keys", "rotate"]))
        .stderr(contains("no AUTH_SIGNING_KEY line").and(contains("saaskit add auth")));

    // A malformed key: which key, which line, what a valid value looks like.
    let lines = before.lines().count();
    std::fs::write(
        root.join(".env"),
        format!("{before}AUTH_SIGNING_KEY={SEED}\nAUTH_PREVIOUS_KEYS={PUBLIC},not-a-key\n"),
    )
    .unwrap();
    assert_fails_unchanged(&root, saaskit(&root).args(["keys", "rotate"])).stderr(
        contains(format!(
            ".env:{}: AUTH_PREVIOUS_KEYS is not valid: entry 2",
            lines + 2
        ))
        .and(contains("43 characters")),
    );

    std::fs::write(
        root.join(".env"),
        format!("{before}AUTH_SIGNING_KEY=tooshort\n"),
    )
    .unwrap();
    assert_fails_unchanged(&root, saaskit(&root).args(["keys", "list"])).stderr(
        contains(format!(
            ".env:{}: AUTH_SIGNING_KEY is not a valid key",
            lines + 1
        ))
        .and(contains("32-byte Ed25519 seed")),
    );

    // No .env at all.
    std::fs::remove_file(root.join(".env")).unwrap();
    assert_fails_unchanged(&root, saaskit(&root).args(["keys", "list"]))
        .stderr(contains("no .env in").and(contains("cp .env.example .env")));
}

#[test]
fn an_empty_signing_key_is_filled_by_rotate() {
    let (_temp, root) = workspace_with("AUTH_SIGNING_KEY=\nAUTH_PREVIOUS_KEYS=\n");
    saaskit(&root)
        .args(["keys", "list"])
        .assert()
        .success()
        .stdout(contains("AUTH_SIGNING_KEY is empty"));
    saaskit(&root)
        .args(["keys", "rotate"])
        .assert()
        .success()
        .stdout(contains("there was no old key"));
    let after = read_env(&root);
    assert_eq!(value(&after, "AUTH_SIGNING_KEY").len(), 43);
    assert_eq!(value(&after, "AUTH_PREVIOUS_KEYS"), "");
}

#[test]
fn env_file_names_another_file_relative_to_the_current_directory() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("prod.env");
    std::fs::write(&file, format!("AUTH_SIGNING_KEY={SEED}\n")).unwrap();
    saaskit(temp.path())
        .args(["keys", "rotate", "--env-file", "prod.env"])
        .assert()
        .success()
        .stdout(contains("update prod.env").and(contains(format!("old kid  {KID}"))));
    let after = std::fs::read_to_string(&file).unwrap();
    assert_eq!(value(&after, "AUTH_PREVIOUS_KEYS"), PUBLIC);
    saaskit(temp.path())
        .args(["keys", "list", "--env-file", "prod.env"])
        .assert()
        .success()
        .stdout(contains(format!("{KID}  previous")));
    // Without --env-file, outside a workspace.
    saaskit(temp.path())
        .args(["keys", "list"])
        .assert()
        .failure()
        .stderr(contains("not inside a saaskit workspace"));
}
