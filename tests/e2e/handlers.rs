//! A job and an email made by `saaskit generate job|email` (docs/generate.md) on the default
//! workspace, which must stay fmt- and clippy-clean; then, with a route of the product's own that
//! uses them as product code would (added after the lint: it is the user's code), the job is
//! enqueued and run by the api's worker and the email reaches a real SMTP server, on SQLite and
//! PostgreSQL.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::api::str_of;
use crate::client::Instance;
use crate::common::{EMAIL, JOB, saaskit};
use crate::email::Smtp;
use crate::support::{Database, cargo_beside, fresh_workspace, lint_beside, shared_target_dir};

/// The product's route: one transaction enqueues the generated job and sends the generated email
/// to ada@example.com.
const ROUTE: &str = r#"
    // The product's code (tests/e2e/handlers.rs): the generated job and email, used.
    let app = app.route(
        "/e2e/handlers",
        axum::routing::post({
            let db = db.clone();
            let brand = mailer.branding().clone();
            move || async move {
                let to = "ada@example.com";
                let mut tx = db.begin_write().await.expect("a transaction");
                let report = handlers_core::send_report::SendReport {
                    user_id: to.to_owned(),
                    since: Some(1_765_000_000),
                };
                handlers_core::send_report::enqueue(&mut tx, &report)
                    .await
                    .expect("the job is enqueued");
                let message = handlers_core::invoice_due::InvoiceDue {
                    brand,
                    amount: 12.5,
                    due_on: "2026-12-31".to_owned(),
                };
                handlers_core::invoice_due::send(&mut tx, to, &message)
                    .await
                    .expect("the email is enqueued");
                tx.commit().await.expect("committed");
                "queued"
            }
        }),
    );
"#;

#[test]
fn a_generated_job_runs_and_a_generated_email_is_delivered() {
    let (root, binary) = workspace_with_handlers();
    for db in [Database::sqlite(), Database::postgres()] {
        let smtp = Smtp::start();
        let url = db.url();
        let smtp_url = smtp.url();
        let env = [
            ("DATABASE_URL", url.as_str()),
            ("SMTP_URL", smtp_url.as_str()),
            ("JOBS_PURGE_SCHEDULE", "off"),
            ("JOBS_POLL_INTERVAL_MS", "50"),
        ];
        let api = Instance::launch_in(&root, &binary, "api", &db, &env);
        api.post("/e2e/handlers").send().expect(200);

        let message = smtp.wait_for("ada@example.com", ": Invoice due");
        let text = str_of(&message["text"]);
        assert!(
            text.contains("amount: 12.5") && text.contains("due on: 2026-12-31"),
            "{message}"
        );

        let job = "SELECT state FROM jobs WHERE kind = 'app.send_report'";
        let deadline = Instant::now() + Duration::from_secs(60);
        while db.query_value(job) != "succeeded" {
            assert!(
                Instant::now() < deadline,
                "the job is `{}`:\n{}",
                db.query_value(job),
                api.service.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let payload = db.query_value(
            "SELECT payload FROM job_payloads p JOIN jobs j ON j.id = p.job_id \
             WHERE j.kind = 'app.send_report'",
        );
        assert!(
            payload.contains("\"user_id\":\"ada@example.com\""),
            "{payload}"
        );
        assert!(api.service.logs().contains("job ran"));
    }
}

/// The default workspace with the job and the email, checked as generated, then with the
/// product's route; its api built (in a target directory of its own: the binary is named `api`
/// like the default workspace's).
fn workspace_with_handlers() -> (PathBuf, PathBuf) {
    let root = fresh_workspace("handlers", &["--yes"]);
    for args in [JOB, EMAIL] {
        saaskit(&root).arg("generate").args(args).assert().success();
    }
    let target = shared_target_dir().with_file_name("generated-workspaces-handlers");
    lint_beside(&root, &target);
    let main = root.join("services/api/src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    let anchor = "    let app = http::health_routes(readiness);\n";
    assert!(text.contains(anchor), "{text}");
    std::fs::write(&main, text.replace(anchor, &format!("{anchor}{ROUTE}"))).unwrap();
    cargo_beside(&root, &target, &["build", "-p", "api"]);
    (root, target.join("debug").join("api"))
}
