//! Organizations (module `orgs`, docs/orgs.md), black box over HTTP on SQLite and PostgreSQL:
//! isolation between organizations endpoint by endpoint, invitations through a real SMTP server
//! (the one tests/e2e/email.rs starts), the rules that keep an owner, switching tokens, and the
//! personal organization of registration.

use serde_json::{Value, json};

use crate::api::{Api, Session, claims, on_each_database, register, str_of};
use crate::client::{Reply, at_once};
use crate::email::{Smtp, start, token_of, verify};
use crate::support::Database;

#[test]
fn another_organizations_anything_is_404_without_data_for_every_endpoint() {
    on_each_database(isolation);
}

#[test]
fn invitations_arrive_by_email_and_are_single_use_expiring_and_replaceable() {
    on_each_database(invitations);
}

#[test]
fn an_organization_always_keeps_an_owner_and_only_owners_make_owners() {
    on_each_database(owners);
}

#[test]
fn concurrent_self_demotions_of_the_last_two_owners_leave_one() {
    on_each_database(concurrent_demotions);
}

#[test]
fn a_switched_token_carries_the_organization_and_acts_in_it_only() {
    on_each_database(switch);
}

#[test]
fn registration_creates_a_personal_organization_unless_configured_off() {
    personal(&Database::sqlite());
}

#[test]
fn on_postgresql_the_app_role_works_under_row_level_security_and_raw_queries_see_no_other_tenant() {
    row_level_security(&Database::postgres());
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// Every org-scoped endpoint, with `{org}`, `{member}` and `{invitation}` filled in by the
/// caller, and the body it sends.
const ENDPOINTS: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/api/orgs/{org}", None),
    ("PATCH", "/api/orgs/{org}", Some(r#"{"name": "Stolen"}"#)),
    ("DELETE", "/api/orgs/{org}", None),
    ("GET", "/api/orgs/{org}/members", None),
    (
        "PATCH",
        "/api/orgs/{org}/members/{member}",
        Some(r#"{"role": "owner"}"#),
    ),
    ("DELETE", "/api/orgs/{org}/members/{member}", None),
    ("POST", "/api/orgs/{org}/leave", None),
    (
        "POST",
        "/api/orgs/{org}/transfer-ownership",
        Some(r#"{"user_id": "{member}"}"#),
    ),
    (
        "POST",
        "/api/orgs/{org}/invitations",
        Some(r#"{"email": "eve@example.com", "role": "owner"}"#),
    ),
    ("GET", "/api/orgs/{org}/invitations", None),
    ("DELETE", "/api/orgs/{org}/invitations/{invitation}", None),
    ("POST", "/api/orgs/{org}/switch", None),
];

fn isolation(db: &Database) {
    isolation_as(db, &[]);
}

/// The isolation scenario on an api started with `env` (another database role, on PostgreSQL).
fn isolation_as(db: &Database, env: &[(&str, &str)]) {
    let smtp = Smtp::start();
    let api = start(db, &smtp, env);
    // A: ada (owner), amy (member), a pending invitation; B: bob (owner), bea (member).
    let ada = verified(&api, &smtp, "ada@example.com");
    let a = create(&api, &ada, "Alpha Secret Works");
    let amy = join(&api, &smtp, &ada, &a, "amy@example.com", "member");
    let amy_id = user_id(&amy);
    let pending = invite(&api, &ada, &a, "ann@example.com", "member");
    let invitation = str_of(&pending["id"]).to_owned();
    let bob = verified(&api, &smtp, "bob@example.com");
    let b = create(&api, &bob, "Bravo");
    let bea = join(&api, &smtp, &bob, &b, "bea@example.com", "member");
    // carl was a member of A with a token switched to it, then removed.
    let carl = join(&api, &smtp, &ada, &a, "carl@example.com", "admin");
    let carl_switched = switched(&api, &carl.access, &a);
    api.delete(&format!("/api/orgs/{a}/members/{}", user_id(&carl)))
        .bearer(&ada.access)
        .send()
        .expect(204);
    // ada's token switched to her personal organization: she owns A, but this token is not A's.
    let personal = first_org_of_kind(&api, &ada.access, "personal");
    let ada_elsewhere = switched(&api, &ada.access, &personal);
    let bob_switched = switched(&api, &bob.access, &b);
    let guessed = "0192e0a0-0000-7000-8000-000000000000";

    // What nobody outside A may see, in any answer.
    let secrets = [
        a.as_str(),
        "Alpha Secret Works",
        "amy@example.com",
        amy_id.as_str(),
        invitation.as_str(),
        "ann@example.com",
    ];
    let outsiders = [
        ("a member of another organization", bob.access.as_str()),
        ("the other organization's member", bea.access.as_str()),
        ("a removed member", carl.access.as_str()),
        ("a removed member's switched token", carl_switched.as_str()),
        (
            "an owner's token switched elsewhere",
            ada_elsewhere.as_str(),
        ),
    ];
    for (who, token) in outsiders {
        for (method, path, body) in ENDPOINTS {
            let reply = call(&api, token, method, path, *body, &a, &amy_id, &invitation);
            assert_not_found(&reply, &secrets, &format!("{who}: {method} {path}"));
        }
    }
    // Guessed ids, and A's ids swapped into B's paths and bodies by B's own owner.
    for (method, path, body) in ENDPOINTS {
        let reply = call(
            &api,
            &ada.access,
            method,
            path,
            *body,
            guessed,
            &amy_id,
            &invitation,
        );
        assert_not_found(&reply, &secrets, &format!("guessed org: {method} {path}"));
        if path.contains("{member}")
            || path.contains("{invitation}")
            || body.is_some_and(|b| b.contains("{member}"))
        {
            for token in [&bob.access, &bob_switched] {
                let reply = call(&api, token, method, path, *body, &b, &amy_id, &invitation);
                assert_not_found(&reply, &secrets, &format!("swapped ids: {method} {path}"));
            }
        }
    }
    // B's listings show nothing of A's.
    for path in [
        "/api/orgs",
        "/api/orgs/{org}/members",
        "/api/orgs/{org}/invitations",
    ] {
        let path = path.replace("{org}", &b);
        let text = api.get(&path).bearer(&bob.access).send().expect(200).json();
        for secret in secrets {
            assert!(!text.to_string().contains(secret), "{path}: {text}");
        }
    }

    // A is as it was: nothing above changed it.
    let org = get(&api, &ada.access, &format!("/api/orgs/{a}")).expect_json(200);
    assert_eq!(org["name"], "Alpha Secret Works");
    let members = get(&api, &ada.access, &format!("/api/orgs/{a}/members")).expect_json(200);
    let emails: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| str_of(&m["email"]))
        .collect();
    assert_eq!(emails, ["ada@example.com", "amy@example.com"]);
    let invitations = get(&api, &ada.access, &format!("/api/orgs/{a}/invitations")).json();
    let pending: Vec<&Value> = invitations
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] == "pending")
        .collect();
    assert_eq!(pending.len(), 1, "{invitations}");
    assert_eq!(pending[0]["id"], invitation.as_str());
}

fn invitations(db: &Database) {
    let smtp = Smtp::start();
    let api = start(db, &smtp, &[]);
    let ada = verified(&api, &smtp, "ada@example.com");
    let acme = create(&api, &ada, "Acme");

    // The message, its link, and who may use it.
    let first = invite(&api, &ada, &acme, "Ben@Example.com", "member");
    assert_eq!(first["email"], "ben@example.com");
    assert_eq!(first["state"], "pending");
    assert!(first.get("token").is_none() && first.get("token_hash").is_none());
    let message = smtp.wait_for("ben@example.com", "invited you to Acme");
    let link = crate::email::link_of(&message);
    assert!(
        link.starts_with("http://localhost:3000/accept-invitation?token="),
        "{link}"
    );
    let first_token = token_of(&message);
    let eve = verified(&api, &smtp, "eve@example.com");
    accept(&api, &eve.access, &first_token).expect_error(403, "invitation_for_another_address");
    let ben = register(&api, "ben@example.com");
    accept(&api, &ben.access, &first_token).expect_error(403, "email_unverified");
    let verification = smtp.wait_for("ben@example.com", "Confirm your email address");
    verify(&api, &token_of(&verification)).expect(204);

    // Inviting again replaces the invitation: the first link stops working.
    invite(&api, &ada, &acme, "ben@example.com", "admin");
    let second = smtp.wait_for_nth("ben@example.com", "invited you to Acme", 2);
    accept(&api, &ben.access, &first_token).expect_error(400, "invalid_invitation");
    let joined = accept(&api, &ben.access, &token_of(&second)).expect_json(200);
    assert_eq!(joined["id"], acme.as_str());
    assert_eq!(joined["role"], "admin");
    // Single use.
    accept(&api, &ben.access, &token_of(&second)).expect_error(400, "invalid_invitation");
    let states: Vec<String> = get(&api, &ada.access, &format!("/api/orgs/{acme}/invitations"))
        .expect_json(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|i| str_of(&i["state"]).to_owned())
        .collect();
    assert_eq!(states, ["accepted", "revoked"]);

    // A member is not invited again; an admin invites, but not owners; a member does not invite.
    invite_reply(&api, &ada.access, &acme, "ben@example.com", "member").expect(409);
    invite_reply(&api, &ben.access, &acme, "cid@example.com", "owner")
        .expect_error(403, "role_forbids");
    let revoked = invite(&api, &ben, &acme, "cid@example.com", "member");
    let cid_message = smtp.wait_for("cid@example.com", "invited you to Acme");
    let amy = join(&api, &smtp, &ada, &acme, "amy@example.com", "member");
    invite_reply(&api, &amy.access, &acme, "dan@example.com", "member")
        .expect_error(403, "role_forbids");

    // Revoked, then expired: the links stop working.
    let revoke_path = format!("/api/orgs/{acme}/invitations/{}", str_of(&revoked["id"]));
    api.delete(&revoke_path)
        .bearer(&ben.access)
        .send()
        .expect(204);
    api.delete(&revoke_path)
        .bearer(&ben.access)
        .send()
        .expect(404);
    let cid = verified(&api, &smtp, "cid@example.com");
    accept(&api, &cid.access, &token_of(&cid_message)).expect_error(400, "invalid_invitation");
    invite(&api, &ada, &acme, "cid@example.com", "member");
    let expiring = smtp.wait_for_nth("cid@example.com", "invited you to Acme", 2);
    db.execute("UPDATE invitations SET expires_at = 1 WHERE email = 'cid@example.com' AND state = 'pending'");
    accept(&api, &cid.access, &token_of(&expiring)).expect_error(400, "invalid_invitation");
    let listed = get(&api, &ada.access, &format!("/api/orgs/{acme}/invitations")).json();
    assert_eq!(listed[0]["email"], "cid@example.com");
    assert_eq!(listed[0]["state"], "expired");
}

fn owners(db: &Database) {
    let smtp = Smtp::start();
    let api = start(db, &smtp, &[]);
    let ada = verified(&api, &smtp, "ada@example.com");
    let acme = create(&api, &ada, "Acme");
    let ada_id = user_id(&ada);
    let ben = join(&api, &smtp, &ada, &acme, "ben@example.com", "admin");
    let ben_id = user_id(&ben);
    let amy = join(&api, &smtp, &ada, &acme, "amy@example.com", "member");
    let amy_id = user_id(&amy);

    // The last owner neither leaves, nor demotes or removes themselves.
    leave(&api, &ada.access, &acme).expect_error(409, "conflict");
    set_role(&api, &ada.access, &acme, &ada_id, "admin").expect_error(409, "conflict");
    remove(&api, &ada.access, &acme, &ada_id).expect_error(409, "conflict");
    // Admins manage members but not owners, and cannot make one.
    set_role(&api, &ben.access, &acme, &ada_id, "member").expect_error(403, "role_forbids");
    remove(&api, &ben.access, &acme, &ada_id).expect_error(403, "role_forbids");
    set_role(&api, &ben.access, &acme, &ben_id, "owner").expect_error(403, "role_forbids");
    set_role(&api, &ben.access, &acme, &amy_id, "owner").expect_error(403, "role_forbids");
    let amy_admin = set_role(&api, &ben.access, &acme, &amy_id, "admin").expect_json(200);
    assert_eq!(amy_admin["role"], "admin");
    set_role(&api, &ben.access, &acme, &amy_id, "member").expect(200);
    // Members manage nothing; unknown roles are refused.
    set_role(&api, &amy.access, &acme, &ben_id, "member").expect_error(403, "role_forbids");
    set_role(&api, &ada.access, &acme, &amy_id, "root").check(400);
    // Renaming: owners and admins; deleting: owners.
    let path = format!("/api/orgs/{acme}");
    let body = json!({"name": "Acme Inc"});
    api.call("PATCH", &path)
        .bearer(&amy.access)
        .json(body.clone())
        .send()
        .expect_error(403, "role_forbids");
    let renamed = api
        .call("PATCH", &path)
        .bearer(&ben.access)
        .json(body)
        .send()
        .expect_json(200);
    assert_eq!(renamed["name"], "Acme Inc");
    api.delete(&path)
        .bearer(&ben.access)
        .send()
        .expect_error(403, "role_forbids");

    // Ownership transfer: ben becomes the owner, ada an admin, in one step.
    let transferred = api
        .post(&format!("/api/orgs/{acme}/transfer-ownership"))
        .bearer(&ada.access)
        .json(json!({ "user_id": ben_id }))
        .send()
        .expect_json(200);
    assert_eq!(transferred[0]["role"], "owner");
    assert_eq!(transferred[1]["role"], "admin");
    leave(&api, &ben.access, &acme).expect_error(409, "conflict");
    // Two owners: one may go.
    set_role(&api, &ben.access, &acme, &ada_id, "owner").expect(200);
    leave(&api, &ben.access, &acme).expect(204);
    get(&api, &ben.access, &path).expect_error(404, "not_found");
    // Removing members; the owner deletes the organization and everyone loses it.
    remove(&api, &ada.access, &acme, &amy_id).expect(204);
    get(&api, &amy.access, &path).expect_error(404, "not_found");
    api.delete(&path).bearer(&ada.access).send().expect(204);
    get(&api, &ada.access, &path).expect_error(404, "not_found");
    let mine = get(&api, &ada.access, "/api/orgs").expect_json(200);
    assert!(!mine.to_string().contains(&acme), "{mine}");
}

fn concurrent_demotions(db: &Database) {
    let smtp = Smtp::start();
    let api = start(db, &smtp, &[]);
    let ada = verified(&api, &smtp, "ada@example.com");
    let acme = create(&api, &ada, "Acme");
    let ben = join(&api, &smtp, &ada, &acme, "ben@example.com", "owner");
    let pairs = [(&ada, user_id(&ada)), (&ben, user_id(&ben))];
    for round in 0..5 {
        let replies = at_once(2, |n| {
            let (session, id) = &pairs[n];
            set_role(&api, &session.access, &acme, id, "admin")
        });
        let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");
        let members = get(&api, &ada.access, &format!("/api/orgs/{acme}/members")).expect_json(200);
        let owners: Vec<&Value> = members
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "owner")
            .collect();
        assert_eq!(owners.len(), 1, "round {round}: {members}");
        // The remaining owner makes the other one an owner again.
        let owner = if owners[0]["email"] == "ada@example.com" {
            &ada
        } else {
            &ben
        };
        let demoted = if owners[0]["email"] == "ada@example.com" {
            &pairs[1].1
        } else {
            &pairs[0].1
        };
        set_role(&api, &owner.access, &acme, demoted, "owner").expect(200);
    }
}

fn switch(db: &Database) {
    let smtp = Smtp::start();
    let api = start(db, &smtp, &[]);
    let ada = verified(&api, &smtp, "ada@example.com");
    let acme = create(&api, &ada, "Acme");
    let personal = first_org_of_kind(&api, &ada.access, "personal");

    let reply = api
        .post(&format!("/api/orgs/{acme}/switch"))
        .bearer(&ada.access)
        .send()
        .expect_json(200);
    assert_eq!(reply["org_id"], acme.as_str());
    assert_eq!(reply["role"], "owner");
    assert_eq!(reply["token_type"], "bearer");
    let token = str_of(&reply["access_token"]).to_owned();
    let claims = claims(&token);
    assert_eq!(claims["org_id"], acme.as_str());
    assert_eq!(claims["org_role"], "owner");
    assert_eq!(claims["sub"], str_of(&ada.user["id"]));
    // It acts in its organization, and as the user elsewhere, but not in another organization.
    get(&api, &token, &format!("/api/orgs/{acme}")).expect(200);
    get(&api, &token, "/api/auth/me").expect(200);
    get(&api, &token, &format!("/api/orgs/{personal}")).expect_error(404, "not_found");
    // Tokens without an organization keep working everywhere.
    assert!(crate::api::claims(&ada.access).get("org_id").is_none());
    get(&api, &ada.access, &format!("/api/orgs/{personal}")).expect(200);
    get(&api, &ada.access, &format!("/api/orgs/{acme}")).expect(200);
    // Logging out ends the switched token too: it lives in the same session.
    api.post("/api/auth/logout")
        .bearer(&ada.access)
        .send()
        .expect(204);
    get(&api, &token, &format!("/api/orgs/{acme}")).expect(401);
}

fn row_level_security(db: &Database) {
    // The owner (the test's superuser) migrates; the api then connects as a role that neither is
    // a superuser nor bypasses row-level security, with the privileges docs/orgs.md grants.
    {
        let smtp = Smtp::start();
        let _migrated = start(db, &smtp, &[]);
    }
    let role = AppRole::create(db);
    let url = role.url(db);
    isolation_as(
        db,
        &[
            ("DATABASE_URL", &url),
            ("DATABASE_MIGRATE_ON_START", "false"),
        ],
    );

    // Past the application: the app's role on a raw connection sees a tenant's rows only with
    // that tenant named, and writes none into another one.
    let org = |name: &str| {
        db.query_value(&format!(
            "SELECT id FROM organizations WHERE name = '{name}'"
        ))
    };
    let (a, b) = (org("Alpha Secret Works"), org("Bravo"));
    let count = |as_role: bool, setting: &str, value: &str, table: &str| {
        let prefix = if as_role {
            format!("SET ROLE {};", role.name)
        } else {
            String::new()
        };
        db.query_value(&format!(
            "{prefix} SET LOCAL {setting} = '{value}'; \
             SELECT count(*) FROM {table} WHERE org_id = '{a}'"
        ))
    };
    for table in ["memberships", "invitations"] {
        assert_eq!(
            count(true, "app.org_id", &b, table),
            "0",
            "{table} with B named"
        );
        assert_eq!(
            count(true, "app.org_id", "", table),
            "0",
            "{table} with no tenant named"
        );
        assert_ne!(
            count(true, "app.org_id", &a, table),
            "0",
            "{table} with A named"
        );
        // The superuser bypasses the policies: why the services must not connect as one.
        assert_ne!(
            count(false, "app.org_id", &b, table),
            "0",
            "{table} as superuser"
        );
    }
    // A user named sees their own memberships only.
    let ada = db.query_value("SELECT id FROM users WHERE email = 'ada@example.com'");
    let bob = db.query_value("SELECT id FROM users WHERE email = 'bob@example.com'");
    assert_eq!(count(true, "app.user_id", &bob, "memberships"), "0");
    assert_eq!(count(true, "app.user_id", &ada, "memberships"), "1");
    // The membership check's function (migration `orgs_membership_function`), as the app's
    // role: a member's organization with their role, nothing for anyone else; the user it names
    // for the policy ends with the statement's transaction, so the connection's next statement
    // sees no membership. Without the commit, still in the transaction, the setting is there: what
    // the last check would catch if the function's setting were not local.
    let check = |org: &str, user: &str| {
        db.query_value(&format!(
            "SET ROLE {}; SELECT role || ' ' || name FROM org_membership('{org}', '{user}')",
            role.name
        ))
    };
    assert_eq!(check(&a, &ada), "owner Alpha Secret Works");
    assert_eq!(check(&a, &bob), "");
    assert_eq!(check(&b, &ada), "");
    let after = |end: &str| {
        db.query_value(&format!(
            "SET ROLE {}; DO $$ BEGIN PERFORM * FROM org_membership('{a}', '{ada}'); END $$; \
             {end} SELECT coalesce(current_setting('app.user_id', true), '') || ' ' || \
             (SELECT count(*) FROM memberships WHERE org_id = '{a}')",
            role.name
        ))
    };
    assert_eq!(after(""), format!("{ada} 1"), "within the transaction");
    assert_eq!(after("COMMIT;"), " 0", "after it");
    let forged = db.try_execute(&format!(
        "SET ROLE {}; SET LOCAL app.org_id = '{b}'; \
         INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) \
         VALUES ('{a}', '{bob}', 'owner', 0, 0)",
        role.name
    ));
    let error = forged.expect_err("a row of A written with B named");
    assert!(error.contains("row-level security"), "{error}");
}

/// A login role for the services that is not a superuser and does not bypass row-level
/// security, with the privileges docs/orgs.md grants; dropped with its privileges afterwards.
struct AppRole<'db> {
    name: String,
    db: &'db Database,
}

impl<'db> AppRole<'db> {
    fn create(db: &'db Database) -> AppRole<'db> {
        let database = db.url().rsplit('/').next().unwrap().to_owned();
        let name = format!("{database}_app");
        db.execute(&format!(
            "DROP ROLE IF EXISTS {name}; \
             CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS; \
             GRANT USAGE ON SCHEMA public TO {name}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}; \
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {name}"
        ));
        AppRole { name, db }
    }

    fn url(&self, db: &Database) -> String {
        db.url()
            .replacen("postgres@", &format!("{}@", self.name), 1)
    }
}

impl Drop for AppRole<'_> {
    fn drop(&mut self) {
        let name = &self.name;
        let _ = self
            .db
            .try_execute(&format!("DROP OWNED BY {name}; DROP ROLE IF EXISTS {name}"));
    }
}

fn personal(db: &Database) {
    {
        let api = Api::start(db, &[]);
        let ada = register(&api, "ada@example.com");
        let mine = get(&api, &ada.access, "/api/orgs").expect_json(200);
        assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
        assert_eq!(mine[0]["kind"], "personal");
        assert_eq!(mine[0]["role"], "owner");
        assert_eq!(mine[0]["slug"], "ada");
        // Another "ada" gets a slug of her own.
        let other = register(&api, "ada@elsewhere.example");
        let theirs = get(&api, &other.access, "/api/orgs").expect_json(200);
        assert_ne!(theirs[0]["slug"], "ada");
        assert!(str_of(&theirs[0]["slug"]).starts_with("ada-"), "{theirs}");
    }
    let api = Api::start(db, &[("ORGS_PERSONAL_ORGANIZATION", "false")]);
    let bob = register(&api, "bob@example.com");
    let mine = get(&api, &bob.access, "/api/orgs").expect_json(200);
    assert_eq!(mine, json!([]));
    // A slug given is checked, and unique.
    let create = |body: Value| api.post("/api/orgs").bearer(&bob.access).json(body).send();
    create(json!({"name": "  "})).check_error(422, "validation_failed");
    create(json!({"name": "Bob", "slug": "Not A Slug"})).check_error(422, "validation_failed");
    let made = create(json!({"name": "Bob", "slug": "bobs"})).expect_json(201);
    assert_eq!(made["slug"], "bobs");
    assert_eq!(made["kind"], "team");
    create(json!({"name": "Other", "slug": "bobs"})).expect_error(409, "conflict");
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A registered account whose address is verified (through the link sent to it).
pub(crate) fn verified(api: &Api, smtp: &Smtp, email: &str) -> Session {
    let session = register(api, email);
    let message = smtp.wait_for(email, "Confirm your email address");
    verify(api, &token_of(&message)).expect(204);
    session
}

pub(crate) fn user_id(session: &Session) -> String {
    str_of(&session.user["id"]).to_owned()
}

/// Creates an organization named `name`; its id.
pub(crate) fn create(api: &Api, owner: &Session, name: &str) -> String {
    let org = api
        .post("/api/orgs")
        .bearer(&owner.access)
        .json(json!({ "name": name }))
        .send()
        .expect_json(201);
    assert_eq!(org["role"], "owner");
    str_of(&org["id"]).to_owned()
}

fn invite_reply(api: &Api, access: &str, org: &str, email: &str, role: &str) -> Reply {
    api.post(&format!("/api/orgs/{org}/invitations"))
        .bearer(access)
        .json(json!({"email": email, "role": role}))
        .send()
}

fn invite(api: &Api, by: &Session, org: &str, email: &str, role: &str) -> Value {
    invite_reply(api, &by.access, org, email, role).expect_json(201)
}

fn accept(api: &Api, access: &str, token: &str) -> Reply {
    api.post("/api/invitations/accept")
        .bearer(access)
        .json(json!({ "token": token }))
        .send()
}

/// A new verified account that joined `org` with `role` through an invitation by `by`.
pub(crate) fn join(
    api: &Api,
    smtp: &Smtp,
    by: &Session,
    org: &str,
    email: &str,
    role: &str,
) -> Session {
    let session = verified(api, smtp, email);
    invite(api, by, org, email, role);
    let message = smtp.wait_for(email, "invited you to");
    let joined = accept(api, &session.access, &token_of(&message)).expect_json(200);
    assert_eq!(joined["role"], role);
    session
}

/// An access token of `access`'s session switched to `org`.
pub(crate) fn switched(api: &Api, access: &str, org: &str) -> String {
    let reply = api
        .post(&format!("/api/orgs/{org}/switch"))
        .bearer(access)
        .send()
        .expect_json(200);
    str_of(&reply["access_token"]).to_owned()
}

pub(crate) fn first_org_of_kind(api: &Api, access: &str, kind: &str) -> String {
    let mine = get(api, access, "/api/orgs").expect_json(200);
    let org = mine
        .as_array()
        .unwrap()
        .iter()
        .find(|org| org["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} organization in {mine}"));
    str_of(&org["id"]).to_owned()
}

fn get(api: &Api, access: &str, path: &str) -> Reply {
    api.get(path).bearer(access).send()
}

fn set_role(api: &Api, access: &str, org: &str, user: &str, role: &str) -> Reply {
    api.call("PATCH", &format!("/api/orgs/{org}/members/{user}"))
        .bearer(access)
        .json(json!({ "role": role }))
        .send()
}

pub(crate) fn remove(api: &Api, access: &str, org: &str, user: &str) -> Reply {
    api.delete(&format!("/api/orgs/{org}/members/{user}"))
        .bearer(access)
        .send()
}

fn leave(api: &Api, access: &str, org: &str) -> Reply {
    api.post(&format!("/api/orgs/{org}/leave"))
        .bearer(access)
        .send()
}

/// One row of [`ENDPOINTS`] with its placeholders filled in.
#[allow(clippy::too_many_arguments)]
fn call(
    api: &Api,
    token: &str,
    method: &'static str,
    path: &str,
    body: Option<&str>,
    org: &str,
    member: &str,
    invitation: &str,
) -> Reply {
    let fill = |text: &str| {
        text.replace("{org}", org)
            .replace("{member}", member)
            .replace("{invitation}", invitation)
    };
    let call = api.call(method, &fill(path)).bearer(token);
    match body {
        Some(body) => call.json(serde_json::from_str(&fill(body)).unwrap()).send(),
        None => call.send(),
    }
}

/// 404 `not_found`, and none of `secrets` anywhere in the answer.
pub(crate) fn assert_not_found(reply: &Reply, secrets: &[&str], what: &str) {
    reply.check_error(404, "not_found");
    let text = reply.json().to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{what}: {secret} in {text}");
    }
}
