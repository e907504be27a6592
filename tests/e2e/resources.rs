//! Resources made by `saaskit generate resource` (docs/generate.md), black box over HTTP on SQLite
//! and PostgreSQL: the three resources of `common::RESOURCES` on the default workspace (rows owned
//! by organizations), which must build clippy-clean (with those of `LONG_RESOURCES` beside them), with a committed OpenAPI document that
//! `openapi --check` finds right and tests of their own that pass; then create, list with
//! filters, sorting and pages, get, partial update, delete, references, validation, and another
//! organization's rows answering 404; and Schemathesis on their endpoints, which finds no 5xx and
//! no answer outside the document. The admin service's pages of the resources (every owner's
//! rows, searchable, and a row's page) show them to staff and refuse anyone else; once in
//! Chromium too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::admin::PanelSession;
use crate::api::{PASSWORD, on_each_database, register, str_of};
use crate::browser::Browser;
use crate::client::Instance;
use crate::common::{LONG_RESOURCES, RESOURCES, saaskit};
use crate::openapi::fuzz;
use crate::support::{
    Database, cargo_beside, cargo_beside_with, fresh_workspace, lint_beside, shared_target_dir,
};

#[test]
fn generated_resources_build_clippy_clean_and_serve_their_owners_only() {
    let workspace = workspace_with_resources();
    for db in [Database::sqlite(), Database::postgres()] {
        // The committed document, with the parts `generate` wrote, is the one the api serves.
        let check = Command::new(&workspace.api)
            .args(["openapi", "--check"])
            .current_dir(&workspace.root)
            .env("DATABASE_URL", db.url())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "openapi --check on {}: {}",
            db.kind(),
            String::from_utf8_lossy(&check.stderr)
        );
        let api = workspace.launch(&db, &workspace.api, "api");
        scenario(&api);
        let admin = workspace.launch(&db, &workspace.admin, "admin");
        back_office(&workspace.root, &workspace.admin, &api, &admin);
        // Once: the pages as a browser shows them.
        if db.kind() == "sqlite" {
            in_a_browser(&admin);
        }
    }
}

/// The tests `generate` wrote into the workspace (`crates/core/src/<resource>/tests.rs`) pass, on
/// a SQLite file of their own and on PostgreSQL.
#[test]
fn the_tests_generated_in_the_workspace_pass_on_both_databases() {
    let workspace = workspace_with_resources();
    let package = format!(
        "{}-core",
        workspace.root.file_name().unwrap().to_string_lossy()
    );
    let all = || RESOURCES.iter().chain(LONG_RESOURCES);
    let filters: Vec<String> = all().map(|spec| format!("{}::tests::", spec[0])).collect();
    let mut args = vec!["test", "-p", &package, "--lib", "--"];
    args.extend(filters.iter().map(String::as_str));
    let postgres = Database::postgres();
    let url = postgres.url();
    for env in [vec![], vec![("TEST_DATABASE_URL", url.as_str())]] {
        let output = cargo_beside_with(&workspace.root, &workspace.target, &args, &env);
        // Two tests a resource: a filter that matched none would pass without testing anything.
        let expected = format!("test result: ok. {} passed", 2 * all().count());
        assert!(output.contains(&expected), "{env:?}:\n{output}");
    }
}

/// Schemathesis (tests/e2e/openapi.rs) on the resources' operations, with a customer's token:
/// `{org}` is the customer's organization and each `{id}` a row of theirs, so that the fuzzer
/// reaches the handlers rather than the membership check's 404.
#[test]
fn schemathesis_finds_no_server_error_on_the_generated_endpoints() {
    let workspace = workspace_with_resources();
    on_each_database(|db| {
        let api = workspace.launch(db, &workspace.api, "api");
        let ada = register(&api, "ada@example.com");
        let org = personal_org(&api, &ada.access);
        let base = format!("/api/orgs/{org}");
        let project = create(
            &api,
            &ada.access,
            &format!("{base}/projects"),
            json!({"name": "Apollo", "archived": false}),
        );
        let label = json!({"title": "red", "color": "red", "hits": 1});
        let label = create(&api, &ada.access, &format!("{base}/labels"), label);
        let task = json!({
            "title": "t", "done": false, "status": "open", "points": 1, "data": {},
            "project_id": project["id"],
        });
        let task = create(&api, &ada.access, &format!("{base}/tasks"), task);
        let mut config = format!("[parameters]\n\"path.org\" = \"{org}\"\n");
        for (plural, row) in [("projects", project), ("labels", label), ("tasks", task)] {
            config += &format!(
                "\n[[operations]]\ninclude-path = \"/api/orgs/{{org}}/{plural}/{{id}}\"\n\
                 parameters = {{ \"path.id\" = {} }}\n",
                row["id"]
            );
        }
        let tags = ["--include-tag-regex", "^(projects|labels|tasks)$"];
        fuzz(&api, &format!("Bearer {}", ada.access), &config, &tags);
    });
}

fn scenario(api: &Instance) {
    let ada = register(api, "ada@example.com");
    let bob = register(api, "bob@example.com");
    let ada_org = personal_org(api, &ada.access);
    let bob_org = personal_org(api, &bob.access);
    let projects = format!("/api/orgs/{ada_org}/projects");
    let tasks = format!("/api/orgs/{ada_org}/tasks");

    let apollo = create(
        api,
        &ada.access,
        &projects,
        json!({"name": "Apollo", "archived": false, "budget": 2.5, "starts": "2026-12-06"}),
    );
    assert_eq!(apollo["budget"], 2.5);
    assert_eq!(apollo["summary"], Value::Null);
    let gemini = create(
        api,
        &ada.access,
        &projects,
        json!({"name": "Gemini", "archived": true}),
    );
    // Unique within the organization.
    post(
        api,
        &ada.access,
        &projects,
        json!({"name": "Apollo", "archived": true}),
    )
    .expect_error(409, "conflict");
    // Each invalid field is named.
    let invalid = post(
        api,
        &ada.access,
        &projects,
        json!({"name": " ", "archived": false, "starts": "2026-02-30"}),
    )
    .expect_error(422, "validation_failed");
    let fields = &invalid["fields"];
    assert!(
        fields["name"].is_string() && fields["starts"].is_string(),
        "{invalid}"
    );

    let apollo_id = str_of(&apollo["id"]).to_owned();
    let mut ids = Vec::new();
    for (n, status) in ["open", "in_progress", "done", "open"].iter().enumerate() {
        let task = create(
            api,
            &ada.access,
            &tasks,
            json!({
                "title": format!("task {n}"), "done": n % 2 == 1, "status": status,
                "points": n, "data": {"n": n}, "project_id": apollo_id,
            }),
        );
        assert_eq!(task["data"]["n"], n);
        ids.push(str_of(&task["id"]).to_owned());
    }
    // Filters by each kind of field, a sort, pages.
    let open = list(
        api,
        &ada.access,
        &format!("{tasks}?status=open&sort=-points"),
    );
    let points: Vec<i64> = open["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["points"].as_i64().unwrap())
        .collect();
    assert_eq!(points, [3, 0]);
    assert_eq!(
        list(api, &ada.access, &format!("{tasks}?done=true"))["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let first = list(api, &ada.access, &format!("{tasks}?limit=3&sort=title"));
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    assert_eq!(first["next_offset"], 3);
    let rest = list(
        api,
        &ada.access,
        &format!("{tasks}?limit=3&offset=3&sort=title"),
    );
    assert_eq!(rest["items"][0]["title"], "task 3");
    assert_eq!(rest["next_offset"], Value::Null);
    get(api, &ada.access, &format!("{tasks}?sort=data")).expect_error(422, "validation_failed");
    get(api, &ada.access, &format!("{tasks}?limit=0")).expect_error(422, "validation_failed");
    get(api, &ada.access, &format!("{tasks}?points=abc")).expect_error(400, "bad_request");

    // A partial update changes only what it names; `null` clears an optional field.
    let task = format!("{tasks}/{}", ids[0]);
    let changed = patch(
        api,
        &ada.access,
        &task,
        json!({"done": true, "due": "2027-01-31"}),
    )
    .expect_json(200);
    assert_eq!(
        (changed["done"].clone(), changed["title"].clone()),
        (json!(true), json!("task 0"))
    );
    let cleared = patch(api, &ada.access, &task, json!({"due": null})).expect_json(200);
    assert_eq!(cleared["due"], Value::Null);
    assert_eq!(get(api, &ada.access, &task).expect_json(200)["done"], true);

    // Another organization's rows: 404 through its own path and through the owner's.
    let bobs_view = format!("/api/orgs/{bob_org}/tasks/{}", ids[0]);
    get(api, &bob.access, &bobs_view).expect_error(404, "not_found");
    get(api, &bob.access, &task).expect_error(404, "not_found");
    patch(api, &bob.access, &bobs_view, json!({"done": false})).expect_error(404, "not_found");
    api.delete(&bobs_view)
        .bearer(&bob.access)
        .send()
        .expect_error(404, "not_found");
    assert_eq!(
        list(api, &bob.access, &format!("/api/orgs/{bob_org}/tasks"))["items"],
        json!([])
    );
    // A reference to another organization's row is refused as a missing one.
    let stolen = post(api, &bob.access, &format!("/api/orgs/{bob_org}/tasks"), json!({
        "title": "mine", "done": false, "status": "open", "points": 1, "data": null, "project_id": apollo_id,
    }))
    .expect_error(422, "validation_failed");
    assert!(stolen["fields"]["project_id"].is_string(), "{stolen}");

    // A referenced project cannot go; once its tasks are gone, it can.
    let apollo_path = format!("{projects}/{apollo_id}");
    api.delete(&apollo_path)
        .bearer(&ada.access)
        .send()
        .expect_error(409, "conflict");
    for id in &ids {
        api.delete(&format!("{tasks}/{id}"))
            .bearer(&ada.access)
            .send()
            .expect(204);
    }
    api.delete(&apollo_path)
        .bearer(&ada.access)
        .send()
        .expect(204);
    get(api, &ada.access, &apollo_path).expect_error(404, "not_found");
    let gemini_path = format!("{projects}/{}", str_of(&gemini["id"]));
    assert_eq!(
        get(api, &ada.access, &gemini_path).expect_json(200)["archived"],
        true
    );

    // The third resource: every remaining type, optional ones left out then set.
    let labels = format!("/api/orgs/{ada_org}/labels");
    let label = create(
        api,
        &ada.access,
        &labels,
        json!({"title": "red", "color": "red", "hits": 9_000_000_000_i64}),
    );
    assert_eq!(label["hits"], 9_000_000_000_i64);
    let label_path = format!("{labels}/{}", str_of(&label["id"]));
    let set = patch(api, &ada.access, &label_path, json!({
        "weight": -3, "seen_at": 1_765_000_000, "token": "0192e0a0-0000-7000-8000-000000000000", "extra": [1, "two"],
    }))
    .expect_json(200);
    assert_eq!(set["extra"], json!([1, "two"]));
    patch(api, &ada.access, &label_path, json!({"token": "nope"}))
        .expect_error(422, "validation_failed");
    patch(api, &ada.access, &label_path, json!({"color": "mauve"}))
        .expect_error(400, "bad_request");
}

/// The admin pages of the resources: staff see every owner's rows, searched by their text
/// fields, and a row's page with its owner; anonymous requests and customers' tokens are
/// refused.
fn back_office(root: &Path, admin_binary: &Path, api: &Instance, admin: &Instance) {
    let cleo = register(api, "cleo@example.com");
    let cleo_org = personal_org(api, &cleo.access);
    let projects = format!("/api/orgs/{cleo_org}/projects");
    let zeppelin = create(
        api,
        &cleo.access,
        &projects,
        json!({"name": "Zeppelin", "archived": false, "summary": "an airship <b>bold</b>"}),
    );
    create(
        api,
        &cleo.access,
        &projects,
        json!({"name": "Hindenburg", "archived": true}),
    );
    let page = format!("/admin/resources/projects/{}", str_of(&zeppelin["id"]));

    for path in ["/admin/resources/projects", page.as_str()] {
        let refused = admin.get(path).send().expect(401);
        assert!(refused.body.contains(r#"id="password""#), "{refused}");
        admin.get(path).bearer(&cleo.access).send().check(403);
    }

    create_support(root, admin_binary, admin, "support@example.com");
    let support = PanelSession::sign_in(admin, "support@example.com");
    let list = support.get(admin, "/admin/resources/projects").expect(200);
    for text in [
        r#"href="/admin/resources/projects" aria-current="page""#,
        r#"href="/admin/resources/tasks""#,
        "Zeppelin",
        "Hindenburg",
        // Another organization's row too: staff see every owner's.
        "Gemini",
        &page,
        &format!(r#"href="/admin/orgs/{cleo_org}""#),
    ] {
        assert!(list.body.contains(text), "{text}: {list}");
    }
    // The search looks in the text fields, ignoring case, and `%` is no wildcard.
    let found = support
        .get(admin, "/admin/resources/projects?q=ZEPP")
        .expect(200);
    assert!(found.body.contains("Zeppelin"), "{found}");
    assert!(!found.body.contains("Hindenburg"), "{found}");
    let none = support
        .get(admin, "/admin/resources/projects?q=%25")
        .expect(200);
    assert!(none.body.contains("No project matches."), "{none}");

    let shown = support.get(admin, &page).expect(200);
    // Escaped, as every value the templates show.
    assert!(!shown.body.contains("<b>bold"), "{shown}");
    for text in [
        "Zeppelin",
        "an airship",
        &cleo_org,
        "archived",
        "created_at",
    ] {
        assert!(shown.body.contains(text), "{text}: {shown}");
    }
    support
        .get(admin, "/admin/resources/projects/nope")
        .check(404);
    support.get(admin, "/admin/resources/tasks").expect(200);
}

/// The support account searches the projects in Chromium and opens one.
fn in_a_browser(admin: &Instance) {
    let browser = Browser::launch();
    let list = format!("{}/admin/resources/projects", admin.base);
    crate::panel::sign_in(&browser, &list, "support@example.com");
    browser.fill("#q", "zepp");
    browser.click_to_load("#search");
    browser.wait_until("the search result", |b| {
        b.page_source().contains("Zeppelin") && !b.page_source().contains("Hindenburg")
    });
    browser.screenshot("panel-resource-list");
    browser.click_to_load("#rows a[href^='/admin/resources/projects/']");
    browser.wait_until("the project's page", |b| {
        b.page_source().contains(r#"id="fields""#)
    });
    // The text as it was stored, shown as text.
    assert!(browser.text("#fields").contains("an airship <b>bold</b>"));
    browser.screenshot("panel-resource");
}

/// A support account made with the workspace's admin binary, password [`PASSWORD`].
fn create_support(root: &Path, admin_binary: &Path, admin: &Instance, email: &str) {
    let output = Command::new(admin_binary)
        .current_dir(root)
        .args(["create-admin", "--email", email, "--role", "support"])
        .env("DATABASE_URL", admin.db.url())
        .env("ADMIN_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("the admin binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn personal_org(api: &Instance, access: &str) -> String {
    let mine = get(api, access, "/api/orgs").expect_json(200);
    str_of(&mine[0]["id"]).to_owned()
}

fn get(api: &Instance, access: &str, path: &str) -> crate::client::Reply {
    api.get(path).bearer(access).send()
}

fn post(api: &Instance, access: &str, path: &str, body: Value) -> crate::client::Reply {
    api.post(path).bearer(access).json(body).send()
}

fn patch(api: &Instance, access: &str, path: &str, body: Value) -> crate::client::Reply {
    api.call("PATCH", path).bearer(access).json(body).send()
}

fn create(api: &Instance, access: &str, path: &str, body: Value) -> Value {
    post(api, access, path, body).expect_json(201)
}

fn list(api: &Instance, access: &str, path: &str) -> Value {
    get(api, access, path).expect_json(200)
}

/// The default workspace with the three resources (and those of `LONG_RESOURCES`), linted, and
/// its api and admin binaries.
struct Workspace {
    root: PathBuf,
    /// Where its own artifacts go: beside the default workspace's binaries (another `api` and
    /// `admin`), sharing their compiled dependencies.
    target: PathBuf,
    api: PathBuf,
    admin: PathBuf,
}

impl Workspace {
    /// Its service `name` (built as `binary`) on `db`, with plain-http cookies and no practical
    /// rate limit, as the api's own tests run it.
    fn launch<'db>(&self, db: &'db Database, binary: &Path, name: &'static str) -> Instance<'db> {
        let url = db.url();
        let env = [
            ("DATABASE_URL", url.as_str()),
            ("AUTH_COOKIE_SECURE", "false"),
            ("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", "10000"),
            ("RATE_LIMIT_AUTH_PER_EMAIL_AND_IP_PER_MINUTE", "10000"),
            ("RATE_LIMIT_AUTH_PER_EMAIL_PER_HOUR", "10000"),
        ];
        Instance::launch_in(&self.root, binary, name, db, &env)
    }
}

/// Made once for the tests of this file.
fn workspace_with_resources() -> &'static Workspace {
    static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
    WORKSPACE.get_or_init(|| {
        let root = fresh_workspace("resources", &["--yes"]);
        // The resources of the longest names too: their code must build clippy-clean as well.
        for spec in RESOURCES.iter().chain(LONG_RESOURCES) {
            saaskit(&root)
                .args(["generate", "resource"])
                .args(*spec)
                .assert()
                .success();
        }
        let target = shared_target_dir().with_file_name("generated-workspaces-resources");
        lint_beside(&root, &target);
        cargo_beside(&root, &target, &["build", "-p", "api", "-p", "admin"]);
        let binaries = target.join("debug");
        Workspace {
            root,
            api: binaries.join("api"),
            admin: binaries.join("admin"),
            target,
        }
    })
}
