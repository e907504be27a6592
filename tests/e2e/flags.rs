//! Feature flags, black box (docs/feature-flags.md): the admin service's JSON API under
//! `/api/admin/flags` and its permission matrix, the audit entries of every change, the api's
//! `GET /api/flags` as customers see it change (enable, rollout 0 and 100, a partial rollout
//! matching the documented hash, overrides both ways), and the panel's pages and forms over
//! plain HTTP.
//!
//! Each scenario runs against a fresh SQLite file and a fresh PostgreSQL database, with the api
//! and the admin service on the same database (`admin::Stack`: a customer registered through the
//! api, a support and an admin account made by `create-admin`, each logged in through the api).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::admin::{AdminService, PanelSession, Stack, with_stack};
use crate::admin_orgs::join;
use crate::api::{Session, on_each_database, register, str_of};
use crate::client::assert_keys;

// ---------------------------------------------------------------------------------------------
// The scenarios, each on SQLite and on PostgreSQL

#[test]
fn admins_create_edit_override_and_delete_flags_and_each_change_is_audited() {
    on_each_database(with_stack(json_api));
}

#[test]
fn flag_endpoints_refuse_anonymous_and_customers_and_support_only_reads() {
    on_each_database(with_stack(permission_matrix));
}

#[test]
fn customers_see_their_flags_follow_the_switch_the_rollout_and_overrides() {
    on_each_database(with_stack(evaluation));
}

#[test]
fn organizations_get_their_overrides_and_rollout_in_requests_switched_to_them() {
    on_each_database(with_stack(organizations));
}

#[test]
fn a_removed_member_stops_getting_the_organizations_flags_at_once() {
    on_each_database(with_stack(removed_member));
}

#[test]
fn the_panel_lists_creates_edits_overrides_and_deletes_flags_with_csrf_checked_forms() {
    on_each_database(with_stack(panel));
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const FLAG_FIELDS: [&str; 9] = [
    "key",
    "description",
    "enabled",
    "rollout_percent",
    "rollout_by",
    "created_at",
    "updated_at",
    "overrides",
    "org_overrides",
];

fn json_api(s: &Stack) {
    let admin = &s.admin;
    let root = &s.root.access;
    let customer_id = str_of(&s.customer.user["id"]).to_string();

    // Create: only the key is needed; a new flag is off, and on for everyone once enabled.
    let created = admin
        .post("/api/admin/flags")
        .bearer(root)
        .json(json!({"key": "new-checkout", "description": "  The one-page checkout  "}))
        .send()
        .expect_json(201);
    assert_keys(&created, &FLAG_FIELDS);
    assert_eq!(created["key"], "new-checkout");
    assert_eq!(created["description"], "The one-page checkout");
    assert_eq!(created["enabled"], false);
    assert_eq!(created["rollout_percent"], 100);
    assert_eq!(created["overrides"], json!([]));

    // The key is taken, the fields are checked, unknown fields are refused.
    admin
        .post("/api/admin/flags")
        .bearer(root)
        .json(json!({"key": "new-checkout"}))
        .send()
        .expect_error(409, "conflict");
    let invalid = admin
        .post("/api/admin/flags")
        .bearer(root)
        .json(
            json!({"key": "New Checkout", "rollout_percent": 101, "description": "x".repeat(501)}),
        )
        .send()
        .expect_error(422, "validation_failed");
    assert_keys(
        &invalid["fields"],
        &["key", "rollout_percent", "description"],
    );
    let long = "a".repeat(65);
    for key in ["", "-x", long.as_str(), "café", "a/b"] {
        let reply = admin
            .post("/api/admin/flags")
            .bearer(root)
            .json(json!({ "key": key }))
            .send();
        assert_keys(
            &reply.check_error(422, "validation_failed")["fields"],
            &["key"],
        );
    }
    admin
        .post("/api/admin/flags")
        .bearer(root)
        .json(json!({"key": "typo", "enabeld": true}))
        .send()
        .expect_error(400, "bad_request");
    admin
        .post("/api/admin/flags")
        .bearer(root)
        .json(json!({"key": "typo", "rollout_percent": "50"}))
        .send()
        .expect_error(400, "bad_request");

    // Read: the list by key, one flag, 404 for none.
    admin
        .post("/api/admin/flags")
        .bearer(root)
        .json(json!({"key": "a.first_flag", "enabled": true, "rollout_percent": 0}))
        .send()
        .expect(201);
    let list = admin
        .get("/api/admin/flags")
        .bearer(root)
        .send()
        .expect_json(200);
    assert_keys(&list, &["flags"]);
    let keys: Vec<&str> = list["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flag| str_of(&flag["key"]))
        .collect();
    assert_eq!(keys, ["a.first_flag", "new-checkout"]);
    let shown = get_flag(admin, root, "new-checkout");
    assert_eq!(shown, created);
    admin
        .get("/api/admin/flags/nothing-here")
        .bearer(root)
        .send()
        .expect_error(404, "not_found");

    // Update: a field left out keeps its value.
    let updated = admin
        .put("/api/admin/flags/new-checkout")
        .bearer(root)
        .json(json!({"enabled": true, "rollout_percent": 25}))
        .send()
        .expect_json(200);
    assert_eq!(updated["enabled"], true);
    assert_eq!(updated["rollout_percent"], 25);
    assert_eq!(updated["description"], "The one-page checkout");
    assert_eq!(updated["created_at"], created["created_at"]);
    let invalid = admin
        .put("/api/admin/flags/new-checkout")
        .bearer(root)
        .json(json!({"rollout_percent": -1}))
        .send()
        .expect_error(422, "validation_failed");
    assert_keys(&invalid["fields"], &["rollout_percent"]);
    admin
        .put("/api/admin/flags/nothing-here")
        .bearer(root)
        .json(json!({"enabled": true}))
        .send()
        .expect_error(404, "not_found");
    assert_eq!(get_flag(admin, root, "new-checkout"), updated);

    // Overrides: set, replace, shown on the flag, removed; 404 for an unknown flag or user.
    let path = format!("/api/admin/flags/new-checkout/overrides/{customer_id}");
    let set = admin
        .put(&path)
        .bearer(root)
        .json(json!({"enabled": true}))
        .send()
        .expect_json(200);
    assert_keys(
        &set,
        &["user_id", "email", "enabled", "created_at", "updated_at"],
    );
    assert_eq!(set["email"], "customer@example.com");
    assert_eq!(set["enabled"], true);
    let replaced = admin
        .put(&path)
        .bearer(root)
        .json(json!({"enabled": false}))
        .send()
        .expect_json(200);
    assert_eq!(replaced["enabled"], false);
    let with_override = get_flag(admin, root, "new-checkout");
    assert_eq!(with_override["overrides"], json!([replaced]));
    admin
        .put("/api/admin/flags/new-checkout/overrides/0193b3c4-0000-7000-8000-000000000000")
        .bearer(root)
        .json(json!({"enabled": true}))
        .send()
        .expect_error(404, "not_found");
    admin
        .put(&format!(
            "/api/admin/flags/nothing-here/overrides/{customer_id}"
        ))
        .bearer(root)
        .json(json!({"enabled": true}))
        .send()
        .expect_error(404, "not_found");
    admin
        .put(&path)
        .bearer(root)
        .json(json!({}))
        .send()
        .expect_error(400, "bad_request");
    admin.delete(&path).bearer(root).send().expect(204);
    admin
        .delete(&path)
        .bearer(root)
        .send()
        .expect_error(404, "not_found");
    assert_eq!(
        get_flag(admin, root, "new-checkout")["overrides"],
        json!([])
    );

    // Delete: the flag and its overrides go; 404 afterwards.
    admin
        .put(&path)
        .bearer(root)
        .json(json!({"enabled": true}))
        .send()
        .expect(200);
    admin
        .delete("/api/admin/flags/new-checkout")
        .bearer(root)
        .send()
        .expect(204);
    admin
        .get("/api/admin/flags/new-checkout")
        .bearer(root)
        .send()
        .expect_error(404, "not_found");
    admin
        .delete("/api/admin/flags/new-checkout")
        .bearer(root)
        .send()
        .expect_error(404, "not_found");
    // A flag of the same key starts afresh, without the old overrides.
    let again = admin
        .post("/api/admin/flags")
        .bearer(root)
        .json(json!({"key": "new-checkout"}))
        .send()
        .expect_json(201);
    assert_eq!(again["overrides"], json!([]));

    // The log has one entry per change (none for the refused requests), by the admin, on the
    // flag, with what changed.
    let entries = flag_entries(s, "new-checkout");
    let mut actions: Vec<&str> = entries.iter().map(|e| str_of(&e["action"])).collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "flag.create",
            "flag.create",
            "flag.delete",
            "flag.override",
            "flag.override",
            "flag.override",
            "flag.override",
            "flag.update",
        ]
    );
    for entry in &entries {
        assert_eq!(entry["actor_email"], "root@example.com", "{entry}");
        assert_eq!(entry["target_type"], "flag", "{entry}");
    }
    let details_of = |action: &str| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| serde_json::from_str(str_of(&e["details"])).unwrap())
            .collect()
    };
    let update = &details_of("flag.update")[0];
    assert_eq!(update["before"]["enabled"], false, "{update}");
    assert_eq!(update["after"]["enabled"], true, "{update}");
    assert_eq!(update["after"]["rollout_percent"], 25, "{update}");
    let overrides = details_of("flag.override");
    assert!(
        overrides
            .iter()
            .all(|d| d["user_id"] == customer_id.as_str()),
        "{overrides:?}"
    );
    let transitions: BTreeMap<String, usize> =
        overrides.iter().fold(BTreeMap::new(), |mut m, d| {
            *m.entry(format!("{} -> {}", d["previous"], d["enabled"]))
                .or_default() += 1;
            m
        });
    assert_eq!(
        transitions,
        BTreeMap::from([
            ("false -> null".to_string(), 1),
            ("null -> true".to_string(), 2),
            ("true -> false".to_string(), 1),
        ])
    );
    let deleted = &details_of("flag.delete")[0];
    assert_eq!(deleted["overrides_deleted"], 1, "{deleted}");
}

/// Every flag endpoint for each kind of caller. Changes are tried by callers who are refused
/// first, so that the admin's calls at the end find the state they expect.
fn permission_matrix(s: &Stack) {
    let admin = &s.admin;
    let root = &s.root.access;
    create_flag(admin, root, json!({"key": "matrix", "enabled": true}));
    let customer_id = str_of(&s.customer.user["id"]).to_string();
    let override_path = format!("/api/admin/flags/matrix/overrides/{customer_id}");
    let reads = ["/api/admin/flags", "/api/admin/flags/matrix"];
    let writes: [(&str, &str, Option<Value>); 5] = [
        ("POST", "/api/admin/flags", Some(json!({"key": "other"}))),
        (
            "PUT",
            "/api/admin/flags/matrix",
            Some(json!({"enabled": false})),
        ),
        ("PUT", &override_path, Some(json!({"enabled": true}))),
        ("DELETE", &override_path, None),
        ("DELETE", "/api/admin/flags/matrix", None),
    ];
    let send = |method: &'static str, path: &str, body: &Option<Value>, token: Option<&str>| {
        let call = admin.call(method, path);
        let call = match token {
            Some(token) => call.bearer(token),
            None => call,
        };
        match body {
            Some(body) => call.json(body.clone()).send(),
            None => call.send(),
        }
    };

    for path in reads {
        admin.get(path).send().expect_error(401, "unauthorized");
        admin
            .get(path)
            .bearer("not-a-token")
            .send()
            .expect_error(401, "unauthorized");
        // The api's tokens are customer-facing, a staff member's too.
        for api_token in [&s.customer.access, &s.support.api.access] {
            admin
                .get(path)
                .bearer(api_token)
                .send()
                .expect_error(403, "staff_token_required");
        }
        admin.get(path).bearer(&s.support.access).send().expect(200);
        admin.get(path).bearer(root).send().expect(200);
    }
    for &(method, path, ref body) in &writes {
        send(method, path, body, None).expect_error(401, "unauthorized");
        send(method, path, body, Some(&s.customer.access))
            .expect_error(403, "staff_token_required");
        send(method, path, body, Some(&s.root.api.access))
            .expect_error(403, "staff_token_required");
        send(method, path, body, Some(&s.support.access)).expect_error(403, "forbidden");
    }
    // Nothing changed, and nothing was logged.
    let flag = get_flag(admin, root, "matrix");
    assert_eq!(flag["enabled"], true);
    assert_eq!(flag["overrides"], json!([]));
    assert!(flag_entries(s, "matrix").len() == 1, "only the creation");
    admin
        .get("/api/admin/flags/other")
        .bearer(root)
        .send()
        .expect_error(404, "not_found");

    let expected = [201, 200, 200, 204, 204];
    for (&(method, path, ref body), status) in writes.iter().zip(expected) {
        send(method, path, body, Some(root)).check(status);
    }

    // The api's `/api/flags` is every signed-in user's, staff included, and nobody else's.
    s.api
        .get("/api/flags")
        .send()
        .expect_error(401, "unauthorized");
    s.api
        .get("/api/flags")
        .bearer("not-a-token")
        .send()
        .expect_error(401, "unauthorized");
    for session in [&s.customer, &s.support.api, &s.root.api] {
        let flags = flags_of(s, session);
        assert_eq!(flags, BTreeMap::from([("other".to_string(), false)]));
    }
}

fn evaluation(s: &Stack) {
    let admin = &s.admin;
    let root = &s.root.access;
    let customer = &s.customer;
    let other = register(&s.api, "other@example.com");
    assert!(flags_of(s, customer).is_empty(), "no flag yet");
    // The session cookie works as well as the token.
    let by_cookie = s
        .api
        .get("/api/flags")
        .cookie(customer.cookie_pair())
        .send()
        .expect_json(200);
    assert_eq!(by_cookie, json!({"flags": {}}));

    // Disabled: off. Enabled for everyone: on. Rolled out to nobody: off.
    create_flag(admin, root, json!({"key": "beta"}));
    assert_eq!(flag_of(s, customer, "beta"), Some(false));
    update_flag(admin, root, "beta", json!({"enabled": true}));
    assert_eq!(flag_of(s, customer, "beta"), Some(true));
    assert_eq!(flag_of(s, &other, "beta"), Some(true));
    update_flag(admin, root, "beta", json!({"rollout_percent": 0}));
    assert_eq!(flag_of(s, customer, "beta"), Some(false));
    assert_eq!(flag_of(s, &other, "beta"), Some(false));

    // An override on wins over a rollout of 0 and over a disabled flag, for its user only.
    let customer_override = format!(
        "/api/admin/flags/beta/overrides/{}",
        str_of(&customer.user["id"])
    );
    admin
        .put(&customer_override)
        .bearer(root)
        .json(json!({"enabled": true}))
        .send()
        .expect(200);
    assert_eq!(flag_of(s, customer, "beta"), Some(true));
    assert_eq!(flag_of(s, &other, "beta"), Some(false));
    update_flag(admin, root, "beta", json!({"enabled": false}));
    assert_eq!(flag_of(s, customer, "beta"), Some(true));
    assert_eq!(flag_of(s, &other, "beta"), Some(false));

    // An override off wins over a flag on for everyone.
    update_flag(
        admin,
        root,
        "beta",
        json!({"enabled": true, "rollout_percent": 100}),
    );
    admin
        .put(&customer_override)
        .bearer(root)
        .json(json!({"enabled": false}))
        .send()
        .expect(200);
    assert_eq!(flag_of(s, customer, "beta"), Some(false));
    assert_eq!(flag_of(s, &other, "beta"), Some(true));
    // Without the override, the rule decides again.
    admin
        .delete(&customer_override)
        .bearer(root)
        .send()
        .expect(204);
    assert_eq!(flag_of(s, customer, "beta"), Some(true));

    // A partial rollout: each user is in when their bucket, SHA-256("<key>:<user id>")'s first
    // eight bytes big-endian modulo 100, is below the percentage; raising it only adds users.
    let more: Vec<Session> = (0..10)
        .map(|n| register(&s.api, &format!("rollout-{n}@example.com")))
        .collect();
    let users: Vec<&Session> = [customer, &other].into_iter().chain(&more).collect();
    create_flag(
        admin,
        root,
        json!({"key": "gradual", "enabled": true, "rollout_percent": 30}),
    );
    let mut previous: Vec<bool> = vec![false; users.len()];
    for percent in [30, 50, 80] {
        update_flag(admin, root, "gradual", json!({"rollout_percent": percent}));
        let now: Vec<bool> = users
            .iter()
            .map(|user| {
                let on = flag_of(s, user, "gradual").unwrap();
                let id = str_of(&user.user["id"]);
                assert_eq!(
                    on,
                    bucket("gradual", id) < percent,
                    "user {id} at {percent}%"
                );
                // The same answer on every request.
                assert_eq!(flag_of(s, user, "gradual"), Some(on));
                on
            })
            .collect();
        for (was, is) in previous.iter().zip(&now) {
            assert!(!was || *is, "a user left the rollout at {percent}%");
        }
        previous = now;
    }

    // Every flag, by key, and a deleted flag is gone.
    let all = flags_of(s, customer);
    assert_eq!(
        all.keys().map(String::as_str).collect::<Vec<_>>(),
        ["beta", "gradual"]
    );
    admin
        .delete("/api/admin/flags/beta")
        .bearer(root)
        .send()
        .expect(204);
    assert_eq!(flag_of(s, customer, "beta"), None);
}

fn panel(s: &Stack) {
    let admin = &s.admin;
    let root = PanelSession::sign_in(admin, "root@example.com");
    let support = PanelSession::sign_in(admin, "support@example.com");

    // The list, linked from the navigation; the form for a new flag is the admin's only.
    let anonymous = admin.get("/admin/flags").send();
    anonymous.check(401);
    let empty = root.get(admin, "/admin/flags").expect(200);
    assert!(empty.body.contains(r#"href="/admin/flags""#), "{empty}");
    assert!(empty.body.contains(r#"id="create-flag""#), "{empty}");
    let support_list = support.get(admin, "/admin/flags").expect(200);
    assert!(!support_list.body.contains(r#"id="create-flag""#));

    // Create: the checkbox is sent only when ticked.
    let created = root.submit(
        admin,
        "/admin/flags",
        &[
            ("key", "dark-mode"),
            ("description", "The dark theme"),
            ("rollout_percent", "100"),
        ],
    );
    created.check(303);
    assert_eq!(
        created.header("location"),
        Some("/admin/flags/dark-mode?notice=saved")
    );
    let page = root
        .get(admin, "/admin/flags/dark-mode?notice=saved")
        .expect(200);
    assert!(page.body.contains("Saved."), "{page}");
    assert!(page.body.contains(r#"id="flag-enabled""#), "{page}");
    assert!(!flag_checkbox_checked(&page.body), "{page}");
    assert!(page.body.contains(r#"id="save-flag""#), "{page}");
    assert!(page.body.contains(r#"id="delete-flag""#), "{page}");
    let support_page = support.get(admin, "/admin/flags/dark-mode").expect(200);
    assert!(!support_page.body.contains(r#"id="save-flag""#));
    assert!(!support_page.body.contains(r#"id="delete-flag""#));
    assert!(!support_page.body.contains(r#"id="add-override""#));

    // Invalid input is refused with the field named; the flag exists once.
    let invalid = root.submit(
        admin,
        "/admin/flags",
        &[("key", "Dark Mode"), ("rollout_percent", "lots")],
    );
    invalid.check(422);
    assert!(
        invalid.body.contains("key") && invalid.body.contains("rollout_percent"),
        "{invalid}"
    );
    root.submit(
        admin,
        "/admin/flags",
        &[("key", "dark-mode"), ("rollout_percent", "100")],
    )
    .check(409);

    // Edit: enable, roll out to 40%.
    root.submit(
        admin,
        "/admin/flags/dark-mode",
        &[
            ("description", "The dark theme, for some"),
            ("enabled", "on"),
            ("rollout_percent", "40"),
        ],
    )
    .check(303);
    let flag = get_flag(admin, &s.root.access, "dark-mode");
    assert_eq!(flag["enabled"], true);
    assert_eq!(flag["rollout_percent"], 40);
    assert_eq!(flag["description"], "The dark theme, for some");
    let page = root.get(admin, "/admin/flags/dark-mode").expect(200);
    assert!(flag_checkbox_checked(&page.body), "{page}");

    // Overrides by email or by id; an unknown user is named as the problem.
    let customer_id = str_of(&s.customer.user["id"]).to_string();
    let support_id = str_of(&s.support.user["id"]).to_string();
    root.submit(
        admin,
        "/admin/flags/dark-mode/overrides",
        &[("user", "Customer@Example.com"), ("enabled", "off")],
    )
    .check(303);
    root.submit(
        admin,
        "/admin/flags/dark-mode/overrides",
        &[("user", &support_id), ("enabled", "on")],
    )
    .check(303);
    let unknown = root.submit(
        admin,
        "/admin/flags/dark-mode/overrides",
        &[("user", "nobody@example.com"), ("enabled", "on")],
    );
    unknown.check(422);
    assert!(
        unknown.body.contains("no account has this email or id"),
        "{unknown}"
    );
    let overrides = get_flag(admin, &s.root.access, "dark-mode")["overrides"].clone();
    let forced: BTreeMap<&str, bool> = overrides
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (str_of(&o["email"]), o["enabled"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        forced,
        BTreeMap::from([
            ("customer@example.com", false),
            ("support@example.com", true)
        ])
    );
    assert_eq!(flag_of(s, &s.customer, "dark-mode"), Some(false));
    assert_eq!(flag_of(s, &s.support.api, "dark-mode"), Some(true));
    let page = root.get(admin, "/admin/flags/dark-mode").expect(200);
    assert!(
        page.body
            .contains(&format!(r#"id="remove-override-{customer_id}""#)),
        "{page}"
    );

    // The customer's page has a section with the flag as it is for them, and why.
    let customer_page = support
        .get(admin, &format!("/admin/customers/{customer_id}"))
        .expect(200);
    assert!(
        customer_page.body.contains(r#"id="customer-flags""#),
        "{customer_page}"
    );
    assert!(
        customer_page.body.contains("overridden off"),
        "{customer_page}"
    );

    // Support staff and forms without their token change nothing.
    support
        .submit(
            admin,
            "/admin/flags/dark-mode",
            &[("enabled", "on"), ("rollout_percent", "0")],
        )
        .check(403);
    support
        .submit(admin, "/admin/flags/dark-mode/delete", &[])
        .check(403);
    let no_token = admin
        .post("/admin/flags/dark-mode/delete")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", &admin.base)
        .cookie(&root.cookie)
        .raw_body("")
        .send();
    no_token.check(403);
    let other_token = admin
        .post("/admin/flags/dark-mode/delete")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", &admin.base)
        .cookie(&root.cookie)
        .raw_body(&format!("csrf={}", support.csrf))
        .send();
    other_token.check(403);
    assert_eq!(
        get_flag(admin, &s.root.access, "dark-mode")["rollout_percent"],
        40
    );

    // Remove an override, then the flag.
    let removed = root.submit(
        admin,
        &format!("/admin/flags/dark-mode/overrides/{customer_id}/delete"),
        &[],
    );
    removed.check(303);
    assert_eq!(
        removed.header("location"),
        Some("/admin/flags/dark-mode?notice=deleted")
    );
    let deleted = root.submit(admin, "/admin/flags/dark-mode/delete", &[]);
    deleted.check(303);
    assert_eq!(
        deleted.header("location"),
        Some("/admin/flags?notice=deleted")
    );
    root.get(admin, "/admin/flags/dark-mode").check(404);
    let list = root.get(admin, "/admin/flags?notice=deleted").expect(200);
    assert!(list.body.contains("Deleted."), "{list}");
    assert!(!list.body.contains("dark-mode"), "{list}");

    // Each change made in the panel is in the log, by the admin who made it.
    let mut actions: Vec<String> = flag_entries(s, "dark-mode")
        .iter()
        .map(|e| {
            assert_eq!(e["actor_email"], "root@example.com", "{e}");
            str_of(&e["action"]).to_string()
        })
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "flag.create",
            "flag.delete",
            "flag.override",
            "flag.override",
            "flag.override",
            "flag.update",
        ]
    );
}

/// A member's access token switched to organization `org_id` (`POST /api/orgs/{org}/switch`):
/// the request's active organization.
fn switched(s: &Stack, session: &Session, org_id: &str) -> String {
    let token = s
        .api
        .post(&format!("/api/orgs/{org_id}/switch"))
        .bearer(&session.access)
        .send()
        .expect_json(200);
    str_of(&token["access_token"]).to_string()
}

fn new_org(s: &Stack, owner: &Session, name: &str) -> String {
    let created = s
        .api
        .post("/api/orgs")
        .bearer(&owner.access)
        .json(json!({ "name": name }))
        .send()
        .expect_json(201);
    str_of(&created["id"]).to_string()
}

fn organizations(s: &Stack) {
    let admin = &s.admin;
    let root = &s.root.access;
    let customer = &s.customer;
    let team = new_org(s, customer, "Team");
    let other = new_org(s, customer, "Other team");
    let in_team = switched(s, customer, &team);
    let in_other = switched(s, customer, &other);

    // Rolled out by organization: off without one, the same for every member of one.
    let created = create_flag(
        admin,
        root,
        json!({"key": "team-beta", "enabled": true, "rollout_by": "org"}),
    );
    assert_eq!(created["rollout_by"], "org");
    assert_eq!(created["org_overrides"], json!([]));
    assert_eq!(flag_of(s, customer, "team-beta"), Some(false));
    assert_eq!(flag_with(s, &in_team, "team-beta"), Some(true));
    update_flag(admin, root, "team-beta", json!({"rollout_percent": 0}));
    assert_eq!(flag_with(s, &in_team, "team-beta"), Some(false));

    // An organization's override decides for it only, in requests switched to it.
    let team_override = format!("/api/admin/flags/team-beta/org-overrides/{team}");
    let saved = admin
        .put(&team_override)
        .bearer(root)
        .json(json!({"enabled": true}))
        .send()
        .expect_json(200);
    assert_keys(&saved, &["org_id", "enabled", "created_at", "updated_at"]);
    assert_eq!(saved["org_id"], team.as_str());
    assert_eq!(flag_with(s, &in_team, "team-beta"), Some(true));
    assert_eq!(flag_with(s, &in_other, "team-beta"), Some(false));
    assert_eq!(flag_of(s, customer, "team-beta"), Some(false));
    // It wins over a disabled flag; a user's own override wins over it.
    update_flag(admin, root, "team-beta", json!({"enabled": false}));
    assert_eq!(flag_with(s, &in_team, "team-beta"), Some(true));
    let user_override = format!(
        "/api/admin/flags/team-beta/overrides/{}",
        str_of(&customer.user["id"])
    );
    admin
        .put(&user_override)
        .bearer(root)
        .json(json!({"enabled": false}))
        .send()
        .expect(200);
    assert_eq!(flag_with(s, &in_team, "team-beta"), Some(false));
    admin.delete(&user_override).bearer(root).send().expect(204);
    let shown = get_flag(admin, root, "team-beta");
    assert_eq!(shown["org_overrides"], json!([saved]));

    // Refusals: support may not, an id with spaces is not one, an unknown flag is 404, and
    // removing an override that does not exist is 404.
    admin
        .put(&team_override)
        .bearer(&s.support.access)
        .json(json!({"enabled": true}))
        .send()
        .expect_error(403, "forbidden");
    let invalid = admin
        .put("/api/admin/flags/team-beta/org-overrides/not%20an%20id")
        .bearer(root)
        .json(json!({"enabled": true}))
        .send()
        .expect_error(422, "validation_failed");
    assert_keys(&invalid["fields"], &["org_id"]);
    admin
        .put(&format!("/api/admin/flags/nope/org-overrides/{team}"))
        .bearer(root)
        .json(json!({"enabled": true}))
        .send()
        .expect_error(404, "not_found");
    admin
        .delete(&format!("/api/admin/flags/team-beta/org-overrides/{other}"))
        .bearer(root)
        .send()
        .expect_error(404, "not_found");
    admin.delete(&team_override).bearer(root).send().expect(204);
    assert_eq!(flag_with(s, &in_team, "team-beta"), Some(false));

    // The audit entries of the organization's override: set, then removed.
    let org_entries: Vec<Value> = flag_entries(s, "team-beta")
        .iter()
        .filter(|e| e["action"] == "flag.org_override")
        .map(|e| serde_json::from_str(str_of(&e["details"])).unwrap())
        .collect();
    assert_eq!(
        org_entries,
        [
            json!({"org_id": team, "previous": true, "enabled": null}),
            json!({"org_id": team, "previous": null, "enabled": true}),
        ]
    );

    // A partial rollout by organization: each organization is in when its bucket,
    // SHA-256("<key>:<org id>")'s first eight bytes modulo 100, is below the percentage, for
    // every member alike; raising it only adds organizations.
    let member = register(&s.api, "member@example.com");
    let orgs: Vec<String> = (0..8)
        .map(|n| {
            let org = new_org(s, customer, &format!("Rollout {n}"));
            join(s.db, &org, str_of(&member.user["id"]), "member");
            org
        })
        .collect();
    let tokens: Vec<(String, String)> = orgs
        .iter()
        .map(|org| (switched(s, customer, org), switched(s, &member, org)))
        .collect();
    update_flag(
        admin,
        root,
        "team-beta",
        json!({"enabled": true, "rollout_percent": 30}),
    );
    let mut previous = vec![false; orgs.len()];
    for percent in [30, 60, 90] {
        update_flag(
            admin,
            root,
            "team-beta",
            json!({"rollout_percent": percent}),
        );
        let now: Vec<bool> = orgs
            .iter()
            .zip(&tokens)
            .map(|(org, (owner, member))| {
                let on = flag_with(s, owner, "team-beta").unwrap();
                assert_eq!(
                    on,
                    bucket("team-beta", org) < percent,
                    "{org} at {percent}%"
                );
                assert_eq!(
                    flag_with(s, member, "team-beta"),
                    Some(on),
                    "{org}'s member"
                );
                on
            })
            .collect();
        for (was, is) in previous.iter().zip(&now) {
            assert!(
                !was || *is,
                "an organization left the rollout at {percent}%"
            );
        }
        previous = now;
    }

    // The panel: the rule's form says what the rollout splits; organizations' overrides are
    // added and removed with CSRF-checked forms.
    let panel = PanelSession::sign_in(admin, "root@example.com");
    let page = panel.get(admin, "/admin/flags/team-beta").expect(200);
    assert!(
        page.body.contains(r#"<option value="org" selected>"#),
        "{page}"
    );
    assert!(
        page.body.contains("No organization has an override."),
        "{page}"
    );
    panel
        .post(
            admin,
            "/admin/flags/team-beta/org-overrides",
            &format!("org_id={team}&enabled=on"),
        )
        .check(403);
    let added = panel.submit(
        admin,
        "/admin/flags/team-beta/org-overrides",
        &[("org_id", team.as_str()), ("enabled", "on")],
    );
    added.check(303);
    let page = panel.get(admin, "/admin/flags/team-beta").expect(200);
    assert!(
        page.body.contains(&format!(r#"id="org-override-{team}""#)),
        "{page}"
    );
    assert_eq!(flag_with(s, &in_team, "team-beta"), Some(true));
    panel
        .submit(
            admin,
            "/admin/flags/team-beta/org-overrides",
            &[("org_id", ""), ("enabled", "on")],
        )
        .check(422);
    panel
        .submit(
            admin,
            &format!("/admin/flags/team-beta/org-overrides/{team}/delete"),
            &[],
        )
        .check(303);
    let page = panel.get(admin, "/admin/flags/team-beta").expect(200);
    assert!(
        page.body.contains("No organization has an override."),
        "{page}"
    );
    // Back to a rollout by user through the rule's form.
    panel
        .submit(
            admin,
            "/admin/flags/team-beta",
            &[
                ("enabled", "on"),
                ("rollout_percent", "100"),
                ("rollout_by", "user"),
            ],
        )
        .check(303);
    assert_eq!(get_flag(admin, root, "team-beta")["rollout_by"], "user");
    assert_eq!(flag_of(s, customer, "team-beta"), Some(true));
    panel
        .submit(
            admin,
            "/admin/flags/team-beta",
            &[("rollout_percent", "100"), ("rollout_by", "team")],
        )
        .check(422);
}

/// A member's access token switched to an organization keeps its `org_id` claim after they are
/// removed, up to its expiry: `GET /api/flags` checks the membership on each request, so the
/// organization's override and its rollout stop applying to them with the removal, while its
/// remaining member keeps both.
fn removed_member(s: &Stack) {
    let admin = &s.admin;
    let root = &s.root.access;
    let owner = &s.customer;
    let team = new_org(s, owner, "Team");
    let member = register(&s.api, "member@example.com");
    let member_id = str_of(&member.user["id"]).to_string();
    join(s.db, &team, &member_id, "member");
    let in_team = switched(s, &member, &team);
    let owner_in_team = switched(s, owner, &team);

    // One flag on for the organization by its override, one by its rollout (100 %).
    create_flag(
        admin,
        root,
        json!({"key": "team-override", "enabled": false, "rollout_by": "org"}),
    );
    admin
        .put(&format!(
            "/api/admin/flags/team-override/org-overrides/{team}"
        ))
        .bearer(root)
        .json(json!({"enabled": true}))
        .send()
        .expect(200);
    create_flag(
        admin,
        root,
        json!({"key": "team-rollout", "enabled": true, "rollout_by": "org", "rollout_percent": 100}),
    );
    let both_on = BTreeMap::from([
        ("team-override".to_owned(), true),
        ("team-rollout".to_owned(), true),
    ]);
    assert_eq!(flags_with(s, &in_team), both_on);

    s.api
        .delete(&format!("/api/orgs/{team}/members/{member_id}"))
        .bearer(&owner.access)
        .send()
        .expect(204);
    // The same token, at once: the flags of no organization (off, both rolled out by
    // organization), as for their unswitched token.
    let both_off = BTreeMap::from([
        ("team-override".to_owned(), false),
        ("team-rollout".to_owned(), false),
    ]);
    assert_eq!(flags_with(s, &in_team), both_off);
    assert_eq!(flags_of(s, &member), both_off);
    assert_eq!(flags_with(s, &owner_in_team), both_on);

    // Back in the organization, the token counts again: the claim is checked, not spent.
    join(s.db, &team, &member_id, "member");
    assert_eq!(flags_with(s, &in_team), both_on);
}

// ---------------------------------------------------------------------------------------------
// Requests

fn create_flag(admin: &AdminService, token: &str, body: Value) -> Value {
    admin
        .post("/api/admin/flags")
        .bearer(token)
        .json(body)
        .send()
        .expect_json(201)
}

fn update_flag(admin: &AdminService, token: &str, key: &str, body: Value) -> Value {
    admin
        .put(&format!("/api/admin/flags/{key}"))
        .bearer(token)
        .json(body)
        .send()
        .expect_json(200)
}

fn get_flag(admin: &AdminService, token: &str, key: &str) -> Value {
    admin
        .get(&format!("/api/admin/flags/{key}"))
        .bearer(token)
        .send()
        .expect_json(200)
}

/// `GET /api/flags` for `session`: `key → on`.
fn flags_of(s: &Stack, session: &Session) -> BTreeMap<String, bool> {
    flags_with(s, &session.access)
}

/// `GET /api/flags` with the access token `token`: `key → on`.
fn flags_with(s: &Stack, token: &str) -> BTreeMap<String, bool> {
    let body = s
        .api
        .get("/api/flags")
        .bearer(token)
        .send()
        .expect_json(200);
    assert_keys(&body, &["flags"]);
    body["flags"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, on)| {
            let on = on.as_bool().unwrap_or_else(|| panic!("{key}: {on}"));
            (key.clone(), on)
        })
        .collect()
}

fn flag_of(s: &Stack, session: &Session, key: &str) -> Option<bool> {
    flag_with(s, &session.access, key)
}

fn flag_with(s: &Stack, token: &str, key: &str) -> Option<bool> {
    flags_with(s, token).get(key).copied()
}

/// The audit entries of flag `key`, as support sees them.
fn flag_entries(s: &Stack, key: &str) -> Vec<Value> {
    let page = s
        .admin
        .get(&format!(
            "/api/admin/audit?action=flag.&target={key}&per_page=100"
        ))
        .bearer(&s.support.access)
        .send()
        .expect_json(200);
    page["items"].as_array().unwrap().clone()
}

/// The documented rollout bucket of `user_id` for flag `key`, computed here from its
/// definition.
fn bucket(key: &str, user_id: &str) -> u64 {
    let digest = Sha256::digest(format!("{key}:{user_id}").as_bytes());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 100
}

/// Whether the flag page's `enabled` checkbox is ticked.
fn flag_checkbox_checked(html: &str) -> bool {
    let start = html.find(r#"id="flag-enabled""#).expect("the checkbox");
    let tag = &html[start..];
    let tag = &tag[..tag.find('>').unwrap()];
    tag.contains("checked")
}
