//! `saaskit generate job|email` and `saaskit destroy job|email` on the default workspace: what
//! they write and record, what they refuse (before writing anything), and that destroying
//! returns every file byte for byte. Building the result, running the job and delivering the
//! email is tests/e2e/handlers.rs.

use std::path::Path;

use crate::common::{
    EMAIL, JOB, assert_fails_unchanged, assert_same_tree, assert_succeeds_unchanged, generate,
    read_tree, saaskit,
};

fn generate_ok(root: &Path, args: &[&str]) {
    saaskit(root).arg("generate").args(args).assert().success();
}

fn refusal(root: &Path, args: &[&str]) -> String {
    let outcome = assert_fails_unchanged(root, saaskit(root).args(args));
    String::from_utf8_lossy(&outcome.get_output().stderr).into_owned()
}

#[test]
fn a_job_and_an_email_generated_then_destroyed_leave_the_tree_byte_identical() {
    let (_temp, root) = generate("acme", &["--yes"]);
    let fresh = read_tree(&root);
    generate_ok(&root, JOB);
    generate_ok(&root, EMAIL);
    let tree = read_tree(&root);
    for file in [
        "crates/core/src/send_report.rs",
        "crates/core/src/invoice_due.rs",
        "crates/core/templates/emails/invoice_due.txt",
        "crates/core/templates/emails/invoice_due.html",
    ] {
        assert!(tree.contains_key(file), "{file} was not generated");
    }
    assert!(tree["crates/core/src/lib.rs"].contains("pub mod send_report;"));
    let main = &tree["services/api/src/main.rs"];
    assert!(main.contains("use acme_core::send_report::SendReportJob;\n"));
    assert!(main.contains("let job_handlers = job_handlers.register(SendReportJob);\n"));
    let manifest = &tree["saaskit.toml"];
    assert!(
        manifest.contains("[jobs.send_report]\nservice = \"api\""),
        "{manifest}"
    );
    assert!(
        manifest.contains("[emails.invoice_due]\nfields = "),
        "{manifest}"
    );
    let lock = &tree["saaskit.lock"];
    assert!(lock.contains("module = \"job/send_report\""));
    assert!(lock.contains("module = \"email/invoice_due\""));
    // Recorded like module output: `diff` sees them as generated and unchanged.
    saaskit(&root).args(["diff", "--check"]).assert().success();
    saaskit(&root).arg("doctor").assert().success();
    // `upgrade` renders them again from the same templates: nothing to do.
    assert_succeeds_unchanged(&root, saaskit(&root).arg("upgrade"));

    for args in [
        ["destroy", "job", "send_report"],
        ["destroy", "email", "invoice_due"],
    ] {
        saaskit(&root).args(args).assert().success();
    }
    assert_same_tree(&fresh, &read_tree(&root));
    assert!(!root.join("crates/core/templates/emails").exists());
}

/// The generated files as a review sees them (`cargo insta review`).
#[test]
fn snapshots_of_the_generated_files() {
    let (_temp, root) = generate("acme", &["--yes"]);
    generate_ok(&root, JOB);
    generate_ok(&root, EMAIL);
    // A job without fields has an empty payload.
    generate_ok(&root, &["job", "nightly_cleanup", "--service", "admin"]);
    let tree = read_tree(&root);
    for path in [
        "crates/core/src/send_report.rs",
        "crates/core/src/nightly_cleanup.rs",
        "crates/core/src/invoice_due.rs",
        "crates/core/templates/emails/invoice_due.txt",
        "crates/core/templates/emails/invoice_due.html",
    ] {
        // Beside the other snapshots of tests/generate.rs.
        insta::with_settings!({snapshot_path => "../snapshots"}, {
            insta::assert_snapshot!(path.replace('/', "__"), &tree[path]);
        });
    }
    assert!(tree["services/admin/src/main.rs"].contains("register(NightlyCleanupJob);"));
}

#[test]
fn an_edited_file_or_snippet_stops_destroy_with_its_line_unless_forced() {
    let (_temp, root) = generate("acme", &["--yes", "--services", "api"]);
    let fresh = read_tree(&root);
    generate_ok(&root, JOB);
    generate_ok(&root, EMAIL);

    let main = root.join("services/api/src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    let registration = "let job_handlers = job_handlers.register(SendReportJob);";
    assert!(text.contains(registration));
    std::fs::write(
        &main,
        text.replace(registration, &format!("{registration} // mine")),
    )
    .unwrap();
    let stderr = refusal(&root, &["destroy", "job", "send_report"]);
    assert!(stderr.contains("services/api/src/main.rs:"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    std::fs::write(&main, &text).unwrap();

    // An edited template is kept and reported, unless --force.
    let html = root.join("crates/core/templates/emails/invoice_due.html");
    let original = std::fs::read_to_string(&html).unwrap();
    std::fs::write(
        &html,
        original.replace("<p>Hello,</p>", "<p>Dear customer,</p>"),
    )
    .unwrap();
    let kept = saaskit(&root)
        .args(["destroy", "email", "invoice_due"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&kept.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&kept.get_output().stderr).into_owned();
    assert!(
        format!("{stdout}{stderr}").contains("crates/core/templates/emails/invoice_due.html"),
        "{stdout}{stderr}"
    );
    assert!(html.exists(), "an edited file is kept");
    std::fs::remove_file(&html).unwrap();

    saaskit(&root)
        .args(["destroy", "job", "send_report"])
        .assert()
        .success();
    assert_same_tree(&fresh, &read_tree(&root));
}

#[test]
fn missing_modules_bad_names_and_clashes_are_refused_before_anything_is_written() {
    let (_temp, bare) = generate("acme", &["--yes", "--services", "api", "--modules", "db"]);
    let stderr = refusal(&bare, &["generate", "job", "send_report"]);
    assert!(
        stderr.contains("no `jobs` module") && stderr.contains("saaskit add jobs --service api"),
        "{stderr}"
    );
    let stderr = refusal(&bare, &["generate", "email", "invoice_due"]);
    assert!(
        stderr.contains("saaskit add email --service api"),
        "{stderr}"
    );

    let (_temp, root) = generate("acme", &["--yes", "--services", "api"]);
    saaskit(&root)
        .args(["generate", "resource", "project", "name:string"])
        .assert()
        .success();
    generate_ok(&root, JOB);
    let cases: &[(&[&str], &str)] = &[
        (&["job", "impl"], "Rust keyword"),
        (&["email", "match"], "Rust keyword"),
        (&["job", "SendReport"], "lowercase letter"),
        (&["job", "send_report"], "saaskit.toml:"),
        (&["email", "send_report"], "[jobs.send_report] already"),
        (&["job", "project"], "[resources.project] already"),
        (&["job", "users"], "module `users`"),
        (&["email", "main"], "file of that name"),
        // Declared in the core crate's lib.rs (by the base, by security/rate-limiting).
        (&["email", "config"], "crates/core/src/lib.rs:4 declares"),
        (&["job", "rate_limit"], "crates/core/src/lib.rs:"),
        (
            &["job", "x", "project:ref"],
            "`enum` and `ref` are for resources",
        ),
        (&["job", "x", "n:strng"], "unknown type `strng`"),
        (&["email", "x", "note:text?"], "not optional"),
        (&["job", "x", "--service", "nope"], "no service `nope`"),
    ];
    for (args, expected) in cases {
        let stderr = refusal(&root, &[&["generate"], *args].concat());
        assert!(
            stderr.contains(expected),
            "{args:?}: expected `{expected}` in:\n{stderr}"
        );
    }
    let line = refusal(&root, &["generate", "job", "send_report"]);
    let manifest = std::fs::read_to_string(root.join("saaskit.toml")).unwrap();
    let at = manifest
        .lines()
        .position(|l| l == "[jobs.send_report]")
        .unwrap();
    assert!(line.contains(&format!("saaskit.toml:{}", at + 1)), "{line}");
    let stderr = refusal(&root, &["destroy", "email", "nothing"]);
    assert!(stderr.contains("no email `nothing`"), "{stderr}");

    // A dry run prints the diff and writes nothing.
    let before = read_tree(&root);
    let dry = saaskit(&root)
        .args(["generate", "email", "welcome_back", "--dry-run"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&dry.get_output().stdout).into_owned();
    assert!(
        stdout.contains("+++ b/crates/core/templates/emails/welcome_back.html"),
        "{stdout}"
    );
    assert_same_tree(&before, &read_tree(&root));
}

#[test]
fn the_modules_a_generated_job_or_email_needs_are_not_removed_under_it() {
    let (_temp, root) = generate(
        "acme",
        &["--yes", "--services", "api", "--modules", "email"],
    );
    generate_ok(&root, JOB);
    generate_ok(&root, EMAIL);
    let stderr = refusal(&root, &["remove", "email"]);
    assert!(
        stderr.contains("the generated email `invoice_due` (saaskit.toml:")
            && stderr.contains("saaskit destroy email invoice_due"),
        "{stderr}"
    );
    saaskit(&root)
        .args(["destroy", "email", "invoice_due"])
        .assert()
        .success();
    // `jobs`, installed as email's requirement, stays for the job.
    saaskit(&root).args(["remove", "email"]).assert().success();
    let manifest = std::fs::read_to_string(root.join("saaskit.toml")).unwrap();
    assert!(manifest.contains("\"jobs\""), "{manifest}");
    let stderr = refusal(&root, &["remove", "jobs"]);
    assert!(
        stderr.contains("the generated job `send_report`"),
        "{stderr}"
    );
}
