//! Transactional email and the account flows (modules `email` and `auth`, docs/email.md), black
//! box: the api of the default workspace sends through a real SMTP server the test starts
//! (aiosmtpd, `tests/smtp/sink.py`, which stores each message it accepts as a JSON file); the
//! service only knows `SMTP_URL`. Links are read from the messages as a person would.

use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{Api, PASSWORD, on_each_database, register, str_of};
use crate::support::{Database, free_port, python_server};

/// How long a message may take to arrive before a test gives up.
const PATIENCE: Duration = Duration::from_secs(60);

const NEW_PASSWORD: &str = "a brand new horse battery";

#[test]
fn registration_verification_reset_and_the_tokens_rules() {
    on_each_database(verification_and_reset);
}

#[test]
fn hidden_registration_and_verified_sign_in_with_auth_require_verified_email() {
    on_each_database(require_verified);
}

#[test]
fn an_email_change_is_confirmed_by_the_new_address() {
    on_each_database(email_change);
}

#[test]
fn mail_waits_while_the_smtp_server_is_down_and_a_refused_message_ends_dead() {
    on_each_database(server_down);
}

#[test]
fn a_worker_killed_mid_delivery_sends_again_after_its_lease_with_a_token_per_message() {
    kill_nine(&Database::postgres());
}

#[test]
fn reset_links_are_rate_limited_per_address() {
    rate_limited(&Database::sqlite());
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn verification_and_reset(db: &Database) {
    let smtp = Smtp::start();
    let api = start(db, &smtp, &[]);
    let session = register(&api, "ada@example.com");
    assert_eq!(session.user["email_verified"], false);

    // Register -> the message arrives -> its link's token verifies.
    let verification = smtp.wait_for("ada@example.com", "Confirm your email address");
    let verify_token = token_of(&verification);
    assert!(
        link_of(&verification).starts_with("http://localhost:3000/verify-email?token="),
        "{verification}"
    );
    assert_eq!(me(&api, &session.access)["email_verified"], false);
    verify(&api, &verify_token).expect(204);
    assert_eq!(me(&api, &session.access)["email_verified"], true);
    // Single use.
    verify(&api, &verify_token).expect_error(400, "invalid_token");

    // Forgot: the same answer whether or not the address has an account.
    let known = forgot(&api, "Ada@Example.com").expect_json(202);
    let unknown = forgot(&api, "nobody-here@example.com").expect_json(202);
    assert_eq!(known, json!({"status": "check_email"}));
    assert_eq!(unknown, known);
    let reset = smtp.wait_for("ada@example.com", "Reset your");
    let first = token_of(&reset);

    // A token of another purpose is refused, and left as it was.
    verify(&api, &first).expect_error(400, "invalid_token");
    // A new request replaces the previous link.
    forgot(&api, "ada@example.com").expect(202);
    let second = token_of(&smtp.wait_for_nth("ada@example.com", "Reset your", 2));
    assert_ne!(first, second);
    reset_password(&api, &first, NEW_PASSWORD).expect_error(400, "invalid_token");
    // The password policy of registration; a refused password leaves the token usable.
    let weak = reset_password(&api, &second, "short").expect_error(422, "validation_failed");
    assert!(weak["fields"]["new_password"].is_string(), "{weak}");

    // Reset -> old sessions refused -> sign-in with the new password.
    reset_password(&api, &second, NEW_PASSWORD).expect(204);
    api.get("/api/auth/me")
        .bearer(&session.access)
        .send()
        .expect(401);
    refresh(&api, session.refresh_token()).expect(401);
    login(&api, "ada@example.com", PASSWORD).expect_error(401, "invalid_credentials");
    login(&api, "ada@example.com", NEW_PASSWORD).expect(200);
    reset_password(&api, &second, "yet another horse battery").expect_error(400, "invalid_token");
    smtp.wait_for("ada@example.com", "password was changed");

    // An expired link is refused (its expiry is moved to the past, as time would).
    forgot(&api, "ada@example.com").expect(202);
    let expiring = token_of(&smtp.wait_for_nth("ada@example.com", "Reset your", 3));
    db.execute(&format!(
        "UPDATE account_tokens SET expires_at = created_at - 1 WHERE purpose = 'reset_password' \
         AND used_at IS NULL AND created_at > {}",
        crate::api::now() - 3600
    ));
    reset_password(&api, &expiring, PASSWORD).expect_error(400, "invalid_token");

    // Only hashes are stored, and no job carries a token.
    for token in [&verify_token, &first, &second, &expiring] {
        for sql in [
            format!("SELECT count(*) FROM account_tokens WHERE token_hash = '{token}'"),
            format!("SELECT count(*) FROM job_payloads WHERE payload LIKE '%{token}%'"),
        ] {
            assert_eq!(db.query_value(&sql), "0", "{token} is stored: {sql}");
        }
    }
    assert!(
        smtp.to("nobody-here@example.com").is_empty(),
        "no message to an address without an account"
    );
}

fn require_verified(db: &Database) {
    let smtp = Smtp::start();
    let api = start(db, &smtp, &[("AUTH_REQUIRE_VERIFIED_EMAIL", "true")]);
    let body = json!({"email": "bea@example.com", "password": PASSWORD});
    let first = api.post("/api/auth/register").json(body.clone()).send();
    let again = api.post("/api/auth/register").json(body).send();
    assert_eq!(first.expect_json(202), json!({"status": "check_email"}));
    assert_eq!(again.expect_json(202), json!({"status": "check_email"}));
    // The owner learns of the second attempt; the caller could not tell.
    smtp.wait_for("bea@example.com", "Someone tried to register");
    login(&api, "bea@example.com", PASSWORD).expect_error(403, "email_unverified");

    let verification = smtp.wait_for("bea@example.com", "Confirm your email address");
    verify(&api, &token_of(&verification)).expect(204);
    let signed_in = login(&api, "bea@example.com", PASSWORD).expect_json(200);
    assert_eq!(signed_in["user"]["email_verified"], true);

    // A refresh of an account that is not verified (any more) is refused too.
    db.execute("UPDATE users SET email_verified_at = NULL WHERE email = 'bea@example.com'");
    refresh(&api, str_of(&signed_in["refresh_token"])).expect_error(403, "email_unverified");
}

fn email_change(db: &Database) {
    let smtp = Smtp::start();
    let api = start(db, &smtp, &[]);
    let session = register(&api, "cy@example.com");
    let change = |new_email: &str, password: &str| {
        api.post("/api/auth/email")
            .bearer(&session.access)
            .json(json!({"new_email": new_email, "current_password": password}))
            .send()
    };
    let wrong = change("cy@new.example", "not the password").expect_error(422, "validation_failed");
    assert!(wrong["fields"]["current_password"].is_string(), "{wrong}");
    change("CY@new.example", PASSWORD).expect(202);

    smtp.wait_for("cy@example.com", "is about to change");
    let confirmation = smtp.wait_for("cy@new.example", "Confirm your new email address");
    let token = token_of(&confirmation);
    // A confirmation token does not verify an address, nor reset a password.
    verify(&api, &token).expect_error(400, "invalid_token");
    reset_password(&api, &token, NEW_PASSWORD).expect_error(400, "invalid_token");
    assert_eq!(me(&api, &session.access)["email"], "cy@example.com");

    confirm(&api, &token).expect(204);
    let user = me(&api, &session.access);
    assert_eq!(user["email"], "cy@new.example");
    assert_eq!(user["email_verified"], true);
    confirm(&api, &token).expect_error(400, "invalid_token");
    login(&api, "cy@new.example", PASSWORD).expect(200);
    login(&api, "cy@example.com", PASSWORD).expect_error(401, "invalid_credentials");
}

fn server_down(db: &Database) {
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let api = start_with_url(db, &url, &[]);
    register(&api, "dee@example.com");
    // Attempts fail while nothing listens; each is recorded with the SMTP client's error.
    wait_until("two failed attempts", || {
        db.query_value(
            "SELECT count(*) FROM jobs WHERE kind = 'auth.account_email' AND state = 'queued' \
             AND attempts >= 2",
        ) == "1"
    });
    let error = db.query_value("SELECT last_error FROM jobs WHERE kind = 'auth.account_email'");
    assert!(
        error.contains("SMTP server did not take the message"),
        "{error}"
    );

    // The server comes back: the message is delivered once, and its token is the one that works.
    let smtp = Smtp::start_on(port);
    let message = smtp.wait_for("dee@example.com", "Confirm your email address");
    wait_until("the job succeeded", || {
        db.query_value("SELECT state FROM jobs WHERE kind = 'auth.account_email'") == "succeeded"
    });
    assert_eq!(smtp.to("dee@example.com").len(), 1);
    verify(&api, &token_of(&message)).expect(204);

    // A recipient the server refuses for good: the job is dead at once, with the SMTP reply.
    let session = register(&api, "eve@example.com");
    api.post("/api/auth/email")
        .bearer(&session.access)
        .json(json!({"new_email": "nobody@example.com", "current_password": PASSWORD}))
        .send()
        .expect(202);
    wait_until("the refused message's job is dead", || {
        db.query_value("SELECT count(*) FROM jobs WHERE state = 'dead'") == "1"
    });
    let dead = db.query_value("SELECT last_error FROM jobs WHERE state = 'dead'");
    assert!(dead.contains("550"), "{dead}");
}

fn kill_nine(db: &Database) {
    let smtp = Smtp::start();
    let lease = [("JOBS_LEASE_SECS", "3")];
    let doomed = start(db, &smtp, &lease);
    register(&doomed, "fay@example.com");
    smtp.wait_for("fay@example.com", "Confirm your email address");

    // The server holds the reset message; the worker waits for its reply, mid-job.
    smtp.stall();
    forgot(&doomed, "fay@example.com").expect(202);
    wait_until("the message is held", || smtp.held());
    // Dropping the instance sends SIGKILL and waits for the process to end.
    drop(doomed);
    smtp.release();
    let leased =
        "SELECT count(*) FROM jobs WHERE kind = 'auth.account_email' AND state = 'running'";
    assert_eq!(
        db.query_value(leased),
        "1",
        "the killed worker's job is still leased"
    );

    let survivor = start(db, &smtp, &lease);
    wait_until("the job ran again and succeeded", || {
        db.query_value(
            "SELECT count(*) FROM jobs WHERE kind = 'auth.account_email' \
             AND state = 'succeeded' AND attempts = 2",
        ) == "1"
    });
    // The held message may have been stored after its sender died: then the owner has two
    // messages. Each token is in exactly one of them, and only the latest works.
    let resets: Vec<Value> = smtp
        .to("fay@example.com")
        .into_iter()
        .filter(|message| str_of(&message["subject"]).contains("Reset your"))
        .collect();
    assert!(!resets.is_empty() && resets.len() <= 2, "{resets:?}");
    let tokens: Vec<String> = resets.iter().map(token_of).collect();
    if let [held, latest] = tokens.as_slice() {
        assert_ne!(held, latest, "each message has its own token");
        reset_password(&survivor, held, NEW_PASSWORD).expect_error(400, "invalid_token");
    }
    reset_password(&survivor, tokens.last().unwrap(), NEW_PASSWORD).expect(204);
}

fn rate_limited(db: &Database) {
    let smtp = Smtp::start();
    let api = start(db, &smtp, &[("RATE_LIMIT_EMAIL_PER_ADDRESS_PER_HOUR", "2")]);
    forgot(&api, "gus@example.com").expect(202);
    forgot(&api, "GUS@example.com").expect(202);
    forgot(&api, "gus@example.com").expect_error(429, "too_many_requests");
    forgot(&api, "other@example.com").expect(202);
}

// ---------------------------------------------------------------------------------------------
// The api, its calls, and the SMTP server

/// The api on `db`, sending through `smtp`.
pub(crate) fn start<'db>(db: &'db Database, smtp: &Smtp, env: &[(&str, &str)]) -> Api<'db> {
    start_with_url(db, &smtp.url(), env)
}

/// The api on `db` with `SMTP_URL` = `url`, quick polls and retries, and `env`.
fn start_with_url<'db>(db: &'db Database, url: &str, env: &[(&str, &str)]) -> Api<'db> {
    let mut all = vec![
        ("SMTP_URL", url),
        ("JOBS_PURGE_SCHEDULE", "off"),
        ("JOBS_POLL_INTERVAL_MS", "50"),
        ("JOBS_RETRY_BASE_MS", "200"),
        ("JOBS_RETRY_MAX_MS", "1000"),
        ("RATE_LIMIT_EMAIL_PER_ADDRESS_PER_HOUR", "10000"),
    ];
    all.extend_from_slice(env);
    Api::start(db, &all)
}

fn me(api: &Api, access: &str) -> Value {
    api.get("/api/auth/me")
        .bearer(access)
        .send()
        .expect_json(200)
}

pub(crate) fn verify(api: &Api, token: &str) -> crate::client::Reply {
    api.post("/api/auth/email/verify")
        .json(json!({ "token": token }))
        .send()
}

fn confirm(api: &Api, token: &str) -> crate::client::Reply {
    api.post("/api/auth/email/confirm")
        .json(json!({ "token": token }))
        .send()
}

fn forgot(api: &Api, email: &str) -> crate::client::Reply {
    api.post("/api/auth/password/forgot")
        .json(json!({ "email": email }))
        .send()
}

fn reset_password(api: &Api, token: &str, new_password: &str) -> crate::client::Reply {
    api.post("/api/auth/password/reset")
        .json(json!({"token": token, "new_password": new_password}))
        .send()
}

fn login(api: &Api, email: &str, password: &str) -> crate::client::Reply {
    api.post("/api/auth/login")
        .json(json!({"email": email, "password": password}))
        .send()
}

fn refresh(api: &Api, refresh_token: &str) -> crate::client::Reply {
    api.post("/api/auth/refresh")
        .json(json!({ "refresh_token": refresh_token }))
        .send()
}

/// The link of a message: the first URL of its text.
pub(crate) fn link_of(message: &Value) -> String {
    let text = str_of(&message["text"]);
    text.split_whitespace()
        .find(|word| word.starts_with("http"))
        .unwrap_or_else(|| panic!("no link in {message}"))
        .to_owned()
}

/// The `token` of a message's link.
pub(crate) fn token_of(message: &Value) -> String {
    let link = link_of(message);
    let (_, token) = link
        .split_once("token=")
        .unwrap_or_else(|| panic!("no token in {link}"));
    token.to_owned()
}

/// Polls `done` until it holds; panics naming `what` after [`PATIENCE`].
pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The SMTP server of a test (`tests/smtp/sink.py`): stopped when dropped, its messages removed.
pub(crate) struct Smtp {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Smtp {
    pub(crate) fn start() -> Smtp {
        Smtp::start_on(free_port())
    }

    /// The server on `port`, once it listens.
    fn start_on(port: u16) -> Smtp {
        let dir = tempfile::Builder::new()
            .prefix("saaskit-smtp-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let port_arg = port.to_string();
        let child = python_server(
            "smtp/sink.py",
            &[port_arg.as_ref(), dir.path().as_os_str()],
            "`pip install aiosmtpd` (.ci/run installs it)",
        );
        Smtp { port, dir, child }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first.
    fn messages(&self) -> Vec<Value> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".json") && !name.starts_with('.'))
            .collect();
        // Named by the time they arrived, in nanoseconds.
        names.sort_by_key(|name| {
            let time = name.split('-').next().unwrap_or_default();
            time.parse::<u128>().unwrap_or_default()
        });
        names
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap();
                serde_json::from_str(&text).unwrap()
            })
            .collect()
    }

    /// The messages to `address`, oldest first.
    fn to(&self, address: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|message| {
                message["to"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|to| to == address)
            })
            .collect()
    }

    /// The first message to `address` whose subject contains `subject`.
    pub(crate) fn wait_for(&self, address: &str, subject: &str) -> Value {
        self.wait_for_nth(address, subject, 1)
    }

    /// The `nth` (from 1) message to `address` whose subject contains `subject`.
    pub(crate) fn wait_for_nth(&self, address: &str, subject: &str, nth: usize) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let matching: Vec<Value> = self
                .to(address)
                .into_iter()
                .filter(|message| str_of(&message["subject"]).contains(subject))
                .collect();
            if let Some(message) = matching.into_iter().nth(nth - 1) {
                return message;
            }
            assert!(
                Instant::now() < deadline,
                "no message {nth} to {address} about {subject:?} within {PATIENCE:?}; received: {:?}",
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Holds every message from now on, before answering its data.
    fn stall(&self) {
        std::fs::write(self.dir.path().join("stall"), "").unwrap();
    }

    fn release(&self) {
        std::fs::remove_file(self.dir.path().join("stall")).unwrap();
    }

    /// Whether a message has been held.
    fn held(&self) -> bool {
        std::fs::read_dir(self.dir.path()).unwrap().any(|entry| {
            entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("held-")
        })
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
