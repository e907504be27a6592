//! The admin service, black box (docs/admin.md): staff accounts made by its `create-admin`
//! command, the permission matrix of the JSON API (anonymous, customer, support, admin),
//! disabling customers, audited impersonation as the api sees it, the append-only audit log, and
//! the panel's cookie sign-in, CSRF tokens and rate limit over plain HTTP. (The panel in a real
//! browser is in `panel.rs`.)
//!
//! Each scenario runs against a fresh SQLite file and a fresh PostgreSQL database, with the api
//! and the admin service on the same database and the same signing key: a staff member logs in
//! through the api like anyone, but the admin service takes only staff tokens, from its own
//! `POST /api/admin/auth/token`, and its panel's sessions.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{
    Api, KEY, PASSWORD, Session, claims, launch_with_test_settings, login_as, on_each_database,
    register, seed, str_of,
};
use crate::client::{Call, Instance, Reply, assert_keys, at_once};
use crate::support::{Database, default_workspace, service_binary};

// ---------------------------------------------------------------------------------------------
// The scenarios, each on SQLite and on PostgreSQL

#[test]
fn staff_accounts_are_made_by_a_command_not_by_default() {
    on_each_database(with_stack(create_admin_command));
}

#[test]
fn every_endpoint_refuses_anonymous_and_customers_and_support_only_reads_and_impersonates() {
    on_each_database(with_stack(permission_matrix));
}

#[test]
fn disabling_a_customer_ends_every_session_and_token_at_once() {
    on_each_database(with_stack(disable_and_enable));
}

#[test]
fn impersonation_needs_a_reason_lasts_at_most_15_minutes_and_cannot_change_credentials() {
    on_each_database(with_stack(impersonation));
}

#[test]
fn the_audit_log_is_append_only_filterable_and_exported_as_csv() {
    on_each_database(with_stack(audit_log));
}

#[test]
fn the_panel_signs_in_with_its_own_cookie_and_refuses_forms_without_their_csrf_token() {
    on_each_database(with_stack(panel_over_http));
}

#[test]
fn a_role_change_ends_every_session_the_account_had() {
    on_each_database(with_stack(role_change));
}

#[test]
fn the_customer_sees_a_support_session_not_who_impersonates_them() {
    on_each_database(with_stack(impersonation_label));
}

#[test]
fn the_back_office_takes_staff_tokens_and_staff_sessions_only() {
    on_each_database(with_stack(staff_credentials_only));
}

#[test]
fn the_audit_csv_quotes_fields_and_defuses_formulas_wherever_a_cell_could_start() {
    on_each_database(with_stack(csv_cells));
}

#[test]
fn staff_sessions_end_by_their_own_shorter_timeouts() {
    on_each_database(|db| {
        let api = Api::start(db, &[]);
        create_staff(db, "root@example.com", "admin").expect("the admin is created");
        // A customer-facing session of the same account, older than the staff ones below.
        let customer_facing = login_as(&api, "root@example.com", PASSWORD);

        // The defaults: OWASP's ranges for high-value applications.
        let defaults = std::fs::read_to_string(default_workspace().join(".env.example")).unwrap();
        assert!(defaults.contains("\nAUTH_STAFF_SESSION_IDLE_TIMEOUT_SECS=300\n"));
        assert!(defaults.contains("\nAUTH_STAFF_SESSION_ABSOLUTE_TIMEOUT_SECS=28800\n"));

        // Absolute: 8 s after sign-in, used or not, the panel session and the staff token end.
        let admin = start_admin(db, &[("AUTH_STAFF_SESSION_ABSOLUTE_TIMEOUT_SECS", "8")]);
        let signed_in = PanelForm::fetch(&admin)
            .sign_in(&admin, "root@example.com", PASSWORD)
            .expect(303);
        let set_cookie = signed_in.set_cookie("admin-session");
        assert!(
            !set_cookie.to_ascii_lowercase().contains("max-age"),
            "a session cookie, forgotten when the browser closes: {set_cookie}"
        );
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let token = staff_token(&admin, "root@example.com", PASSWORD).expect_json(201);
        assert!(token["expires_in"].as_i64().unwrap() <= 8, "{token}");
        let token = str_of(&token["access_token"]).to_string();
        wait_until_refused(&admin, |call| call.cookie(&cookie), "/admin");
        wait_until_refused(&admin, |call| call.bearer(&token), "/api/admin/users");
        api.get("/api/auth/me")
            .bearer(&customer_facing.access)
            .send()
            .expect(200);
        drop(admin);

        // Idle: a staff session unused for 5 s ends (waited out well past it).
        let admin = start_admin(db, &[("AUTH_STAFF_SESSION_IDLE_TIMEOUT_SECS", "5")]);
        let session = PanelSession::sign_in(&admin, "root@example.com");
        std::thread::sleep(Duration::from_secs(12));
        session.get(&admin, "/admin").check(401);
        api.get("/api/auth/me")
            .bearer(&customer_facing.access)
            .send()
            .expect(200);
    });
}

#[test]
fn staff_tokens_are_rate_limited_per_email_like_the_panel_sign_in() {
    on_each_database(|db| {
        let _api = Api::start(db, &[]);
        let admin = start_admin(db, &[("RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE", "3")]);
        // At once, as in the panel's test below: counted on arrival, before hashing.
        let mut statuses: Vec<u16> = at_once(4, |_| {
            staff_token(&admin, "ops@example.com", "wrong password 1")
        })
        .iter()
        .map(|reply| reply.status)
        .collect();
        statuses.sort_unstable();

        assert_eq!(statuses, [401, 401, 401, 429]);
    });
}

#[test]
fn panel_sign_in_is_rate_limited_per_email_and_client_ip() {
    on_each_database(|db| {
        let _api = Api::start(db, &[]);
        let admin = start_admin(db, &[("RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE", "3")]);
        let form = PanelForm::fetch(&admin);
        // At once: each attempt is counted when it arrives, before its password is hashed, so
        // the outcome does not hang on how fast hashing is (3 a minute: one back every 20 s).
        let mut statuses: Vec<u16> = at_once(4, |_| {
            form.sign_in(&admin, "ops@example.com", "wrong password 1")
        })
        .iter()
        .map(|reply| reply.status)
        .collect();
        statuses.sort_unstable();

        assert_eq!(statuses, [401, 401, 401, 429]);
    });
}

#[test]
fn failed_panel_sign_ins_from_one_address_do_not_lock_the_staff_member_out() {
    let db = Database::sqlite();
    let _api = Api::start(&db, &[]);
    // The limits' defaults.
    let admin = start_admin(
        &db,
        &[
            ("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", "30"),
            ("RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE", "10"),
            ("RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR", "100"),
        ],
    );
    create_staff(&db, "ops@example.com", "admin").expect("the admin is created");

    let stranger = Ipv4Addr::new(127, 0, 0, 3);
    let form = PanelForm::fetch(&admin);
    let replies = at_once(30, |_| {
        form.post(&admin, "ops@example.com", "wrong password 1")
            .from(stranger)
            .send()
    });
    assert!(
        replies.iter().any(|reply| reply.status == 429),
        "{replies:#?}"
    );
    for reply in &replies {
        assert!([401, 429].contains(&reply.status), "{reply}");
    }

    let owner = Ipv4Addr::new(127, 0, 0, 7);
    let signed_in = form
        .post(&admin, "ops@example.com", PASSWORD)
        .from(owner)
        .send()
        .expect(303);
    assert_eq!(signed_in.header("location"), Some("/admin"));
}

/// How long a state the tests wait for may take to come.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Scenarios

/// The api, the admin service, and one account of each role.
pub(crate) struct Stack<'db> {
    pub(crate) db: &'db Database,
    pub(crate) api: Api<'db>,
    pub(crate) admin: AdminService<'db>,
    pub(crate) customer: Session,
    pub(crate) support: StaffMember,
    pub(crate) root: StaffMember,
}

/// A staff member: a staff token for the back office, and a session at the api, where staff
/// sign in like anyone (customer-facing: the back office refuses its tokens).
pub(crate) struct StaffMember {
    pub(crate) user: Value,
    /// A staff token, from the admin service's `POST /api/admin/auth/token`.
    pub(crate) access: String,
    pub(crate) api: Session,
}

impl StaffMember {
    pub(crate) fn sign_in(api: &Api, admin: &AdminService, email: &str) -> StaffMember {
        let token = staff_token(admin, email, PASSWORD).expect_json(201);
        assert_keys(
            &token,
            &[
                "user",
                "session_id",
                "access_token",
                "token_type",
                "expires_in",
            ],
        );
        StaffMember {
            user: token["user"].clone(),
            access: str_of(&token["access_token"]).to_string(),
            api: login_as(api, email, PASSWORD),
        }
    }
}

/// `POST /api/admin/auth/token` with `email` and `password`.
pub(crate) fn staff_token(admin: &AdminService, email: &str, password: &str) -> Reply {
    admin
        .post("/api/admin/auth/token")
        .json(json!({"email": email, "password": password}))
        .send()
}

/// Calls `path` with the credentials `with` adds until it is refused with 401, for at most
/// [`PATIENCE`].
fn wait_until_refused(admin: &AdminService, with: impl Fn(Call) -> Call, path: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = with(admin.get(path)).send();
        if reply.status == 401 {
            return;
        }
        assert_eq!(reply.status, 200, "{reply}");
        assert!(Instant::now() < deadline, "{path} still accepted: {reply}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub(crate) fn with_stack(scenario: fn(&Stack)) -> impl Fn(&Database) {
    move |db| scenario(&Stack::start(db))
}

impl<'db> Stack<'db> {
    pub(crate) fn start(db: &'db Database) -> Stack<'db> {
        let api = Api::start(db, &[]);
        let admin = start_admin(db, &[]);
        let customer = register(&api, "customer@example.com");
        create_staff(db, "support@example.com", "support").expect("support is created");
        create_staff(db, "root@example.com", "admin").expect("the admin is created");
        let support = StaffMember::sign_in(&api, &admin, "support@example.com");
        let root = StaffMember::sign_in(&api, &admin, "root@example.com");
        Stack {
            db,
            api,
            admin,
            customer,
            support,
            root,
        }
    }

    pub(crate) fn customer_id(&self) -> String {
        str_of(&self.customer.user["id"]).to_string()
    }
}

fn create_admin_command(s: &Stack) {
    // An email that has an account already is refused, unless promoted explicitly.
    let taken = create_staff(s.db, "customer@example.com", "admin").unwrap_err();
    assert!(taken.contains("--promote"), "{taken}");
    // Weak passwords are refused with the api's policy.
    let weak = run_admin_command(
        s.db,
        &["create-admin", "--email", "weak@example.com"],
        "short",
    )
    .unwrap_err();
    assert!(weak.contains("password"), "{weak}");
    // Without a password and without a terminal, it says how to give one.
    let none =
        run_admin_command(s.db, &["create-admin", "--email", "x@example.com"], "").unwrap_err();
    assert!(none.contains("ADMIN_PASSWORD"), "{none}");

    // The made accounts have their roles, seen by the api too.
    let me = s.api.get("/api/auth/me").bearer(&s.root.api.access).send();
    assert_eq!(me.expect_json(200)["role"], "admin");
    let me = s
        .api
        .get("/api/auth/me")
        .bearer(&s.support.api.access)
        .send();
    assert_eq!(me.expect_json(200)["role"], "support");

    // --promote keeps the password and gives the role.
    let promoted = run_admin_command(
        s.db,
        &[
            "create-admin",
            "--email",
            "customer@example.com",
            "--role",
            "support",
            "--promote",
        ],
        "",
    )
    .unwrap();
    assert!(promoted.contains("is now support"), "{promoted}");
    let again = login_as(&s.api, "customer@example.com", PASSWORD);
    assert_eq!(again.user["role"], "support");
}

/// A role given to an account ends every session it had: whoever registered it beforehand keeps
/// no token, refresh token or cookie that would now carry the role. Demoting does the same.
fn role_change(s: &Stack) {
    let early = register(&s.api, "new-hire@example.com");
    let promoted = run_admin_command(
        s.db,
        &[
            "create-admin",
            "--email",
            "new-hire@example.com",
            "--role",
            "admin",
            "--promote",
        ],
        "",
    )
    .unwrap();
    s.api
        .get("/api/auth/me")
        .bearer(&early.access)
        .send()
        .expect_error(401, "unauthorized");
    s.api
        .get("/api/auth/me")
        .cookie(early.cookie_pair())
        .send()
        .expect_error(401, "unauthorized");
    s.api
        .post("/api/auth/refresh")
        .json(json!({"refresh_token": early.refresh_token()}))
        .send()
        .expect_error(401, "unauthorized");
    assert!(promoted.contains("1 session(s) ended"), "{promoted}");
    // Signing in again is the way in, with the new role.
    let again = StaffMember::sign_in(&s.api, &s.admin, "new-hire@example.com");
    assert_eq!(again.user["role"], "admin");
    s.admin
        .get("/api/admin/users")
        .bearer(&again.access)
        .send()
        .expect(200);

    // Demoted, the staff token and the api session end too.
    run_admin_command(
        s.db,
        &[
            "create-admin",
            "--email",
            "new-hire@example.com",
            "--role",
            "support",
            "--promote",
        ],
        "",
    )
    .unwrap();
    s.admin
        .get("/api/admin/users")
        .bearer(&again.access)
        .send()
        .expect_error(401, "unauthorized");
    s.api
        .get("/api/auth/me")
        .bearer(&again.api.access)
        .send()
        .expect_error(401, "unauthorized");
    // The other staff keep theirs.
    s.admin
        .get("/api/admin/users")
        .bearer(&s.root.access)
        .send()
        .expect(200);
}

/// While staff impersonate a customer, the customer's session list shows a support session,
/// never the staff member's identity; the audit log keeps who it was.
fn impersonation_label(s: &Stack) {
    let id = s.customer_id();
    start_impersonation(s, &s.support, &id);
    let listed = s
        .api
        .get("/api/auth/sessions")
        .bearer(&s.customer.access)
        .send()
        .expect(200);
    assert!(!listed.body.contains("support@example.com"), "{listed}");
    assert!(
        !listed.body.contains(str_of(&s.support.user["id"])),
        "{listed}"
    );
    let sessions = listed.json()["sessions"].as_array().unwrap().clone();
    let labels: Vec<&Value> = sessions
        .iter()
        .map(|session| &session["user_agent"])
        .collect();
    assert!(labels.contains(&&json!("support session")), "{listed}");
    // Staff see the same label on the customer's page; the audit log says who.
    let detail = s
        .admin
        .get(&format!("/api/admin/users/{id}"))
        .bearer(&s.root.access)
        .send()
        .expect(200);
    assert!(!detail.body.contains("support@example.com"), "{detail}");
    let entry = &audit_entries(s, "?action=impersonation.start")[0];
    assert_eq!(entry["actor_email"], "support@example.com");
}

/// The admin JSON API, the panel and the webhooks operations API take staff credentials only:
/// staff tokens from `POST /api/admin/auth/token` (staff audience, in a staff session), and the
/// panel's staff sessions; never the api's tokens or sessions, a staff member's included.
fn staff_credentials_only(s: &Stack) {
    // A staff token: its own audience, refused by the api.
    let token = staff_token(&s.admin, "root@example.com", PASSWORD).expect_json(201);
    assert_eq!(token["user"]["email"], "root@example.com");
    assert_eq!(token["token_type"], "bearer");
    let access = str_of(&token["access_token"]).to_string();
    let staff_claims = claims(&access);
    assert_eq!(staff_claims["aud"], "acme-staff");
    assert_eq!(staff_claims["sid"], token["session_id"]);
    assert!(staff_claims["exp"].as_i64().unwrap() - staff_claims["iat"].as_i64().unwrap() <= 900);
    s.api
        .get("/api/auth/me")
        .bearer(&access)
        .send()
        .expect_error(401, "unauthorized");
    s.admin
        .get("/api/admin/metrics")
        .bearer(&access)
        .send()
        .expect(200);
    let refused = s
        .admin
        .get("/api/admin/metrics")
        .bearer(&s.root.api.access)
        .send()
        .expect_error(403, "staff_token_required");
    let message = str_of(&refused["message"]);
    assert!(message.contains("/api/admin/auth/token"), "{refused}");

    // Only staff get one, with one answer for every other case.
    for (email, password) in [
        ("customer@example.com", PASSWORD),
        ("root@example.com", "not the password"),
        ("nobody@example.com", PASSWORD),
    ] {
        staff_token(&s.admin, email, password).expect_error(401, "invalid_credentials");
    }
    // Signing in for a token is audited like the panel's sign-in.
    let sign_ins = audit_entries(s, "?action=staff.sign&actor=root@example.com");
    assert!(
        sign_ins.iter().any(|entry| entry["details"]
            == format!(r#"{{"session_id":"{}"}}"#, str_of(&token["session_id"]))),
        "{sign_ins:?}"
    );

    // The panel: its own cookie name does not make an api session a staff one.
    let api_session_as_panel_cookie = format!("admin-{}", s.root.api.cookie_pair());
    s.admin
        .get("/admin")
        .cookie(&api_session_as_panel_cookie)
        .send()
        .check(401);
    s.admin
        .get("/api/admin/users")
        .cookie(&api_session_as_panel_cookie)
        .send()
        .expect_error(401, "unauthorized");
    // The panel takes a staff token as well as its cookie, and the api's panel-less tokens not.
    s.admin.get("/admin").bearer(&access).send().check(200);
    s.admin
        .get("/admin")
        .bearer(&s.root.api.access)
        .send()
        .check(403);
    // The panel's session works with the JSON API, and not at the api.
    let panel = PanelSession::sign_in(&s.admin, "root@example.com");
    panel.get(&s.admin, "/api/admin/metrics").check(200);
    let panel_cookie_at_api = panel.cookie.replacen("admin-session", "session", 1);
    s.api
        .get("/api/auth/me")
        .cookie(&panel_cookie_at_api)
        .send()
        .expect_error(401, "unauthorized");
}

/// The audit log's CSV export: every field with a separator, a quote or a line break is quoted
/// (RFC 4180), and a formula start is defused wherever a spreadsheet could start a cell, not
/// only at the field's start (a spreadsheet splitting on `;` or tabs, or ignoring quotes).
fn csv_cells(s: &Stack) {
    let id = s.customer_id();
    let reason = "refund;=HYPERLINK(\"http://evil.example\",\"x\")\n@SUM(1)\t-2,+3 \"q\"";
    s.admin
        .post(&format!("/api/admin/users/{id}/disable"))
        .bearer(&s.root.access)
        .json(json!({ "reason": reason }))
        .send()
        .expect(200);
    let csv = s
        .admin
        .get(&format!("/api/admin/audit.csv?target={id}"))
        .bearer(&s.support.access)
        .send()
        .expect(200);

    // Read as RFC 4180, the reason is one field, defused where cells could start.
    let records = parse_csv(&csv.body);
    assert_eq!(records.len(), 2, "{}", csv.body);
    assert_eq!(records[0].len(), 10, "{:?}", records[0]);
    assert_eq!(records[1].len(), 10, "{:?}", records[1]);
    assert_eq!(
        records[1][7],
        "refund;'=HYPERLINK(\"http://evil.example\",\"x\")\n'@SUM(1)\t'-2,'+3 \"q\""
    );
    // Split however a spreadsheet might (on any separator, line break or quote), no cell starts
    // with a formula.
    for cell in csv.body.split([',', ';', '\t', '\r', '\n', '"']) {
        assert!(
            !cell.starts_with(['=', '+', '-', '@']),
            "a cell starts a formula: {cell:?} in {}",
            csv.body
        );
    }
}

/// The records of an RFC 4180 CSV text: quoted fields may hold separators, doubled quotes and
/// line breaks; records end with CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted && field.is_empty() && record.is_empty(), "{text:?}");
    records
}

/// Every endpoint of the JSON API for each kind of caller. Changes are tried by callers who
/// are refused first, so that the admin's own calls at the end find the state they expect.
fn permission_matrix(s: &Stack) {
    let id = s.customer_id();
    let reads = [
        "/api/admin/metrics".to_string(),
        "/api/admin/users".to_string(),
        "/api/admin/users?q=customer".to_string(),
        format!("/api/admin/users/{id}"),
        "/api/admin/audit".to_string(),
        "/api/admin/audit.csv".to_string(),
    ];
    let changes = [
        (
            format!("/api/admin/users/{id}/disable"),
            json!({"reason": "matrix"}),
        ),
        (format!("/api/admin/users/{id}/enable"), json!({})),
        (format!("/api/admin/users/{id}/revoke-sessions"), json!({})),
    ];
    let impersonate = format!("/api/admin/users/{id}/impersonate");

    for path in &reads {
        s.admin.get(path).send().expect_error(401, "unauthorized");
        // The api's tokens are customer-facing, a staff member's too.
        for api_token in [
            &s.customer.access,
            &s.support.api.access,
            &s.root.api.access,
        ] {
            s.admin
                .get(path)
                .bearer(api_token)
                .send()
                .expect_error(403, "staff_token_required");
        }
        s.admin
            .get(path)
            .bearer(&s.support.access)
            .send()
            .expect(200);
        s.admin.get(path).bearer(&s.root.access).send().expect(200);
    }
    for (path, body) in &changes {
        s.admin
            .post(path)
            .json(body.clone())
            .send()
            .expect_error(401, "unauthorized");
        s.admin
            .post(path)
            .bearer(&s.customer.access)
            .json(body.clone())
            .send()
            .expect_error(403, "staff_token_required");
        s.admin
            .post(path)
            .bearer(&s.support.access)
            .json(body.clone())
            .send()
            .expect_error(403, "forbidden");
    }
    let reason = json!({"reason": "ticket 42"});
    s.admin
        .post(&impersonate)
        .json(reason.clone())
        .send()
        .expect_error(401, "unauthorized");
    s.admin
        .post(&impersonate)
        .bearer(&s.customer.access)
        .json(reason.clone())
        .send()
        .expect_error(403, "staff_token_required");
    s.admin
        .post(&impersonate)
        .bearer(&s.support.access)
        .json(reason.clone())
        .send()
        .expect(201);
    s.admin
        .post(&impersonate)
        .bearer(&s.root.access)
        .json(reason)
        .send()
        .expect(201);
    for (path, body) in &changes {
        s.admin
            .post(path)
            .bearer(&s.root.access)
            .json(body.clone())
            .send()
            .expect(200);
    }
    // None of the refused attempts left a trace but the admin's and support's own actions
    // (after their sign-ins for staff tokens, oldest).
    let actions = audit_actions(s, "");
    assert_eq!(
        actions,
        [
            "customer.revoke_sessions",
            "customer.enable",
            "customer.disable",
            "impersonation.start",
            "impersonation.start",
            "staff.sign_in",
            "staff.sign_in",
        ]
    );
    // An impersonation token is not staff, whoever it acts as: it is the customer's.
    let token = start_impersonation(s, &s.root, &id);
    s.admin
        .get("/api/admin/users")
        .bearer(&token)
        .send()
        .expect_error(403, "staff_token_required");
    // Staff are never disabled nor impersonated.
    let support_id = str_of(&s.support.user["id"]).to_string();
    s.admin
        .post(&format!("/api/admin/users/{support_id}/disable"))
        .bearer(&s.root.access)
        .json(json!({}))
        .send()
        .expect_error(403, "forbidden");
    s.admin
        .post(&format!("/api/admin/users/{support_id}/impersonate"))
        .bearer(&s.root.access)
        .json(json!({"reason": "curious"}))
        .send()
        .expect_error(403, "forbidden");
}

fn disable_and_enable(s: &Stack) {
    let id = s.customer_id();
    // A second session, to see that all of them end.
    let second = login_as(&s.api, "customer@example.com", PASSWORD);
    let listed = s
        .admin
        .get(&format!("/api/admin/users/{id}"))
        .bearer(&s.support.access)
        .send();
    let detail = listed.expect_json(200);
    assert_keys(&detail, &["user", "sessions"]);
    assert_eq!(detail["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(detail["user"]["disabled_at"], Value::Null);

    let disabled = s
        .admin
        .post(&format!("/api/admin/users/{id}/disable"))
        .bearer(&s.root.access)
        .json(json!({"reason": "chargeback fraud"}))
        .send()
        .expect_json(200);
    assert!(disabled["disabled_at"].as_i64().is_some(), "{disabled}");

    // Every credential of the customer stops working at once.
    for session in [&s.customer, &second] {
        s.api
            .get("/api/auth/me")
            .bearer(&session.access)
            .send()
            .expect_error(401, "unauthorized");
    }
    s.api
        .post("/api/auth/refresh")
        .json(json!({"refresh_token": second.refresh_token()}))
        .send()
        .expect_error(401, "unauthorized");
    s.api
        .post("/api/auth/login")
        .json(json!({"email": "customer@example.com", "password": PASSWORD}))
        .send()
        .expect_error(401, "invalid_credentials");
    let detail = s
        .admin
        .get(&format!("/api/admin/users/{id}"))
        .bearer(&s.root.access)
        .send()
        .expect_json(200);
    assert_eq!(detail["sessions"], json!([]));

    let entry = &audit_entries(s, "?action=customer.disable")[0];
    assert_eq!(entry["actor_email"], "root@example.com");
    assert_eq!(entry["target_id"], id);
    assert_eq!(entry["reason"], "chargeback fraud");
    assert_eq!(entry["client_ip"], "127.0.0.1");
    assert_eq!(entry["details"], r#"{"sessions_ended":2}"#);

    s.admin
        .post(&format!("/api/admin/users/{id}/enable"))
        .bearer(&s.root.access)
        .json(json!({}))
        .send()
        .expect(200);
    login_as(&s.api, "customer@example.com", PASSWORD);
    s.admin
        .post("/api/admin/users/not-a-user/disable")
        .bearer(&s.root.access)
        .json(json!({}))
        .send()
        .expect_error(404, "not_found");
}

fn impersonation(s: &Stack) {
    let id = s.customer_id();
    let path = format!("/api/admin/users/{id}/impersonate");
    let missing = s
        .admin
        .post(&path)
        .bearer(&s.support.access)
        .json(json!({"reason": "   "}))
        .send()
        .expect_error(422, "validation_failed");
    assert!(missing["fields"]["reason"].is_string(), "{missing}");

    let started = s
        .admin
        .post(&path)
        .bearer(&s.support.access)
        .json(json!({"reason": "customer asked for help with invoices"}))
        .send()
        .expect_json(201);
    assert_keys(
        &started,
        &["impersonation", "access_token", "token_type", "expires_in"],
    );
    assert!(started["expires_in"].as_i64().unwrap() <= 900, "{started}");
    let token = str_of(&started["access_token"]).to_string();
    let claims = claims(&token);
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["act"]["sub"], s.support.user["id"]);
    assert_eq!(claims["act"]["email"], "support@example.com");
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 900);

    // The api serves the customer, says who is acting, and refuses credential changes.
    let me = s
        .api
        .get("/api/auth/me")
        .bearer(&token)
        .send()
        .expect_json(200);
    assert_eq!(me["email"], "customer@example.com");
    assert_eq!(
        me["impersonated_by"],
        json!({"id": s.support.user["id"], "email": "support@example.com"})
    );
    let own = s
        .api
        .get("/api/auth/me")
        .bearer(&s.customer.access)
        .send()
        .expect_json(200);
    assert!(own.get("impersonated_by").is_none(), "{own}");
    s.api
        .post("/api/auth/password")
        .bearer(&token)
        .json(json!({"current_password": PASSWORD, "new_password": "an entirely new password"}))
        .send()
        .expect_error(403, "forbidden");
    let sid = str_of(&crate::api::claims(&s.customer.access)["sid"]).to_string();
    s.api
        .delete(&format!("/api/auth/sessions/{sid}"))
        .bearer(&token)
        .send()
        .expect_error(403, "forbidden");
    s.api
        .get("/api/auth/me")
        .bearer(&s.customer.access)
        .send()
        .expect(200);

    // Ending it ends the token; both ends are in the audit log with the reason.
    let impersonation_id = str_of(&started["impersonation"]["id"]).to_string();
    s.admin
        .post(&format!("/api/admin/impersonations/{impersonation_id}/end"))
        .bearer(&s.support.access)
        .send()
        .expect(204);
    s.api
        .get("/api/auth/me")
        .bearer(&token)
        .send()
        .expect_error(401, "unauthorized");
    s.admin
        .post(&format!("/api/admin/impersonations/{impersonation_id}/end"))
        .bearer(&s.support.access)
        .send()
        .expect_error(404, "not_found");
    let entries = audit_entries(s, "?action=impersonation.");
    let actions: Vec<&str> = entries.iter().map(|e| str_of(&e["action"])).collect();
    assert_eq!(actions, ["impersonation.end", "impersonation.start"]);
    assert_eq!(
        entries[1]["reason"],
        "customer asked for help with invoices"
    );
    assert_eq!(entries[1]["actor_email"], "support@example.com");
}

fn audit_log(s: &Stack) {
    let id = s.customer_id();
    for action in ["disable", "enable", "disable"] {
        s.admin
            .post(&format!("/api/admin/users/{id}/{action}"))
            .bearer(&s.root.access)
            .json(json!({"reason": format!("=cmd|' /C calc'!A0 {action}")}))
            .send()
            .expect(200);
    }
    // Filters combine; pages are bounded and say whether more follow.
    assert_eq!(audit_actions(s, "?action=customer.en"), ["customer.enable"]);
    assert_eq!(
        audit_actions(s, &format!("?target={id}&actor=root@example.com")).len(),
        3
    );
    assert_eq!(
        audit_actions(s, "?actor=support@example.com"),
        ["staff.sign_in"]
    );
    let page = s
        .admin
        .get("/api/admin/audit?per_page=2")
        .bearer(&s.support.access)
        .send()
        .expect_json(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
    s.admin
        .get("/api/admin/audit?action=%25")
        .bearer(&s.support.access)
        .send()
        .expect_error(422, "validation_failed");

    // CSV: a header, the entries oldest first, and formulas defused.
    let csv = s
        .admin
        .get(&format!("/api/admin/audit.csv?target={id}"))
        .bearer(&s.support.access)
        .send()
        .expect(200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 4, "{}", csv.body);
    assert!(lines[0].starts_with("id,created_at,actor_id,actor_email,action"));
    assert!(lines[1].contains(",customer.disable,user,"), "{}", lines[1]);
    assert!(
        lines[1].contains(r#""'=cmd|' /C calc'!A0 disable""#),
        "{}",
        lines[1]
    );

    // The database itself refuses to change or delete entries.
    for sql in [
        "UPDATE audit_log SET reason = 'nothing happened'",
        "DELETE FROM audit_log",
    ] {
        let refused = s.db.try_execute(sql).unwrap_err();
        assert!(refused.contains("append-only"), "{refused}");
    }
    // Three actions, and the two staff tokens' sign-ins.
    assert_eq!(audit_actions(s, "").len(), 5);
}

fn panel_over_http(s: &Stack) {
    let admin = &s.admin;
    // Not signed in: 401 with the sign-in form; the api's session cookie does not count.
    let anonymous = admin.get("/admin/customers").send().expect(401);
    assert!(anonymous.body.contains(r#"name="password""#), "{anonymous}");
    let with_api_cookie = admin
        .get("/admin/customers")
        .cookie(s.root.api.cookie_pair())
        .send();
    with_api_cookie.check(401);

    // The sign-in form needs its own token, and staff credentials.
    let form = PanelForm::fetch(admin);
    let forged = admin
        .post("/admin/sign-in")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .cookie(&form.cookie)
        .raw_body("csrf=guess&email=root%40example.com&password=correct+horse+battery+staple")
        .send();
    forged.check(403);
    assert!(forged.find_set_cookie("admin-session").is_none());
    form.sign_in(admin, "customer@example.com", PASSWORD)
        .check(401);
    form.sign_in(admin, "root@example.com", "not the password")
        .check(401);
    let support = PanelSession::sign_in(admin, "support@example.com");
    let root = PanelSession::sign_in(admin, "root@example.com");

    // Pages: the dashboard's figures, the customer search, a customer's page.
    let dashboard = root.get(admin, "/admin").expect(200);
    assert!(
        dashboard.body.contains(r#"id="metric-users_total""#),
        "{dashboard}"
    );
    assert!(
        dashboard
            .header("content-security-policy")
            .is_some_and(|csp| csp.contains("default-src 'none'") && !csp.contains("script")),
        "{dashboard}"
    );
    let found = root.get(admin, "/admin/customers?q=CUSTOMER").expect(200);
    assert!(found.body.contains("customer@example.com"), "{found}");
    let none = root.get(admin, "/admin/customers?q=nobody%25").expect(200);
    assert!(!none.body.contains("customer@example.com"), "{none}");
    let id = s.customer_id();
    let page = root
        .get(admin, &format!("/admin/customers/{id}"))
        .expect(200);
    assert!(page.body.contains(r#"id="disable""#), "{page}");
    // Support staff see the page without the admin's actions.
    let support_page = support
        .get(admin, &format!("/admin/customers/{id}"))
        .expect(200);
    assert!(!support_page.body.contains(r#"id="disable""#));
    assert!(support_page.body.contains(r#"id="impersonate""#));

    // The JSON API takes the panel's session too.
    let users = root.get(admin, "/api/admin/users").expect_json(200);
    assert!(
        users["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
    );

    // A form without its CSRF token, or with another session's, changes nothing.
    let disable = format!("/admin/customers/{id}/disable");
    root.post(admin, &disable, "reason=no+token").check(403);
    let stolen = format!("csrf={}&reason=other+session", support.csrf);
    root.post(admin, &disable, &stolen).check(403);
    s.api
        .get("/api/auth/me")
        .bearer(&s.customer.access)
        .send()
        .expect(200);
    // Support may not disable even with a valid token.
    support
        .post(admin, &disable, &format!("csrf={}&reason=x", support.csrf))
        .check(403);

    let done = root.post(admin, &disable, &format!("csrf={}&reason=abuse", root.csrf));
    done.check(303);
    assert_eq!(
        done.header("location"),
        Some(&*format!("/admin/customers/{id}?notice=disabled"))
    );
    s.api
        .get("/api/auth/me")
        .bearer(&s.customer.access)
        .send()
        .expect_error(401, "unauthorized");
    let audited = root
        .get(admin, "/admin/audit?action=customer.disable")
        .expect(200);
    assert!(audited.body.contains("abuse"), "{audited}");

    // Signing out ends the panel session.
    root.post(admin, "/admin/sign-out", &format!("csrf={}", root.csrf))
        .check(303);
    root.get(admin, "/admin").check(401);
    support.get(admin, "/admin").check(200);

    // Signing in and out are audited, failed attempts are not.
    let sessions = audit_entries(s, "?action=staff.");
    let seen: Vec<(&str, &str)> = sessions
        .iter()
        .map(|entry| (str_of(&entry["action"]), str_of(&entry["actor_email"])))
        .collect();
    assert_eq!(
        seen,
        [
            ("staff.sign_out", "root@example.com"),
            ("staff.sign_in", "root@example.com"),
            ("staff.sign_in", "support@example.com"),
            // The staff tokens' sign-ins of the stack.
            ("staff.sign_in", "root@example.com"),
            ("staff.sign_in", "support@example.com"),
        ]
    );
    assert_eq!(sessions[0]["client_ip"], "127.0.0.1");
}

// ---------------------------------------------------------------------------------------------
// The admin service, staff accounts and the panel

/// The admin service: an [`Instance`] of the `admin` service.
pub(crate) type AdminService<'db> = Instance<'db>;

/// The admin service on `db` with the api's test settings (so that it accepts the api's
/// tokens), changed by `env`.
pub(crate) fn start_admin<'db>(db: &'db Database, env: &[(&str, &str)]) -> AdminService<'db> {
    launch_with_test_settings("admin", db, env)
}

/// Makes a staff account with the admin service's command, password [`PASSWORD`].
pub(crate) fn create_staff(db: &Database, email: &str, role: &str) -> Result<String, String> {
    run_admin_command(
        db,
        &["create-admin", "--email", email, "--role", role],
        PASSWORD,
    )
}

/// Runs the admin binary with `args` in the default workspace, on `db`, with `ADMIN_PASSWORD`
/// (none when empty) and no terminal: its output, or its error output when it fails.
fn run_admin_command(db: &Database, args: &[&str], password: &str) -> Result<String, String> {
    let mut command = Command::new(service_binary("admin"));
    command
        .current_dir(default_workspace())
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("AUTH_SIGNING_KEY", seed(KEY))
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .env_remove("ADMIN_PASSWORD")
        .stdin(std::process::Stdio::null());
    if !password.is_empty() {
        command.env("ADMIN_PASSWORD", password);
    }
    let output = command.output().expect("the admin binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

/// Starts an impersonation as `staff` and returns its access token.
pub(crate) fn start_impersonation(s: &Stack, staff: &StaffMember, user_id: &str) -> String {
    let started = s
        .admin
        .post(&format!("/api/admin/users/{user_id}/impersonate"))
        .bearer(&staff.access)
        .json(json!({"reason": "checking what the customer sees"}))
        .send()
        .expect_json(201);
    str_of(&started["access_token"]).to_string()
}

/// The audit log's entries for `query`, newest first, as support sees them.
fn audit_entries(s: &Stack, query: &str) -> Vec<Value> {
    let page = s
        .admin
        .get(&format!("/api/admin/audit{query}"))
        .bearer(&s.support.access)
        .send()
        .expect_json(200);
    page["items"].as_array().unwrap().clone()
}

fn audit_actions(s: &Stack, query: &str) -> Vec<String> {
    audit_entries(s, query)
        .iter()
        .map(|entry| str_of(&entry["action"]).to_string())
        .collect()
}

/// The value of the first hidden `csrf` field of an HTML page.
pub(crate) fn csrf_field(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// A sign-in form as a browser holds it: the login-CSRF cookie and the token of its form.
struct PanelForm {
    cookie: String,
    csrf: String,
}

impl PanelForm {
    fn fetch(admin: &AdminService) -> PanelForm {
        let page = admin.get("/admin/sign-in").send().expect(200);
        let set_cookie = page.set_cookie("admin-sign-in");
        PanelForm {
            cookie: set_cookie.split(';').next().unwrap().to_string(),
            csrf: csrf_field(&page.body),
        }
    }

    fn sign_in(&self, admin: &AdminService, email: &str, password: &str) -> Reply {
        self.post(admin, email, password).send()
    }

    fn post<'a>(&self, admin: &'a AdminService, email: &str, password: &str) -> Call<'a> {
        let body = form_body(&[
            ("csrf", &self.csrf),
            ("email", email),
            ("password", password),
            ("next", "/admin"),
        ]);
        admin
            .post("/admin/sign-in")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .cookie(&self.cookie)
            .raw_body(&body)
    }
}

/// A signed-in panel session: its cookie and the CSRF token of its forms.
pub(crate) struct PanelSession {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

impl PanelSession {
    /// Signs in through the panel's form (with its login-CSRF cookie and token), password
    /// [`PASSWORD`].
    pub(crate) fn sign_in(admin: &AdminService, email: &str) -> PanelSession {
        let signed_in = PanelForm::fetch(admin)
            .sign_in(admin, email, PASSWORD)
            .expect(303);
        assert_eq!(signed_in.header("location"), Some("/admin"));
        let set_cookie = signed_in.set_cookie("admin-session");
        assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let dashboard = admin.get("/admin").cookie(&cookie).send().expect(200);
        PanelSession {
            csrf: csrf_field(&dashboard.body),
            cookie,
        }
    }

    pub(crate) fn get(&self, admin: &AdminService, path: &str) -> Reply {
        admin.get(path).cookie(&self.cookie).send()
    }

    /// A form of the panel's pages with `fields` and the session's CSRF token.
    pub(crate) fn submit(
        &self,
        admin: &AdminService,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Reply {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(admin, path, &form_body(&all))
    }

    /// A form post as the panel's pages make it (same origin), `body` as is.
    pub(crate) fn post(&self, admin: &AdminService, path: &str, body: &str) -> Reply {
        admin
            .post(path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Origin", &admin.base)
            .cookie(&self.cookie)
            .raw_body(body)
            .send()
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", form_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (byte as char).to_string()
            }
            b' ' => "+".to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
