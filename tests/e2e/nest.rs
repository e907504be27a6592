//! The NestJS service (docs/nest.md), black box: a workspace generated with it, its
//! dependencies installed with `npm ci` from the committed lockfile, linted, built and tested
//! (its own Vitest suite, with a token and JWKS the Rust api minted here), then run beside the
//! api and the admin service of the default workspace, on SQLite and on PostgreSQL.
//!
//! The Rust services are the default workspace's binaries: the api and admin code of a
//! workspace with the nest service is the same, and they would be built again for nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::admin::{Stack, start_impersonation};
use crate::api::{
    Api, KEY, NEW_PASSWORD, PASSWORD, UNKNOWN_KEY, WORKSPACE, b64, claims, decode, forge, key_id,
    login_as, now, on_each_database, public_key, register, signing_key, str_of, unb64,
};
use crate::client::Instance;
use crate::orgs::{first_org_of_kind, switched};
use crate::support::{
    Database, Service, default_workspace, free_port, fresh_workspace, service_binary,
};

/// The name of the service in the generated workspace (its directory is `services/<name>`).
const NEST: &str = "nest";

#[test]
fn the_nest_service_trusts_the_api_accounts_and_nothing_else() {
    // Installed and built before the stack starts: staff sessions end after 5 idle minutes.
    workspace();
    on_each_database(|db| {
        let s = Stack::start(db);
        let nest = Nest::start(db, &s.api);
        accepts_the_api_tokens(&s, &nest);
        refuses_forged_and_foreign_tokens(&s, &nest);
        ended_sessions_end_at_once(&s, &nest);
        notes_are_each_user_own(&s, &nest);
        notes_belong_to_the_active_organization(&s, &nest);
        drop(nest);
        stops_gracefully(db, &s.api);
    });
}

/// The api and two instances of the nest service started at the same moment on an empty
/// database, a few times: every one comes up (the service waits for the api's migrations under
/// sqlx's lock on PostgreSQL, then the instances take turns), and each of its migrations is
/// applied once. Before the lock, an instance stopped with "the shared tables are missing" or
/// failed on a migration the other had just applied.
#[test]
fn the_api_and_two_nest_instances_started_at_once_all_come_up() {
    let root = workspace();
    default_workspace();
    let migrations = std::fs::read_dir(root.join("services").join(NEST).join("migrations/sqlite"))
        .unwrap()
        .count();
    let fresh: [fn() -> Database; 2] = [Database::sqlite, Database::postgres];
    for (round, database) in fresh.iter().cycle().take(4).enumerate() {
        // A database of its own each round: the race is on an empty one.
        let db = database();
        let port = free_port();
        let (api, instances) = std::thread::scope(|scope| {
            let instances: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| Nest::spawn(&db, port, &[])))
                .collect();
            let api = start_api_in(root, &db, port);
            let instances: Vec<Service> =
                instances.into_iter().map(|i| i.join().unwrap()).collect();
            (api, instances)
        });
        for instance in &instances {
            let ready = crate::support::get(instance.port, "/readyz").map(|(status, _)| status);
            assert_eq!(ready, Some(200), "round {round} on {}: /readyz", db.kind());
        }
        assert_eq!(
            db.query_value("SELECT COUNT(*) FROM nest_migrations"),
            migrations.to_string(),
            "round {round} on {}: each migration once\n{}",
            db.kind(),
            instances
                .iter()
                .map(Service::logs)
                .collect::<Vec<_>>()
                .join("\n")
        );
        drop(instances);
        drop(api);
    }
}

#[test]
fn its_own_tests_pass_against_a_token_and_jwks_of_the_rust_api() {
    let db = Database::sqlite();
    let api = Api::start(&db, &[]);
    let ada = register(&api, "ada@example.com");
    let jwks = api.get("/.well-known/jwks.json").send().expect_json(200);
    let claims = claims(&ada.access);
    let fixture = json!({
        "jwks": jwks,
        "access_token": ada.access,
        "issuer": claims["iss"],
        "audience": claims["aud"],
        "user_id": ada.user["id"],
        "minted_at": claims["iat"],
    });
    let service = workspace().join("services").join(NEST);
    std::fs::write(
        service.join("test/fixtures/api-token.json"),
        serde_json::to_string_pretty(&fixture).unwrap() + "\n",
    )
    .unwrap();
    npm(&service, &["test"]);
}

#[test]
fn a_key_rotation_needs_no_restart_of_the_nest_service() {
    let db = Database::sqlite();
    let root = workspace();
    // The api of the nest workspace, reading the signing key from that workspace's `.env`, on a
    // port that stays the same across its restart (the nest service knows it by its JWKS URL).
    let port = free_port();
    let api = start_api_in(root, &db, port);
    let nest = Nest::start_with(&db, port, &[]);
    let before = register(&api, "ada@example.com");
    nest.me(&before.access).expect(200);
    let old_kid = decode(&before.access).0["kid"].clone();

    let output = crate::common::saaskit(root)
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    drop(api);
    let api = start_api_in(root, &db, port);

    let after = login_as(&api, "ada@example.com", PASSWORD);
    assert_ne!(decode(&after.access).0["kid"], old_kid, "a new key signs");
    // The nest service has never seen the new key: it fetches the JWKS again. It fetches it at
    // most once per 5 s (docs/nest.md), and its first fetch may be more recent than that.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = nest.me(&after.access);
        if reply.status == 200 {
            break;
        }
        reply.check_error(401, "unauthorized");
        assert!(
            Instant::now() < deadline,
            "the new key is still unknown: {reply}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The old key is among the previous keys: its tokens keep working until they expire.
    nest.me(&before.access).expect(200);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn accepts_the_api_tokens(s: &Stack, nest: &Nest) {
    let me = nest.me(&s.customer.access).expect_json(200);
    let at_api = s
        .api
        .get("/api/auth/me")
        .bearer(&s.customer.access)
        .send()
        .expect_json(200);
    assert_eq!(me, at_api, "the same user as the api shows");

    // An impersonation's token names the staff member, as at the api.
    let id = s.customer_id();
    let impersonation = start_impersonation(s, &s.support, &id);
    let me = nest.me(&impersonation).expect_json(200);
    assert_eq!(me["id"], json!(id));
    assert_eq!(me["impersonated_by"]["email"], "support@example.com");

    // Readiness names the database; the request id comes back.
    nest.instance
        .get("/readyz")
        .header("X-Request-Id", "req-42")
        .send()
        .expect(200)
        .header("X-Request-Id")
        .filter(|id| *id == "req-42")
        .expect("the request id is sent back");
    let openapi = nest.instance.get("/openapi.json").send().expect_json(200);
    assert!(
        openapi["paths"]["/api/nest/notes/{id}"].is_object(),
        "{openapi}"
    );
}

fn refuses_forged_and_foreign_tokens(s: &Stack, nest: &Nest) {
    let token = &s.customer.access;
    let (header, claims) = decode(token);
    let key = signing_key(KEY);
    let with_claims = |changes: Value| {
        let mut claims = claims.clone();
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        forge(&header, &claims, &key)
    };
    // The forging is right: the same claims, signed again with the api's key, are accepted.
    nest.me(&forge(&header, &claims, &key)).expect(200);

    let parts: Vec<&str> = token.split('.').collect();
    let (head, payload, signature) = (parts[0], parts[1], parts[2]);
    let encode = |value: &Value| b64(value.to_string().as_bytes());
    let kid = &header["kid"];
    let hs256_head = encode(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}));
    // HS256 keyed with the public key anyone can read from the JWKS: the classic confusion.
    let hs256_signed = format!("{hs256_head}.{payload}");
    let hs256 = format!(
        "{hs256_signed}.{}",
        b64(&hmac_sha256(
            &unb64(&public_key(KEY)),
            hs256_signed.as_bytes()
        ))
    );
    let mut flipped = unb64(signature);
    flipped[10] ^= 1;
    let unknown_kid =
        json!({"alg": "EdDSA", "typ": "JWT", "kid": key_id(&public_key(UNKNOWN_KEY))});
    let mut other_claims = claims.clone();
    other_claims["sub"] = json!("0193b3c4-0000-7000-8000-000000000000");
    let staff_token = &s.root.access;
    let refused = [
        (
            "alg none",
            format!("{}.{payload}.", encode(&json!({"alg": "none"}))),
        ),
        ("alg HS256 keyed with the public key", hs256),
        (
            "signature changed",
            format!("{head}.{payload}.{}", b64(&flipped)),
        ),
        (
            "payload tampered",
            format!("{head}.{}.{signature}", encode(&other_claims)),
        ),
        (
            "unknown kid",
            forge(&unknown_kid, &claims, &signing_key(UNKNOWN_KEY)),
        ),
        (
            "another audience",
            with_claims(json!({"aud": "another-api"})),
        ),
        (
            "a staff token (the back office's audience)",
            staff_token.clone(),
        ),
        (
            "another issuer",
            with_claims(json!({"iss": "someone-else"})),
        ),
        ("expired", with_claims(json!({"exp": now() - 120}))),
        (
            "not an access token",
            with_claims(json!({"typ": "refresh"})),
        ),
        ("not a token", "garbage".to_string()),
    ];
    for (what, token) in refused {
        let reply = nest.me(&token);
        assert_eq!(reply.status, 401, "{what}: {reply}");
        reply.check_error(401, "unauthorized");
    }
    // No credential, and the api's session cookie (this service does not take cookies).
    nest.instance
        .get("/api/nest/me")
        .send()
        .expect_error(401, "unauthorized");
    nest.instance
        .get("/api/nest/me")
        .cookie(s.customer.cookie_pair())
        .send()
        .expect_error(401, "unauthorized");
}

fn ended_sessions_end_at_once(s: &Stack, nest: &Nest) {
    // Logout.
    let leaving = register(&s.api, "leaving@example.com");
    nest.me(&leaving.access).expect(200);
    s.api
        .post("/api/auth/logout")
        .bearer(&leaving.access)
        .send()
        .expect(204);
    nest.me(&leaving.access).expect_error(401, "unauthorized");

    // A password change ends the account's other sessions.
    let here = register(&s.api, "moving@example.com");
    let there = login_as(&s.api, "moving@example.com", PASSWORD);
    nest.me(&there.access).expect(200);
    s.api
        .post("/api/auth/password")
        .bearer(&here.access)
        .json(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .expect(204);
    nest.me(&there.access).expect_error(401, "unauthorized");
    nest.me(&here.access).expect(200);

    // An admin disables the account.
    let fraud = register(&s.api, "fraud@example.com");
    nest.me(&fraud.access).expect(200);
    let id = str_of(&fraud.user["id"]).to_string();
    s.admin
        .post(&format!("/api/admin/users/{id}/disable"))
        .bearer(&s.root.access)
        .json(json!({"reason": "chargeback fraud"}))
        .send()
        .expect(200);
    nest.me(&fraud.access).expect_error(401, "unauthorized");
}

fn notes_are_each_user_own(s: &Stack, nest: &Nest) {
    let ada = register(&s.api, "ada.notes@example.com");
    let bob = register(&s.api, "bob.notes@example.com");
    let note = nest
        .instance
        .post("/api/nest/notes")
        .bearer(&ada.access)
        .json(json!({"title": "Plans", "body": "Take over the world"}))
        .send()
        .expect_json(201);
    let id = str_of(&note["id"]).to_string();
    let path = format!("/api/nest/notes/{id}");
    assert_eq!(
        nest.instance
            .get(&path)
            .bearer(&ada.access)
            .send()
            .expect_json(200),
        note
    );
    let listed = nest
        .instance
        .get("/api/nest/notes")
        .bearer(&bob.access)
        .send()
        .expect_json(200);
    assert_eq!(listed, json!({"notes": []}));
    nest.instance
        .get(&path)
        .bearer(&bob.access)
        .send()
        .expect_error(404, "not_found");
    nest.instance
        .put(&path)
        .bearer(&bob.access)
        .json(json!({"title": "Mine now", "body": ""}))
        .send()
        .expect_error(404, "not_found");
    nest.instance
        .delete(&path)
        .bearer(&bob.access)
        .send()
        .expect_error(404, "not_found");
    let invalid = nest
        .instance
        .post("/api/nest/notes")
        .bearer(&ada.access)
        .json(json!({"title": ""}))
        .send()
        .expect_error(422, "validation_failed");
    assert_eq!(
        invalid["fields"],
        json!({"title": "must not be empty", "body": "must be a string"})
    );
    nest.instance
        .delete(&path)
        .bearer(&ada.access)
        .send()
        .expect(204);
}

/// With the orgs module (installed on the service by default): a token switched to an
/// organization reads and writes that organization's notes; a member of another organization,
/// switched to theirs or not, gets 404 for them and lists none.
fn notes_belong_to_the_active_organization(s: &Stack, nest: &Nest) {
    let ada = register(&s.api, "ada.orgs@example.com");
    let bob = register(&s.api, "bob.orgs@example.com");
    // Registration made each a personal organization (ORGS_PERSONAL_ORGANIZATION).
    let org_a = first_org_of_kind(&s.api, &ada.access, "personal");
    let org_b = first_org_of_kind(&s.api, &bob.access, "personal");
    let ada_in_a = switched(&s.api, &ada.access, &org_a);
    let bob_in_b = switched(&s.api, &bob.access, &org_b);

    let note = nest
        .instance
        .post("/api/nest/notes")
        .bearer(&ada_in_a)
        .json(json!({"title": "A's roadmap", "body": "Q3: ship"}))
        .send()
        .expect_json(201);
    let path = format!("/api/nest/notes/{}", str_of(&note["id"]));
    let list = |token: &str| {
        nest.instance
            .get("/api/nest/notes")
            .bearer(token)
            .send()
            .expect_json(200)
    };
    assert_eq!(list(&ada_in_a), json!({"notes": [note]}));
    // Ada's token switched to no organization: her own notes, not A's.
    assert_eq!(list(&ada.access), json!({"notes": []}));
    for token in [&bob_in_b, &bob.access] {
        assert_eq!(list(token), json!({"notes": []}));
        nest.instance
            .get(&path)
            .bearer(token)
            .send()
            .expect_error(404, "not_found");
        nest.instance
            .put(&path)
            .bearer(token)
            .json(json!({"title": "Mine now", "body": ""}))
            .send()
            .expect_error(404, "not_found");
        nest.instance
            .delete(&path)
            .bearer(token)
            .send()
            .expect_error(404, "not_found");
    }
    // Bob's token naming A, signed with the api's key as a switch would: the membership is
    // checked in the database, and he is not A's member.
    let (header, mut claims) = decode(&bob_in_b);
    claims["org_id"] = json!(org_a);
    let bob_claiming_a = forge(&header, &claims, &signing_key(KEY));
    let refused = nest
        .instance
        .get("/api/nest/notes")
        .bearer(&bob_claiming_a)
        .send()
        .expect_error(404, "not_found");
    assert_eq!(refused["message"], "organization not found");
    nest.instance
        .get(&path)
        .bearer(&bob_claiming_a)
        .send()
        .expect_error(404, "not_found");
    // The note is as ada left it.
    nest.instance
        .get(&path)
        .bearer(&ada_in_a)
        .send()
        .expect(200);
    assert_eq!(list(&ada_in_a), json!({"notes": [note]}));
}

fn stops_gracefully(db: &Database, api: &Api) {
    let (status, logs) = Nest::spawn(db, api_port(api), &default_workspace_claims()).terminate();
    assert!(status.success(), "exit status {status} on SIGTERM:\n{logs}");
}

// ---------------------------------------------------------------------------------------------
// The workspace and the service

/// The workspace with the nest service, generated, installed, linted and built once.
fn workspace() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = fresh_workspace(
            "polyglot",
            &["--yes", "--services", "api,admin,webhooks,nest"],
        );
        let service = root.join("services").join(NEST);
        npm(&service, &["ci"]);
        npm(&service, &["run", "lint"]);
        npm(&service, &["run", "build"]);
        root
    })
    .as_path()
}

/// Runs npm with `args` in `dir`; panics with its output when it fails.
fn npm(dir: &Path, args: &[&str]) {
    let output = Command::new("npm")
        .args(args)
        .current_dir(dir)
        // better-sqlite3 compiles against the headers of the installed Node rather than
        // downloading them (docs/nest.md); .ci/run sets where they are.
        .env(
            "npm_config_nodedir",
            std::env::var("npm_config_nodedir").unwrap_or_else(|_| "/usr".to_string()),
        )
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false")
        .stdin(Stdio::null())
        .output()
        .expect("npm runs");
    assert!(
        output.status.success(),
        "`npm {}` failed in {}:\n{}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The nest service running on a database, with an HTTP client for it.
struct Nest<'db> {
    instance: Instance<'db>,
}

impl<'db> Nest<'db> {
    /// The service on `db`, trusting the keys of `api`, an api of the default workspace.
    fn start(db: &'db Database, api: &Api) -> Nest<'db> {
        Nest::start_with(db, api_port(api), &default_workspace_claims())
    }

    /// The service on `db`, trusting the keys of the api on `api_port`, with `env` over its
    /// workspace's `.env`.
    fn start_with(db: &'db Database, api_port: u16, env: &[(&str, &str)]) -> Nest<'db> {
        Nest {
            instance: Instance::with(NEST, db, Nest::spawn(db, api_port, env)),
        }
    }

    /// The service's process, answering `/healthz`.
    fn spawn(db: &Database, api_port: u16, env: &[(&str, &str)]) -> Service {
        let port = free_port();
        let mut command = Command::new("node");
        command
            .arg("dist/main.js")
            .current_dir(workspace().join("services").join(NEST))
            .env("NEST_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", db.url())
            .envs(env.iter().copied())
            .env(
                "NEST_AUTH_JWKS_URL",
                format!("http://127.0.0.1:{api_port}/.well-known/jwks.json"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Service::start_command(command, port)
    }

    fn me(&self, token: &str) -> crate::client::Reply {
        self.instance.get("/api/nest/me").bearer(token).send()
    }
}

/// The port `api` listens on.
fn api_port(api: &Api) -> u16 {
    api.base.rsplit(':').next().unwrap().parse().unwrap()
}

/// What the default workspace's api puts in `iss` and `aud` (the nest workspace's differ).
fn default_workspace_claims() -> [(&'static str, &'static str); 2] {
    [("AUTH_ISSUER", WORKSPACE), ("AUTH_AUDIENCE", WORKSPACE)]
}

/// The api binary in the workspace at `root` (its `.env`, its signing key) on `port`.
fn start_api_in<'db>(root: &Path, db: &'db Database, port: u16) -> Api<'db> {
    // The api's code is the same in both workspaces: the default one's build serves.
    default_workspace();
    let mut command = Command::new(service_binary("api"));
    command
        .current_dir(root)
        .env("API_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", db.url())
        .env("AUTH_COOKIE_SECURE", "false")
        .env_remove("AUTH_SIGNING_KEY")
        .env_remove("AUTH_PREVIOUS_KEYS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Instance::with("api", db, Service::start_command(command, port))
}

/// HMAC-SHA256 (RFC 2104), for the forged HS256 token: sha2 is at hand, an HMAC crate is not.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}
