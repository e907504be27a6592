//! The api's accounts and authentication, black box: the HTTP contract of docs/auth.md, spoken
//! over HTTP to the api binary of the default workspace.
//!
//! Each scenario runs against a fresh instance on a fresh SQLite file and again on a fresh
//! PostgreSQL database. Instances sign with a fixed test key (so that tests can verify and forge
//! tokens), send the cookie without `Secure` (`session`, over plain http), trust one extra CORS
//! origin, and have rate limits too high to matter, except where a test says otherwise.
//!
//! Every response is checked for a password hash (`argon2`), whatever the request.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::client::{Call, Instance, Reply, assert_keys, at_once, keys, set};
use crate::support::{Database, default_workspace, free_port, service_binary};

/// The seed byte of the signing key of every instance, unless a test starts one with another.
pub(crate) const KEY: u8 = 1;
/// The signing key after a rotation.
const NEXT_KEY: u8 = 2;
/// A key no instance knows.
pub(crate) const UNKNOWN_KEY: u8 = 3;

/// `AUTH_ISSUER` and `AUTH_AUDIENCE` default to the workspace's name.
pub(crate) const WORKSPACE: &str = "acme";
pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const NEW_PASSWORD: &str = "tr0ub4dor and three more words";
/// In `API_CORS_ALLOWED_ORIGINS` of every instance (the api reads it).
const ALLOWED_ORIGIN: &str = "https://app.example.com";
const EVIL_ORIGIN: &str = "https://evil.example";
/// A well-formed id of nothing.
const UNKNOWN_UUID: &str = "0193b3c4-0000-7000-8000-000000000000";

// ---------------------------------------------------------------------------------------------
// The scenarios, each on SQLite and on PostgreSQL

#[test]
fn registration_returns_the_user_tokens_and_a_session_cookie() {
    on_each_database(with_api(registration));
}

#[test]
fn registration_validates_each_field_and_refuses_a_taken_email() {
    on_each_database(with_api(registration_errors));
}

#[test]
fn login_fails_alike_for_unknown_email_wrong_password_and_disabled_account() {
    on_each_database(with_api(login));
}

#[test]
fn me_accepts_a_bearer_token_or_the_session_cookie() {
    on_each_database(with_api(credentials));
}

#[test]
fn refresh_rotates_and_a_reused_refresh_token_revokes_its_session() {
    on_each_database(with_api(refresh));
}

#[test]
fn logout_clears_the_cookie_and_ends_the_session_for_both_credentials() {
    on_each_database(with_api(logout));
}

#[test]
fn sessions_are_listed_and_revoked_by_their_owner_only() {
    on_each_database(with_api(sessions));
}

#[test]
fn a_password_change_revokes_every_other_session() {
    on_each_database(with_api(password_change));
}

/// Two instances on one database, as behind a load balancer: each reads sessions on its own
/// connections (on SQLite, read-only ones outside sqlx's pool) and remembers the tokens whose
/// signature it checked, and still refuses a session the other ended, at the next request.
#[test]
fn a_session_ended_through_one_instance_is_refused_at_once_by_the_other() {
    on_each_database(|db| {
        let first = Api::start(db, &[]);
        let second = Api::start(db, &[]);
        let ada = register(&first, "ada@example.com");
        let phone = login_as(&second, "ada@example.com", PASSWORD);
        let laptop = login_as(&first, "ada@example.com", PASSWORD);
        for api in [&first, &second] {
            for session in [&ada, &phone, &laptop] {
                assert_signed_in(api, session);
            }
        }

        first
            .post("/api/auth/logout")
            .bearer(&ada.access)
            .send()
            .expect(204);
        assert_signed_out(&second, &ada);
        assert_signed_in(&second, &phone);

        second
            .post("/api/auth/password")
            .bearer(&phone.access)
            .json(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
            .send()
            .expect(204);
        assert_signed_out(&first, &laptop);
        assert_signed_in(&first, &phone);
    });
}

#[test]
fn cookie_requests_with_unsafe_methods_need_a_same_origin_proof() {
    on_each_database(with_api(csrf));
}

#[test]
fn the_profile_is_read_and_replaced_with_per_field_validation() {
    on_each_database(with_api(profile));
}

#[test]
fn access_tokens_are_eddsa_jwts_verifiable_with_the_jwks() {
    on_each_database(with_api(tokens));
}

#[test]
fn tampered_forged_and_expired_tokens_are_rejected() {
    on_each_database(with_api(forged_tokens));
}

#[test]
fn concurrent_duplicate_registrations_and_refreshes_have_one_winner() {
    on_each_database(with_api(races));
}

#[test]
fn tokens_of_a_previous_key_verify_until_it_is_removed() {
    on_each_database(key_rotation);
}

#[test]
fn sessions_end_after_the_idle_timeout_and_the_absolute_timeout() {
    on_each_database(session_timeouts);
}

// ---------------------------------------------------------------------------------------------
// Tests with instances of their own

#[test]
fn the_default_cookie_is_a_secure_host_cookie() {
    let db = Database::sqlite();
    let api = Api::start(&db, &[("AUTH_COOKIE_SECURE", "true")]);
    let reply = try_register(
        &api,
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .expect(201);
    // AUTH_COOKIE_SECURE is true in the generated .env, as by default: set here all the same.
    let set_cookie = reply.set_cookie("__Host-session");
    assert_session_cookie(set_cookie, true);
    assert!(
        reply.find_set_cookie("session").is_none(),
        "only the __Host- cookie is set: {reply}"
    );
    let cookie = cookie_pair(set_cookie);
    me_cookie(&api, cookie).expect(200);

    let reply = api
        .post("/api/auth/logout")
        .cookie(cookie)
        .send()
        .expect(204);
    assert_cleared(reply.set_cookie("__Host-session"), true);
    me_cookie(&api, cookie).expect_error(401, "unauthorized");
}

#[test]
fn register_and_login_are_rate_limited_per_email_and_client_ip() {
    let db = Database::sqlite();
    let api = Api::start(&db, &[("RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE", "3")]);
    // Four attempts at once, one of them with the email written otherwise. Each is counted when
    // it arrives, before its password is hashed: sent one after another, they would pass the
    // limit only if hashing were quick enough (3 a minute gives one request back every 20 s).
    let replies = at_once(4, |n| {
        let email = if n == 0 {
            " ADA@example.com"
        } else {
            "ada@example.com"
        };
        try_login(&api, email, PASSWORD)
    });
    let (limited, counted): (Vec<&Reply>, Vec<&Reply>) =
        replies.iter().partition(|reply| reply.status == 429);
    // One over the limit, whichever came last: the email is compared trimmed and lower-cased.
    assert_eq!(limited.len(), 1, "{replies:#?}");
    assert_too_many_requests(limited[0]);
    let mut remaining: Vec<u64> = counted
        .iter()
        .map(|reply| {
            reply.check_error(401, "invalid_credentials");
            assert_rate_limit_headers(reply)
        })
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, [0, 1, 2], "RateLimit-Remaining counts down");
    // Another email from the same client is not limited.
    try_login(&api, "grace@example.com", PASSWORD).check_error(401, "invalid_credentials");
    let grace = register(&api, "grace@example.com");
    me_bearer(&api, &grace.access).expect(200);
}

// The limits are GCRA: a limit of N per minute gives one request back every 60/N seconds, so
// these tests spend their quota quickly, mostly with requests that hash no password.

#[test]
fn register_login_refresh_and_password_changes_are_rate_limited_per_client_ip() {
    let db = Database::sqlite();
    let api = Api::start(&db, &[("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", "5")]);
    // Five requests on the four endpoints together, each with another email.
    let weak = |email: &str| json!({"email": email, "password": "short"});
    let change_password = || {
        api.post("/api/auth/password")
            .bearer("garbage")
            .json(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
            .send()
    };
    let counted = [
        try_register(&api, weak("ada@example.com")),
        try_login(&api, "grace@example.com", PASSWORD),
        try_refresh(&api, "garbage"),
        change_password(),
        try_register(&api, weak("alan@example.com")),
    ];
    let remaining: Vec<u64> = counted
        .iter()
        .map(|reply| {
            assert!([401, 422].contains(&reply.status), "{reply}");
            assert_rate_limit_headers(reply)
        })
        .collect();
    assert_eq!(remaining, [4, 3, 2, 1, 0]);

    assert_too_many_requests(&try_login(&api, "edsger@example.com", PASSWORD));
    assert_too_many_requests(&try_register(&api, weak("barbara@example.com")));
    assert_too_many_requests(&try_refresh(&api, "garbage"));
    assert_too_many_requests(&change_password());
    // X-Forwarded-For is not trusted by default.
    assert_too_many_requests(
        &api.post("/api/auth/login")
            .header("X-Forwarded-For", "203.0.113.7")
            .json(json!({"email": "ken@example.com", "password": PASSWORD}))
            .send(),
    );
    // Other endpoints are not limited.
    api.get("/api/auth/me")
        .send()
        .expect_error(401, "unauthorized");
    api.get("/.well-known/jwks.json").send().expect(200);
}

#[test]
fn failed_logins_from_one_address_do_not_lock_the_owner_out() {
    let db = Database::sqlite();
    // The limits' defaults.
    let api = Api::start(
        &db,
        &[
            ("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", "30"),
            ("RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE", "10"),
            ("RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR", "100"),
        ],
    );
    register(&api, "ada@example.com");

    // Thirty guesses at once from one address: those over its limit for the account are refused
    // before any password is hashed.
    let stranger = Ipv4Addr::new(127, 0, 0, 3);
    let replies = at_once(30, |_| {
        login_call(&api, "ada@example.com", "not the password")
            .from(stranger)
            .send()
    });
    let refused = replies.iter().filter(|reply| reply.status == 429).count();
    assert!(refused > 0, "{replies:#?}");
    for reply in &replies {
        assert!([401, 429].contains(&reply.status), "{reply}");
    }

    // The owner, from another address, is not refused for them.
    let owner = Ipv4Addr::new(127, 0, 0, 7);
    let reply = login_call(&api, "ada@example.com", PASSWORD)
        .from(owner)
        .send();
    Session::from_reply(reply.expect(200));
}

#[test]
fn an_address_that_signed_in_before_passes_the_per_account_limit() {
    let db = Database::sqlite();
    let api = Api::start(&db, &[("RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR", "3")]);
    let owner = Ipv4Addr::new(127, 0, 0, 7);
    let body = json!({"email": "ada@example.com", "password": PASSWORD});
    api.post("/api/auth/register")
        .json(body)
        .from(owner)
        .send()
        .expect(201);

    // Guesses from two addresses use up the account's hourly quota, for every address...
    let guess = |from: [u8; 4]| {
        login_call(&api, "ada@example.com", "not the password")
            .from(Ipv4Addr::from(from))
            .send()
    };
    let statuses: Vec<u16> = [
        [127, 0, 0, 3],
        [127, 0, 0, 4],
        [127, 0, 0, 3],
        [127, 0, 0, 4],
    ]
    .map(|from| guess(from).status)
    .to_vec();
    assert_eq!(statuses, [401, 401, 401, 429]);
    let newcomer = login_call(&api, "ada@example.com", PASSWORD)
        .from(Ipv4Addr::new(127, 0, 0, 5))
        .send();
    newcomer.check_error(429, "too_many_requests");
    assert!(newcomer.number_header("Retry-After") > 60, "{newcomer}");

    // ... but the address the owner registered from.
    let reply = login_call(&api, "ada@example.com", PASSWORD)
        .from(owner)
        .send();
    Session::from_reply(reply.expect(200));
}

#[test]
fn password_changes_are_rate_limited_per_account() {
    let db = Database::sqlite();
    let api = Api::start(&db, &[("RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE", "3")]);
    let ada = register(&api, "ada@example.com");
    let phone = login_as(&api, "ada@example.com", PASSWORD);
    let change = |token: &str| {
        api.post("/api/auth/password")
            .bearer(token)
            .json(json!({"current_password": "a guess", "new_password": NEW_PASSWORD}))
            .send()
    };

    // Four guesses at once with two sessions of the account: counted when they arrive, before
    // the password is checked, one count for the account.
    let replies = at_once(4, |n| {
        change(if n % 2 == 0 {
            &ada.access
        } else {
            &phone.access
        })
    });
    let mut statuses: Vec<u16> = replies.iter().map(|reply| reply.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [422, 422, 422, 429], "{replies:#?}");
    let limited = replies.iter().find(|reply| reply.status == 429).unwrap();
    assert_too_many_requests(limited);

    // Another account is not limited.
    let grace = register(&api, "grace@example.com");
    change(&grace.access).check_error(422, "validation_failed");
}

#[test]
fn a_full_password_hashing_queue_answers_503_with_retry_after() {
    let db = Database::sqlite();
    let api = Api::start(&db, &[("AUTH_PASSWORD_HASH_QUEUE", "1")]);
    register(&api, "ada@example.com");

    // Bursts of logins, each more than the hashing threads and the queue of one can hold, until
    // one is refused: how many get through depends on how fast hashing is.
    let deadline = Instant::now() + Duration::from_secs(120);
    let busy = loop {
        let replies = at_once(24, |_| try_login(&api, "ada@example.com", "a guess"));
        for reply in &replies {
            assert!([401, 503].contains(&reply.status), "{reply}");
        }
        if let Some(busy) = replies.into_iter().find(|reply| reply.status == 503) {
            break busy;
        }
        assert!(
            Instant::now() < deadline,
            "no login was refused with 503 while the hashing queue was full"
        );
    };
    busy.check_error(503, "overloaded");
    assert!(busy.number_header("Retry-After") >= 1, "{busy}");

    // Once the burst is over, logins go through again.
    login_as(&api, "ada@example.com", PASSWORD);
}

#[test]
fn behind_a_trusted_proxy_the_client_is_the_last_forwarded_address_or_its_ipv6_64() {
    let db = Database::sqlite();
    let api = Api::start(
        &db,
        &[
            ("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", "2"),
            ("RATE_LIMIT_TRUST_FORWARDED_FOR", "true"),
        ],
    );
    let refresh_from = |forwarded_for: &str| {
        api.post("/api/auth/refresh")
            .header("X-Forwarded-For", forwarded_for)
            .json(json!({"refresh_token": "garbage"}))
            .send()
    };
    refresh_from("203.0.113.7").check_error(401, "unauthorized");
    refresh_from("203.0.113.7").check_error(401, "unauthorized");
    assert_too_many_requests(&refresh_from("203.0.113.7"));
    refresh_from("203.0.113.8").check_error(401, "unauthorized");
    // The proxy appends the address it saw: only the last one counts.
    assert_too_many_requests(&refresh_from("203.0.113.8, 203.0.113.7"));
    refresh_from("203.0.113.7, 203.0.113.9").check_error(401, "unauthorized");

    // IPv6 clients are counted per /64 network.
    refresh_from("2001:db8:0:1::1").check_error(401, "unauthorized");
    refresh_from("2001:db8:0:1::2").check_error(401, "unauthorized");
    assert_too_many_requests(&refresh_from("2001:db8:0:1:ffff::3"));
    refresh_from("2001:db8:0:2::1").check_error(401, "unauthorized");
}

#[test]
fn instances_pointing_at_one_redis_share_their_rate_limits() {
    let redis = redis_url();
    let db = Database::sqlite();
    let env = [
        ("RATE_LIMIT_REDIS_URL", redis.as_str()),
        ("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", "3"),
        ("RATE_LIMIT_TRUST_FORWARDED_FOR", "true"),
    ];
    let first = Api::start(&db, &env);
    let second = Api::start(&db, &env);
    // Addresses (IPv6 /64s) of this run's own: counts stay in Redis for a minute after a run.
    let network = format!("2001:db8:{:x}", rand::random::<u16>());
    let refresh = |api: &Api, client: u16| {
        api.post("/api/auth/refresh")
            .header("X-Forwarded-For", &format!("{network}:{client:x}::1"))
            .json(json!({"refresh_token": "garbage"}))
            .send()
    };

    let remaining: Vec<u64> = [&first, &second, &first]
        .into_iter()
        .map(|api| {
            let reply = refresh(api, 1);
            reply.check_error(401, "unauthorized");
            assert_rate_limit_headers(&reply)
        })
        .collect();

    assert_eq!(remaining, [2, 1, 0], "one count for both instances");
    assert_too_many_requests(&refresh(&second, 1));
    assert_too_many_requests(&refresh(&first, 1));

    // Eight at once, half through each instance: checking and counting are one step in Redis,
    // so exactly the quota gets through.
    let replies = at_once(8, |n| refresh(if n % 2 == 0 { &first } else { &second }, 2));
    let allowed = replies.iter().filter(|reply| reply.status == 401).count();
    let refused = replies.iter().filter(|reply| reply.status == 429).count();
    assert_eq!((allowed, refused), (3, 5), "{replies:#?}");
}

#[test]
fn instances_pointing_at_one_redis_share_the_addresses_known_to_an_account() {
    let redis = redis_url();
    let db = Database::sqlite();
    let env = [
        ("RATE_LIMIT_REDIS_URL", redis.as_str()),
        ("RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR", "1"),
        ("RATE_LIMIT_TRUST_FORWARDED_FOR", "true"),
    ];
    let first = Api::start(&db, &env);
    let second = Api::start(&db, &env);
    // An email and addresses of this run's own: Redis keeps counts and known addresses.
    let run = rand::random::<u16>();
    let email = format!("ada-{run:x}@example.com");
    let network = format!("2001:db8:{run:x}");
    let login = |api: &Api, client: u16, password: &str| {
        login_call(api, &email, password)
            .header("X-Forwarded-For", &format!("{network}:{client:x}::1"))
            .send()
    };

    // Registered through the first instance from address 1, which the second one then knows.
    first
        .post("/api/auth/register")
        .header("X-Forwarded-For", &format!("{network}:1::1"))
        .json(json!({"email": email, "password": PASSWORD}))
        .send()
        .expect(201);
    login(&second, 2, "a guess").check_error(401, "invalid_credentials");
    login(&first, 3, PASSWORD).check_error(429, "too_many_requests");
    Session::from_reply(login(&second, 1, PASSWORD).expect(200));
}

#[test]
fn an_unreachable_redis_stops_start_up_with_what_to_do() {
    let db = Database::sqlite();
    // Nothing listens there.
    let redis = format!("redis://127.0.0.1:{}", free_port());
    let output = Command::new(service_binary("api"))
        .current_dir(default_workspace())
        .env("API_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("DATABASE_URL", db.url())
        .env("RATE_LIMIT_REDIS_URL", &redis)
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("RATE_LIMIT_REDIS_URL") && stderr.contains("leave the key empty"),
        "{stderr}"
    );
}

/// The Redis of the tests, on its default port (`.ci/run` starts one when none answers).
fn redis_url() -> String {
    let address = "127.0.0.1:6379";
    if let Err(error) = std::net::TcpStream::connect(address) {
        panic!(
            "no Redis at {address} ({error}): start one with `redis-server --daemonize yes \
             --bind 127.0.0.1 --port 6379 --save '' --appendonly no`"
        );
    }
    format!("redis://{address}")
}

// ---------------------------------------------------------------------------------------------
// Scenarios

fn registration(api: &Api) {
    let email = "  Ada.Lovelace@Example.COM ";
    let body = json!({"email": email, "password": PASSWORD, "full_name": "Ada Lovelace"});
    let reply = try_register(api, body).expect(201);
    let body = reply.json();
    let user = &body["user"];
    assert_user(user, "ada.lovelace@example.com", json!("Ada Lovelace"));
    assert_eq!(body["token_type"], "bearer", "{reply}");
    assert_eq!(
        body["expires_in"], 900,
        "AUTH_ACCESS_TOKEN_TTL_SECS: {reply}"
    );
    assert_eq!(
        str_of(&body["access_token"]).split('.').count(),
        3,
        "{reply}"
    );
    assert_random_token(&body["refresh_token"]);
    assert_session_cookie(reply.set_cookie("session"), false);
    let ada = Session::from_reply(reply);
    let (_, token) = ada.cookie.split_once('=').unwrap();
    assert!(token.len() >= 43, "a 256-bit random token: {}", ada.cookie);
    assert_eq!(me_bearer(api, &ada.access).expect_json(200), *user);

    // Login takes the email in any case and spacing, and starts another session.
    let again = login_as(api, " ADA.LOVELACE@example.com", PASSWORD);
    assert_eq!(again.user, *user);
    assert_ne!(again.cookie, ada.cookie);
    assert_ne!(again.refresh, ada.refresh);
    assert_ne!(again.sid(), ada.sid());

    let grace = register(api, "grace@example.com");
    assert_user(&grace.user, "grace@example.com", Value::Null);
    assert_ne!(grace.user["id"], ada.user["id"]);
}

fn registration_errors(api: &Api) {
    let account = |email: &str, password: &str| json!({"email": email, "password": password});
    let long_name =
        json!({"email": "ada@example.com", "password": PASSWORD, "full_name": "x".repeat(201)});
    let cases = [
        (account("not-an-email", PASSWORD), vec!["email"]),
        (account("ada@localhost", PASSWORD), vec!["email"]),
        (account("ada@example.com", "nine char"), vec!["password"]),
        (account("ada@example.com", "1234567890"), vec!["password"]),
        (account("ada@example.com", "qwertyuiop"), vec!["password"]),
        (
            account("ada@example.com", &"a".repeat(1025)),
            vec!["password"],
        ),
        (account("ada@", "short"), vec!["email", "password"]),
        (long_name, vec!["full_name"]),
    ];
    for (body, fields) in cases {
        let error = try_register(api, body.clone()).expect_error(422, "validation_failed");
        assert_eq!(
            keys(&error["fields"]),
            fields.into_iter().collect(),
            "{body}: {error}"
        );
    }

    // The boundaries are accepted: 10 characters, 1024 bytes, a 200-character name.
    let boundaries = [
        json!({"email": "ten@example.com", "password": "Zq8-vT2.mw"}),
        json!({"email": "long@example.com", "password": "é".repeat(512)}),
        json!({"email": "name@example.com", "password": PASSWORD, "full_name": "é".repeat(200)}),
    ];
    for body in boundaries {
        try_register(api, body).expect(201);
    }

    register(api, "ada@example.com");
    for taken in ["ada@example.com", " ADA@Example.com"] {
        try_register(api, json!({"email": taken, "password": PASSWORD}))
            .expect_error(409, "conflict");
    }
    // The account was not changed by the attempts.
    login_as(api, "ada@example.com", PASSWORD);
}

fn login(api: &Api) {
    let ada = register(api, "ada@example.com");
    let mallory = register(api, "mallory@example.com");
    api.db.execute(&format!(
        "UPDATE users SET disabled_at = {} WHERE email = 'mallory@example.com'",
        now()
    ));

    let failures = [
        try_login(api, "nobody@example.com", PASSWORD),
        try_login(api, "ada@example.com", "not the password"),
        try_login(api, "mallory@example.com", PASSWORD),
    ];
    for reply in &failures {
        reply.check_error(401, "invalid_credentials");
        assert!(
            reply.find_set_cookie("session").is_none(),
            "no cookie for a failed login: {reply}"
        );
        assert_eq!(reply.body, failures[0].body, "one answer for every failure");
    }
    // A disabled account's existing sessions stop working too (the users table says so).
    me_bearer(api, &mallory.access).expect_error(401, "unauthorized");

    let again = login_as(api, "ada@example.com", PASSWORD);
    assert_eq!(again.user, ada.user);
    assert_signed_in(api, &ada);
    assert_signed_in(api, &again);

    // An unknown email costs a password verification too. The two kinds take turns, and the
    // fastest of three of each is compared, so that a busy spell of the machine slows both.
    let timed = |email: &str| {
        let start = Instant::now();
        try_login(api, email, "not the password").check(401);
        start.elapsed()
    };
    let (unknown, wrong) = (0..3)
        .map(|_| (timed("nobody@example.com"), timed("ada@example.com")))
        .fold(
            (Duration::MAX, Duration::MAX),
            |(unknown, wrong), (u, w)| (unknown.min(u), wrong.min(w)),
        );
    assert!(
        unknown * 3 >= wrong,
        "an unknown email is answered in {unknown:?}, a wrong password in {wrong:?}"
    );
}

fn credentials(api: &Api) {
    let ada = register(api, "ada@example.com");
    let grace = register(api, "grace@example.com");
    assert_eq!(me_bearer(api, &ada.access).expect_json(200), ada.user);
    assert_eq!(me_cookie(api, &ada.cookie).expect_json(200), ada.user);

    api.get("/api/auth/me")
        .send()
        .expect_error(401, "unauthorized");
    let garbage = [
        ("Authorization", "Bearer garbage".to_string()),
        ("Authorization", "Bearer ".to_string()),
        ("Authorization", format!("Basic {}", b64(b"ada:password"))),
        ("Authorization", format!("bearer{}", ada.access)),
        ("Authorization", format!("Bearer {}", ada.refresh)),
        ("Cookie", "session=garbage".to_string()),
        ("Cookie", format!("session={}", ada.refresh)),
        ("Cookie", format!("session={}", ada.access)),
    ];
    for (name, value) in garbage {
        api.get("/api/auth/me")
            .header(name, &value)
            .send()
            .expect_error(401, "unauthorized");
    }

    // With both, the Bearer token counts.
    let both =
        |token: &str, cookie: &str| api.get("/api/auth/me").bearer(token).cookie(cookie).send();
    assert_eq!(
        both(&ada.access, "session=garbage").expect_json(200),
        ada.user
    );
    assert_eq!(both(&ada.access, &grace.cookie).expect_json(200), ada.user);
    both("garbage", &ada.cookie).expect_error(401, "unauthorized");
}

fn refresh(api: &Api) {
    let ada = register(api, "ada@example.com");
    let other = login_as(api, "ada@example.com", PASSWORD);

    let first = try_refresh(api, &ada.refresh).expect_json(200);
    assert_keys(
        &first,
        &["access_token", "token_type", "expires_in", "refresh_token"],
    );
    assert_eq!(first["token_type"], "bearer");
    assert_eq!(first["expires_in"], 900);
    assert_random_token(&first["refresh_token"]);
    assert_ne!(str_of(&first["refresh_token"]), ada.refresh);
    let access = str_of(&first["access_token"]);
    assert_eq!(claims(access)["sid"], ada.sid(), "the same session");
    assert_eq!(me_bearer(api, access).expect_json(200), ada.user);

    let second = try_refresh(api, str_of(&first["refresh_token"])).expect_json(200);
    let newest = str_of(&second["refresh_token"]);

    // The first token again: reuse. The whole family, and the session with it, is revoked.
    try_refresh(api, &ada.refresh).expect_error(401, "unauthorized");
    try_refresh(api, newest).expect_error(401, "unauthorized");
    for token in [&ada.access, access, str_of(&second["access_token"])] {
        me_bearer(api, token).expect_error(401, "unauthorized");
    }
    me_cookie(api, &ada.cookie).expect_error(401, "unauthorized");
    // Another session of the same account is not affected.
    assert_signed_in(api, &other);
    try_refresh(api, &other.refresh).expect(200);

    for garbage in [
        "garbage".to_string(),
        String::new(),
        ada.access.clone(),
        b64(&[0; 32]),
    ] {
        try_refresh(api, &garbage).expect_error(401, "unauthorized");
    }
}

fn logout(api: &Api) {
    // With the cookie.
    let ada = register(api, "ada@example.com");
    let other = login_as(api, "ada@example.com", PASSWORD);
    let reply = api
        .post("/api/auth/logout")
        .cookie(&ada.cookie)
        .send()
        .expect(204);
    assert_eq!(reply.body, "");
    assert_cleared(reply.set_cookie("session"), false);
    assert_signed_out(api, &ada);
    assert_signed_in(api, &other);

    // With a Bearer token: the session's cookie stops working too.
    let reply = api
        .post("/api/auth/logout")
        .bearer(&other.access)
        .send()
        .expect(204);
    assert_cleared(reply.set_cookie("session"), false);
    assert_signed_out(api, &other);

    // Without a (valid) credential: the cookie is cleared all the same.
    for request in [
        api.post("/api/auth/logout"),
        api.post("/api/auth/logout").cookie("session=garbage"),
        api.post("/api/auth/logout").bearer("garbage"),
    ] {
        let reply = request.send().expect(204);
        assert_cleared(reply.set_cookie("session"), false);
    }
    login_as(api, "ada@example.com", PASSWORD);
}

fn sessions(api: &Api) {
    let ada = register(api, "ada@example.com");
    let phone = Session::from_reply(
        api.post("/api/auth/login")
            .header("User-Agent", "e2e phone")
            .json(json!({"email": "ada@example.com", "password": PASSWORD}))
            .send()
            .expect(200),
    );
    let bob = register(api, "bob@example.com");

    let list = list_sessions(api.get("/api/auth/sessions").bearer(&ada.access));
    assert_eq!(list.len(), 2, "{list:?}");
    for session in &list {
        assert_keys(
            session,
            &[
                "id",
                "created_at",
                "last_seen_at",
                "expires_at",
                "user_agent",
                "current",
            ],
        );
        assert_recent(&session["created_at"]);
        assert_recent(&session["last_seen_at"]);
        let lifetime = int_of(&session["expires_at"]) - int_of(&session["created_at"]);
        assert!(
            (2_592_000 - 5..=2_592_000 + 5).contains(&lifetime),
            "AUTH_SESSION_ABSOLUTE_TIMEOUT_SECS: {session}"
        );
    }
    let current = only_current(&list);
    assert_eq!(current["id"], ada.sid());
    let phone_entry = list.iter().find(|s| s["id"] == phone.sid()).unwrap();
    assert_eq!(phone_entry["user_agent"], "e2e phone");
    assert_eq!(phone_entry["current"], false);
    // The cookie's session is the current one of a cookie request.
    let list = list_sessions(api.get("/api/auth/sessions").cookie(&phone.cookie));
    assert_eq!(only_current(&list)["id"], phone.sid());

    // Someone else's session, an unknown one, a malformed id: 404, and nothing changes.
    for id in [
        bob.sid(),
        UNKNOWN_UUID.to_string(),
        "not-a-session".to_string(),
    ] {
        api.delete(&format!("/api/auth/sessions/{id}"))
            .bearer(&ada.access)
            .send()
            .expect_error(404, "not_found");
    }
    assert_signed_in(api, &bob);
    api.get("/api/auth/sessions")
        .send()
        .expect_error(401, "unauthorized");
    api.delete(&format!("/api/auth/sessions/{}", phone.sid()))
        .send()
        .expect_error(401, "unauthorized");

    let reply = api
        .delete(&format!("/api/auth/sessions/{}", phone.sid()))
        .bearer(&ada.access)
        .send()
        .expect(204);
    assert_eq!(reply.body, "");
    assert_signed_out(api, &phone);
    let list = list_sessions(api.get("/api/auth/sessions").bearer(&ada.access));
    assert_eq!(list.len(), 1, "{list:?}");

    // Its own session, with the cookie.
    api.delete(&format!("/api/auth/sessions/{}", ada.sid()))
        .cookie(&ada.cookie)
        .send()
        .expect(204);
    assert_signed_out(api, &ada);
}

fn password_change(api: &Api) {
    let ada = register(api, "ada@example.com");
    let phone = login_as(api, "ada@example.com", PASSWORD);
    let change = |current: &str, new: &str| {
        api.post("/api/auth/password")
            .bearer(&ada.access)
            .json(json!({"current_password": current, "new_password": new}))
            .send()
    };

    let error = change("not the password", NEW_PASSWORD).expect_error(422, "validation_failed");
    assert_eq!(
        error["fields"],
        json!({"current_password": "is incorrect"}),
        "{error}"
    );
    for weak in ["short", "1234567890"] {
        let error = change(PASSWORD, weak).expect_error(422, "validation_failed");
        assert_eq!(keys(&error["fields"]), set(["new_password"]), "{error}");
    }
    api.post("/api/auth/password")
        .json(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .expect_error(401, "unauthorized");
    // Nothing changed so far.
    assert_signed_in(api, &phone);

    let reply = change(PASSWORD, NEW_PASSWORD).expect(204);
    assert_eq!(reply.body, "");
    assert_signed_out(api, &phone);
    assert_signed_in(api, &ada);
    try_refresh(api, &ada.refresh).expect(200);

    try_login(api, "ada@example.com", PASSWORD).expect_error(401, "invalid_credentials");
    login_as(api, "ada@example.com", NEW_PASSWORD);
}

fn csrf(api: &Api) {
    let ada = register(api, "ada@example.com");
    let own_origin = api.base.as_str();
    // PUT /api/users/profile with the cookie and these headers.
    let put_profile = |headers: &[(&str, &str)], name: &str| {
        api.put("/api/users/profile")
            .cookie(&ada.cookie)
            .headers(headers)
            .json(json!({"display_name": name}))
            .send()
    };
    let refused: [&[(&str, &str)]; 5] = [
        &[("Origin", EVIL_ORIGIN), ("Sec-Fetch-Site", "cross-site")],
        &[("Origin", EVIL_ORIGIN)],
        &[("Origin", "null")],
        &[
            ("Origin", "https://www.example.com"),
            ("Sec-Fetch-Site", "same-site"),
        ],
        &[("Sec-Fetch-Site", "cross-site")],
    ];
    for headers in refused {
        put_profile(headers, "refused").expect_error(403, "forbidden");
    }
    let profile = api.get("/api/users/profile").cookie(&ada.cookie).send();
    assert_eq!(profile.expect_json(200)["display_name"], Value::Null);

    let accepted: [&[(&str, &str)]; 6] = [
        &[("Origin", ALLOWED_ORIGIN), ("Sec-Fetch-Site", "cross-site")],
        &[
            ("Origin", EVIL_ORIGIN),
            ("X-Requested-With", "XMLHttpRequest"),
        ],
        &[("Origin", own_origin), ("Sec-Fetch-Site", "same-origin")],
        &[("Sec-Fetch-Site", "none")],
        &[("Origin", own_origin)],
        &[],
    ];
    for headers in accepted {
        let reply = put_profile(headers, "accepted");
        assert_eq!(reply.status, 200, "with {headers:?}: {reply}");
    }

    // The other unsafe endpoints are guarded alike; safe methods are not.
    let evil = [("Origin", EVIL_ORIGIN), ("Sec-Fetch-Site", "cross-site")];
    let change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let guarded = [
        api.post("/api/auth/logout"),
        api.delete(&format!("/api/auth/sessions/{}", ada.sid())),
        api.post("/api/auth/password").json(change),
    ];
    for call in guarded {
        call.cookie(&ada.cookie)
            .headers(&evil)
            .send()
            .expect_error(403, "forbidden");
    }
    assert_signed_in(api, &ada);
    // The password did not change.
    login_as(api, "ada@example.com", PASSWORD);
    let me = api.get("/api/auth/me").cookie(&ada.cookie).headers(&evil);
    me.send().expect(200);

    // A Bearer token is exempt.
    api.put("/api/users/profile")
        .bearer(&ada.access)
        .headers(&evil)
        .json(json!({"display_name": "bearer"}))
        .send()
        .expect(200);
    api.post("/api/auth/logout")
        .bearer(&ada.access)
        .headers(&evil)
        .send()
        .expect(204);
    assert_signed_out(api, &ada);
}

fn profile(api: &Api) {
    let ada = register_with_name(api, "ada@example.com", "Ada Lovelace");
    let get = || {
        api.get("/api/users/profile")
            .bearer(&ada.access)
            .send()
            .expect_json(200)
    };
    let put = |body: Value| {
        api.put("/api/users/profile")
            .bearer(&ada.access)
            .json(body)
            .send()
    };
    let initial = get();
    assert_eq!(
        initial,
        json!({
            "id": ada.user["id"], "email": "ada@example.com", "full_name": "Ada Lovelace",
            "display_name": null, "timezone": null, "locale": null,
        })
    );
    let by_cookie = api.get("/api/users/profile").cookie(&ada.cookie).send();
    assert_eq!(by_cookie.expect_json(200), initial);

    let full = json!({
        "full_name": "Ada King", "display_name": "ada",
        "timezone": "Europe/Paris", "locale": "fr-CA",
    });
    let mut expected = full.clone();
    expected["id"] = ada.user["id"].clone();
    expected["email"] = json!("ada@example.com");
    assert_eq!(put(full).expect_json(200), expected);
    assert_eq!(get(), expected);
    assert_eq!(
        me_bearer(api, &ada.access).expect_json(200)["full_name"],
        "Ada King",
        "the profile's full name is the user's"
    );

    // A missing field is set to null.
    let partial = put(json!({"display_name": "countess"})).expect_json(200);
    assert_eq!(
        partial,
        json!({
            "id": ada.user["id"], "email": "ada@example.com", "full_name": null,
            "display_name": "countess", "timezone": null, "locale": null,
        })
    );

    for (timezone, locale) in [("UTC", "en"), ("America/Montreal", "zh-Hant-TW")] {
        let body = put(json!({"timezone": timezone, "locale": locale})).expect_json(200);
        assert_eq!(
            (&body["timezone"], &body["locale"]),
            (&json!(timezone), &json!(locale))
        );
    }
    let boundaries = json!({"full_name": "é".repeat(200), "display_name": "é".repeat(64)});
    put(boundaries).expect(200);

    let before = get();
    let invalid = [
        (json!({"timezone": "Mars/Olympus_Mons"}), vec!["timezone"]),
        (json!({"timezone": "Europe/Paris; DROP"}), vec!["timezone"]),
        (json!({"locale": "not a locale"}), vec!["locale"]),
        (json!({"locale": "en_US_"}), vec!["locale"]),
        (
            json!({"display_name": "x".repeat(65)}),
            vec!["display_name"],
        ),
        (json!({"full_name": "x".repeat(201)}), vec!["full_name"]),
        (
            json!({"timezone": "Nowhere/Special", "locale": "--", "display_name": "ok"}),
            vec!["locale", "timezone"],
        ),
    ];
    for (body, fields) in invalid {
        let error = put(body.clone()).expect_error(422, "validation_failed");
        assert_eq!(
            keys(&error["fields"]),
            fields.into_iter().collect(),
            "{body}: {error}"
        );
    }
    assert_eq!(get(), before, "a refused update changes nothing");

    api.get("/api/users/profile")
        .send()
        .expect_error(401, "unauthorized");
    api.put("/api/users/profile")
        .json(json!({"display_name": "anonymous"}))
        .send()
        .expect_error(401, "unauthorized");
}

fn tokens(api: &Api) {
    let ada = register(api, "ada@example.com");
    let (header, claims) = decode(&ada.access);
    let kid = key_id(&public_key(KEY));
    assert_eq!(header, json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}));
    assert_keys(
        &claims,
        &["iss", "aud", "sub", "sid", "exp", "iat", "jti", "typ"],
    );
    assert_eq!(claims["iss"], WORKSPACE);
    assert_eq!(claims["aud"], WORKSPACE);
    assert_eq!(claims["sub"], ada.user["id"]);
    assert_eq!(claims["typ"], "access");
    assert_uuid(&claims["sid"], None);
    assert_uuid(&claims["jti"], None);
    assert_recent(&claims["iat"]);
    assert_eq!(int_of(&claims["exp"]) - int_of(&claims["iat"]), 900);
    let again = login_as(api, "ada@example.com", PASSWORD);
    assert_ne!(claims["jti"], decode(&again.access).1["jti"]);

    let jwks = api.get("/.well-known/jwks.json").send().expect_json(200);
    assert_eq!(
        jwks,
        json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": public_key(KEY), "kid": kid,
            "alg": "EdDSA", "use": "sig",
        }]})
    );
    // The signature verifies with the published key.
    let x: [u8; 32] = unb64(str_of(&jwks["keys"][0]["x"])).try_into().unwrap();
    let (signed, signature) = ada.access.rsplit_once('.').unwrap();
    let signature = Signature::from_slice(&unb64(signature)).unwrap();
    VerifyingKey::from_bytes(&x)
        .unwrap()
        .verify_strict(signed.as_bytes(), &signature)
        .expect("the access token's signature verifies with the JWKS key");
}

fn forged_tokens(api: &Api) {
    let ada = register(api, "ada@example.com");
    let bob = register(api, "bob@example.com");
    let (header, claims) = decode(&ada.access);
    let key = signing_key(KEY);
    let with_claims = |changes: Value| {
        let mut claims = claims.clone();
        for (name, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => claims.as_object_mut().unwrap().remove(name),
                value => claims
                    .as_object_mut()
                    .unwrap()
                    .insert(name.clone(), value.clone()),
            };
        }
        forge(&header, &claims, &key)
    };

    // The forging is right: the same claims, re-signed, are accepted, and so is a token expired
    // within the 60 s leeway.
    me_bearer(api, &forge(&header, &claims, &key)).expect(200);
    me_bearer(api, &with_claims(json!({"exp": now() - 20}))).expect(200);

    let parts: Vec<&str> = ada.access.split('.').collect();
    let (head, payload, signature) = (parts[0], parts[1], parts[2]);
    let encode = |value: &Value| b64(value.to_string().as_bytes());
    let kid = &header["kid"];
    let alg = |alg: &str| encode(&json!({"alg": alg, "typ": "JWT", "kid": kid}));
    let mut flipped = unb64(signature);
    flipped[10] ^= 1;
    let unknown_kid =
        json!({"alg": "EdDSA", "typ": "JWT", "kid": key_id(&public_key(UNKNOWN_KEY))});
    let rejected = [
        (
            "alg HS256",
            format!("{}.{payload}.{signature}", alg("HS256")),
        ),
        (
            "alg none",
            format!("{}.{payload}.", encode(&json!({"alg": "none"}))),
        ),
        (
            "alg none, signature kept",
            format!("{}.{payload}.{signature}", alg("none")),
        ),
        (
            "alg missing",
            format!("{}.{payload}.{signature}", encode(&json!({"kid": kid}))),
        ),
        (
            "signature changed",
            format!("{head}.{payload}.{}", b64(&flipped)),
        ),
        ("signature missing", format!("{head}.{payload}.")),
        (
            "payload changed",
            format!("{head}.{}.{signature}", encode(&claims_of(&bob))),
        ),
        (
            "no kid",
            forge(&json!({"alg": "EdDSA", "typ": "JWT"}), &claims, &key),
        ),
        ("unknown kid", forge(&unknown_kid, &claims, &key)),
        (
            "unknown key",
            forge(&header, &claims, &signing_key(UNKNOWN_KEY)),
        ),
        ("expired", with_claims(json!({"exp": now() - 120}))),
        ("no exp", with_claims(json!({"exp": null}))),
        (
            "another audience",
            with_claims(json!({"aud": "another-api"})),
        ),
        (
            "another issuer",
            with_claims(json!({"iss": "someone-else"})),
        ),
        (
            "not an access token",
            with_claims(json!({"typ": "refresh"})),
        ),
        ("unknown session", with_claims(json!({"sid": UNKNOWN_UUID}))),
    ];
    for (what, token) in rejected {
        let reply = me_bearer(api, &token);
        assert_eq!(reply.status, 401, "{what}: {token}\n{reply}");
        reply.check_error(401, "unauthorized");
    }
}

fn races(api: &Api) {
    let body = json!({"email": "race@example.com", "password": PASSWORD});
    let replies = at_once(8, |_| try_register(api, body.clone()));
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1, "one registration succeeds: {replies:#?}");
    for reply in replies.iter().filter(|r| r.status != 201) {
        reply.check_error(409, "conflict");
    }

    // One refresh token presented eight times at once: it is reused, so the session is revoked.
    // The first request may get a new token (soon revoked with the session) or a 401.
    let ada = login_as(api, "race@example.com", PASSWORD);
    let replies = at_once(8, |_| try_refresh(api, &ada.refresh));
    let refreshed: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert!(refreshed.len() <= 1, "one refresh at most: {replies:#?}");
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.check_error(401, "unauthorized");
    }
    for reply in refreshed {
        let body = reply.json();
        try_refresh(api, str_of(&body["refresh_token"])).expect_error(401, "unauthorized");
        me_bearer(api, str_of(&body["access_token"])).expect_error(401, "unauthorized");
    }
    assert_signed_out(api, &ada);
}

fn session_timeouts(db: &Database) {
    let idle = Api::start(db, &[("AUTH_SESSION_IDLE_TIMEOUT_SECS", "2")]);
    let ada = register(&idle, "ada@example.com");
    std::thread::sleep(Duration::from_secs(4));
    assert_signed_out(&idle, &ada);
    drop(idle);

    // Eight seconds, so that the use below stays well inside the lifetime on a busy machine.
    let absolute = Api::start(db, &[("AUTH_SESSION_ABSOLUTE_TIMEOUT_SECS", "8")]);
    let grace = register(&absolute, "grace@example.com");
    let list = list_sessions(absolute.get("/api/auth/sessions").bearer(&grace.access));
    let expires_at = int_of(&list[0]["expires_at"]);
    assert_eq!(expires_at - int_of(&list[0]["created_at"]), 8, "{list:?}");
    std::thread::sleep(Duration::from_secs(1));
    me_cookie(&absolute, &grace.cookie).expect(200);
    // Used or not, it ends.
    let past_the_end = u64::try_from(expires_at + 1 - now()).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(past_the_end));
    assert_signed_out(&absolute, &grace);
}

/// Instance `a` signs with KEY; `b` with NEXT_KEY and KEY as a previous key; `c` with NEXT_KEY
/// alone: what `saaskit keys rotate` and `saaskit keys remove` do, on one database.
fn key_rotation(db: &Database) {
    let a = Api::start(db, &[]);
    let ada = register(&a, "ada@example.com");
    let (old_kid, new_kid) = (key_id(&public_key(KEY)), key_id(&public_key(NEXT_KEY)));
    drop(a);

    let next_key = seed(NEXT_KEY);
    let previous = public_key(KEY);
    let b = Api::start(
        db,
        &[
            ("AUTH_SIGNING_KEY", &next_key),
            ("AUTH_PREVIOUS_KEYS", &previous),
        ],
    );
    assert_eq!(me_bearer(&b, &ada.access).expect_json(200), ada.user);
    assert_eq!(jwks_kids(&b), [old_kid, new_kid.clone()].into());
    let grace = register(&b, "grace@example.com");
    assert_eq!(decode(&grace.access).0["kid"], new_kid);
    drop(b);

    let c = Api::start(db, &[("AUTH_SIGNING_KEY", &next_key)]);
    me_bearer(&c, &ada.access).expect_error(401, "unauthorized");
    me_bearer(&c, &grace.access).expect(200);
    assert_eq!(jwks_kids(&c), [new_kid.clone()].into());
    // Sessions and refresh tokens do not depend on the key: a client refreshes its token.
    me_cookie(&c, &ada.cookie).expect(200);
    let refreshed = try_refresh(&c, &ada.refresh).expect_json(200);
    let access = str_of(&refreshed["access_token"]);
    assert_eq!(decode(access).0["kid"], new_kid);
    me_bearer(&c, access).expect(200);
    drop(c);

    // Another audience or issuer: the same key's tokens are refused.
    for (key, claim, value) in [
        ("AUTH_AUDIENCE", "aud", "another-api"),
        ("AUTH_ISSUER", "iss", "someone-else"),
    ] {
        let d = Api::start(db, &[("AUTH_SIGNING_KEY", &next_key), (key, value)]);
        me_bearer(&d, access).expect_error(401, "unauthorized");
        let own = login_as(&d, "grace@example.com", PASSWORD);
        assert_eq!(claims(&own.access)[claim], value);
        me_bearer(&d, &own.access).expect(200);
    }
}

// ---------------------------------------------------------------------------------------------
// Instances, requests and replies

pub(crate) fn on_each_database(scenario: impl Fn(&Database)) {
    for db in [Database::sqlite(), Database::postgres()] {
        scenario(&db);
    }
}

/// `scenario` on a fresh instance with the default test configuration.
fn with_api(scenario: fn(&Api)) -> impl Fn(&Database) {
    move |db| scenario(&Api::start(db, &[]))
}

/// The api: an [`Instance`] of the `api` service.
pub(crate) type Api<'db> = Instance<'db>;

impl<'db> Api<'db> {
    /// The api on `db` with the test configuration (see the module's documentation), changed by
    /// `env`.
    pub(crate) fn start(db: &'db Database, env: &[(&str, &str)]) -> Api<'db> {
        launch_with_test_settings("api", db, env)
    }
}

/// Service `name` on `db` with the test configuration the api uses (its signing key, plain
/// http cookies, no practical rate limit), changed by `env`: the other services run with it
/// too, so that they accept the api's tokens.
pub(crate) fn launch_with_test_settings<'db>(
    name: &'static str,
    db: &'db Database,
    env: &[(&str, &str)],
) -> Instance<'db> {
    let url = db.url();
    let key = seed(KEY);
    let mut all = vec![
        ("DATABASE_URL", url.as_str()),
        ("AUTH_SIGNING_KEY", key.as_str()),
        ("AUTH_COOKIE_SECURE", "false"),
        ("API_CORS_ALLOWED_ORIGINS", ALLOWED_ORIGIN),
        ("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", "10000"),
        ("RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE", "10000"),
        ("RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR", "10000"),
    ];
    // The last value of a key wins.
    all.extend_from_slice(env);
    Instance::launch(name, db, &all)
}

/// `name=value` of a `Set-Cookie` header.
fn cookie_pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap().trim()
}

/// The attributes of a `Set-Cookie` header, lower-cased: `httponly`, `path=/`, ...
fn cookie_attributes(set_cookie: &str) -> BTreeSet<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_lowercase())
        .collect()
}

/// `HttpOnly; SameSite=Lax; Path=/`, `Secure` when `secure`, and no `Domain`.
fn assert_session_cookie(set_cookie: &str, secure: bool) {
    let attributes = cookie_attributes(set_cookie);
    for required in ["httponly", "samesite=lax", "path=/"] {
        assert!(attributes.contains(required), "{required}: {set_cookie}");
    }
    assert_eq!(
        attributes.contains("secure"),
        secure,
        "Secure: {set_cookie}"
    );
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain")),
        "no Domain: {set_cookie}"
    );
}

/// A `Set-Cookie` that deletes the session cookie, with the attributes it was set with.
fn assert_cleared(set_cookie: &str, secure: bool) {
    let (_, value) = cookie_pair(set_cookie).split_once('=').unwrap();
    assert_eq!(value, "", "an empty value: {set_cookie}");
    assert_session_cookie(set_cookie, secure);
    assert!(
        cookie_attributes(set_cookie).contains("max-age=0"),
        "Max-Age=0: {set_cookie}"
    );
}

// ---------------------------------------------------------------------------------------------
// Accounts and credentials

/// What register and login return: the user and the session's three credentials.
pub(crate) struct Session {
    pub(crate) user: Value,
    pub(crate) access: String,
    refresh: String,
    /// `session=<token>`, as a browser sends it back.
    cookie: String,
}

impl Session {
    /// From a successful register or login reply.
    pub(crate) fn from_reply(reply: Reply) -> Session {
        let body = reply.json();
        let fields = [
            "user",
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
        ];
        assert_keys(&body, &fields);
        Session {
            user: body["user"].clone(),
            access: str_of(&body["access_token"]).to_string(),
            refresh: str_of(&body["refresh_token"]).to_string(),
            cookie: cookie_pair(reply.set_cookie("session")).to_string(),
        }
    }

    pub(crate) fn refresh_token(&self) -> &str {
        &self.refresh
    }

    /// `session=<token>`, the api's session cookie as a browser sends it back.
    pub(crate) fn cookie_pair(&self) -> &str {
        &self.cookie
    }

    /// The session id (the access token's `sid`).
    fn sid(&self) -> String {
        str_of(&claims(&self.access)["sid"]).to_string()
    }
}

fn try_register(api: &Api, body: Value) -> Reply {
    api.post("/api/auth/register").json(body).send()
}

pub(crate) fn register(api: &Api, email: &str) -> Session {
    let reply = try_register(api, json!({"email": email, "password": PASSWORD}));
    Session::from_reply(reply.expect(201))
}

fn register_with_name(api: &Api, email: &str, full_name: &str) -> Session {
    let body = json!({"email": email, "password": PASSWORD, "full_name": full_name});
    Session::from_reply(try_register(api, body).expect(201))
}

fn try_login(api: &Api, email: &str, password: &str) -> Reply {
    login_call(api, email, password).send()
}

fn login_call<'a>(api: &'a Api, email: &str, password: &str) -> Call<'a> {
    api.post("/api/auth/login")
        .json(json!({"email": email, "password": password}))
}

pub(crate) fn login_as(api: &Api, email: &str, password: &str) -> Session {
    Session::from_reply(try_login(api, email, password).expect(200))
}

fn try_refresh(api: &Api, refresh_token: &str) -> Reply {
    api.post("/api/auth/refresh")
        .json(json!({"refresh_token": refresh_token}))
        .send()
}

fn me_bearer(api: &Api, token: &str) -> Reply {
    api.get("/api/auth/me").bearer(token).send()
}

fn me_cookie(api: &Api, cookie: &str) -> Reply {
    api.get("/api/auth/me").cookie(cookie).send()
}

/// The session's access token and cookie both work.
fn assert_signed_in(api: &Api, session: &Session) {
    assert_eq!(
        me_bearer(api, &session.access).expect_json(200)["id"],
        session.user["id"]
    );
    assert_eq!(
        me_cookie(api, &session.cookie).expect_json(200)["id"],
        session.user["id"]
    );
}

/// The session has ended: its access token, cookie and refresh token are all refused.
fn assert_signed_out(api: &Api, session: &Session) {
    me_bearer(api, &session.access).expect_error(401, "unauthorized");
    me_cookie(api, &session.cookie).expect_error(401, "unauthorized");
    try_refresh(api, &session.refresh).expect_error(401, "unauthorized");
}

fn list_sessions(call: Call<'_>) -> Vec<Value> {
    let body = call.send().expect_json(200);
    assert_keys(&body, &["sessions"]);
    body["sessions"].as_array().unwrap().clone()
}

fn only_current(list: &[Value]) -> &Value {
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "one current session: {list:?}");
    current[0]
}

fn jwks_kids(api: &Api) -> BTreeSet<String> {
    let jwks = api.get("/.well-known/jwks.json").send().expect_json(200);
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| str_of(&key["kid"]).to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// The `RateLimit-*` headers are there and consistent; returns `RateLimit-Remaining`.
fn assert_rate_limit_headers(reply: &Reply) -> u64 {
    let limit = reply.number_header("RateLimit-Limit");
    let remaining = reply.number_header("RateLimit-Remaining");
    let reset = reply.number_header("RateLimit-Reset");
    assert!(remaining <= limit, "{reply}");
    assert!(reset <= 60, "{reply}");
    remaining
}

fn assert_too_many_requests(reply: &Reply) {
    reply.check_error(429, "too_many_requests");
    let retry_after = reply.number_header("Retry-After");
    assert!((1..=60).contains(&retry_after), "{reply}");
    assert_eq!(assert_rate_limit_headers(reply), 0, "{reply}");
    assert!(reply.number_header("RateLimit-Reset") >= 1, "{reply}");
}

// ---------------------------------------------------------------------------------------------
// Tokens

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|e| panic!("not base64url ({e}): {text}"))
}

pub(crate) fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// `AUTH_SIGNING_KEY` for a key: the seed, base64url.
pub(crate) fn seed(seed: u8) -> String {
    b64(&[seed; 32])
}

/// The public key, base64url, as in `AUTH_PREVIOUS_KEYS` and the JWKS's `x`.
pub(crate) fn public_key(seed: u8) -> String {
    b64(signing_key(seed).verifying_key().as_bytes())
}

/// The RFC 7638 thumbprint of an Ed25519 public key.
pub(crate) fn key_id(public_key: &str) -> String {
    let jwk = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{public_key}"}}"#);
    b64(&Sha256::digest(jwk.as_bytes()))
}

/// The header and claims of a compact JWS.
pub(crate) fn decode(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS has three parts: {token}");
    let json = |part: &str| -> Value {
        serde_json::from_slice(&unb64(part)).unwrap_or_else(|e| panic!("{e}: {token}"))
    };
    (json(parts[0]), json(parts[1]))
}

pub(crate) fn claims(token: &str) -> Value {
    decode(token).1
}

fn claims_of(session: &Session) -> Value {
    claims(&session.access)
}

/// A token with these header and claims, signed with `key`.
pub(crate) fn forge(header: &Value, claims: &Value, key: &SigningKey) -> String {
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", b64(&signature.to_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Values

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

pub(crate) fn str_of(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

pub(crate) fn int_of(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}

/// A user as the api always shows one.
fn assert_user(user: &Value, email: &str, full_name: Value) {
    assert_keys(
        user,
        &[
            "id",
            "email",
            "full_name",
            "role",
            "email_verified",
            "created_at",
        ],
    );
    assert_eq!(user["role"], "customer", "{user}");
    assert_uuid(&user["id"], Some('7'));
    assert_eq!(user["email"], email, "{user}");
    assert_eq!(user["full_name"], full_name, "{user}");
    assert_recent(&user["created_at"]);
}

/// A Unix time in seconds within five minutes of now.
fn assert_recent(value: &Value) {
    let time = int_of(value);
    assert!(
        (time - now()).abs() < 300,
        "{value} is not a Unix time of now"
    );
}

/// A UUID in its hyphenated form (of `version` when given).
fn assert_uuid(value: &Value, version: Option<char>) {
    let text = str_of(value);
    let shape_ok = text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        });
    assert!(shape_ok, "not a UUID: {value}");
    if let Some(version) = version {
        assert_eq!(
            text.as_bytes()[14] as char,
            version,
            "UUID version: {value}"
        );
        assert!(
            "89ab".contains(text.as_bytes()[19] as char),
            "UUID variant: {value}"
        );
    }
}

/// A 256-bit random token: 43 base64url characters.
fn assert_random_token(value: &Value) {
    let text = str_of(value);
    assert_eq!(text.len(), 43, "{value}");
    assert_eq!(unb64(text).len(), 32, "{value}");
}
