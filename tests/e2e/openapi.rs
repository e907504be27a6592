//! Each service's OpenAPI document (docs/openapi.md), black box: it is served at
//! `/openapi.json`, the `openapi` command prints the same document, the committed copy saaskit
//! writes (`openapi --check`) is that document, every route of the service is
//! in it (the HTML pages of the admin panel excepted, on purpose) and every operation it lists
//! is routed; and a property-based fuzzer, Schemathesis, run against each service's served
//! document with credentials, finds no 5xx answer and no answer the document does not allow.
//!
//! The fuzzing runs on SQLite and on PostgreSQL, with at most [`MAX_EXAMPLES`] generated
//! requests per operation and a fixed seed, so a failure reproduces; Schemathesis prints each
//! failing request as a `curl` command.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::admin::Stack;
use crate::api::on_each_database;
use crate::client::{Call, Instance};
use crate::support::{Database, default_workspace, service_binary};
use crate::webhooks::start_webhooks;

/// Generated requests per operation and phase. About 40 operations in the three services, on
/// two databases: the whole fuzzing takes about a minute on a quiet machine.
const MAX_EXAMPLES: &str = "8";

/// The webhooks service's operations API key in these tests.
const OPS_KEY: &str = "e2e-openapi-operations-key-0123456789abcdef";

/// The three services of the default workspace, with a customer and staff, on `db`.
struct Services<'db> {
    stack: Stack<'db>,
    webhooks: Instance<'db>,
}

impl<'db> Services<'db> {
    fn start(db: &'db Database) -> Services<'db> {
        let stack = Stack::start(db);
        let webhooks = start_webhooks(db, &[("WEBHOOKS_OPERATIONS_API_KEY", OPS_KEY)]);
        Services { stack, webhooks }
    }

    /// Each service with the `Authorization` value its operations accept: the customer's
    /// access token at the api, an admin's staff token at the admin service, the operations key
    /// at the webhooks service.
    fn each(&self) -> [(&Instance<'db>, String); 3] {
        [
            (
                &self.stack.api,
                format!("Bearer {}", self.stack.customer.access),
            ),
            (
                &self.stack.admin,
                format!("Bearer {}", self.stack.root.access),
            ),
            (&self.webhooks, format!("Bearer {OPS_KEY}")),
        ]
    }
}

fn document(instance: &Instance) -> Value {
    let reply = instance.get("/openapi.json").send();
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply}"
    );
    reply.expect_json(200)
}

// ---------------------------------------------------------------------------------------------
// The document and the routes

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let db = Database::sqlite();
    let services = Services::start(&db);
    for (instance, authorization) in services.each() {
        let name = instance.name();
        let document = document(instance);
        assert_eq!(document["openapi"], "3.1.0", "{name}");

        // The `openapi` command prints the served document.
        let printed = Command::new(service_binary(name))
            .arg("openapi")
            .current_dir(default_workspace())
            .env("DATABASE_URL", db.url())
            .output()
            .unwrap();
        assert!(printed.status.success(), "{name} openapi: {printed:?}");
        let printed: Value = serde_json::from_slice(&printed.stdout).unwrap();
        assert_eq!(
            printed, document,
            "{name}: `openapi` prints the served document"
        );

        // The committed copy saaskit wrote (the base's and the modules' parts) is the document.
        let check = Command::new(service_binary(name))
            .args(["openapi", "--check"])
            .current_dir(default_workspace())
            .env("DATABASE_URL", db.url())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{name} openapi --check (after changing a handler's documentation, run \
             scripts/update-openapi-parts.sh): {}",
            String::from_utf8_lossy(&check.stderr)
        );

        // Operation ids are unique in a document, as OpenAPI requires (clients name their
        // methods after them).
        let mut ids = BTreeSet::new();
        for operation in document["paths"].as_object().unwrap().values() {
            for operation in operation.as_object().unwrap().values() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(ids.insert(id), "{name}: two operations are `{id}`");
            }
        }

        // Every documented operation is routed: the router answers neither 405 nor its own 404
        // (a handler's 404 says which resource it did not find, in the JSON error body).
        let paths = document["paths"].as_object().unwrap();
        assert!(!paths.is_empty(), "{name} documents no path");
        for (path, operations) in paths {
            let concrete = concrete_path(path);
            for method in operations.as_object().unwrap().keys() {
                let reply = call(instance, method, &concrete)
                    .header("Authorization", &authorization)
                    .send();
                assert_ne!(
                    reply.status, 405,
                    "{name}: {method} {path} is documented: {reply}"
                );
                if reply.status == 404 {
                    assert_eq!(
                        reply.json()["error"]["code"],
                        "not_found",
                        "{name}: {method} {path} is documented but not routed: {reply}"
                    );
                }
            }
        }

        // Every route is documented: the sources route JSON operations only through utoipa's
        // `routes!`, which takes each handler's `#[utoipa::path]`; a plain `.route(...)` is for
        // an HTML page of the admin panel, the document and its page themselves, or `/metrics`.
        let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
        for (file, path) in routed_paths(default_workspace(), name) {
            let html_page = path.starts_with("/admin");
            let docs = path == "/openapi.json" || path == "/docs";
            // Served on the metrics listener, not the service's public address
            // (docs/observability.md).
            let metrics = path == "/metrics";
            assert!(
                html_page || docs || metrics || documented.contains(path.as_str()),
                "{name}: {path}, routed in {file}, is not in the document"
            );
        }
        for (file, path) in annotated_paths(default_workspace(), name) {
            assert!(
                documented.contains(path.as_str()),
                "{name}: {path}, annotated in {file}, is not in the document"
            );
        }
    }
}

#[test]
fn the_docs_page_loads_the_document_and_its_csp_allows_what_it_loads() {
    let db = Database::sqlite();
    let api = crate::api::Api::start(&db, &[]);
    let page = api.get("/docs").send().expect(200);
    assert!(page.body.contains("data-url=\"/openapi.json\""), "{page}");
    let csp = page.header("content-security-policy").unwrap();
    let script = page
        .body
        .split("<script src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let origin: String = script.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    assert!(csp.contains(&format!("script-src {origin}")), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    drop(api);

    // Switched off by its key (the default in production, unit-tested in the library crate);
    // the document is served either way.
    let api = crate::api::Api::start(&db, &[("API_DOCS_ENABLED", "false")]);
    api.get("/docs").send().expect(404);
    api.get("/openapi.json").send().expect(200);
}

// ---------------------------------------------------------------------------------------------
// Contract fuzzing

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_documents() {
    on_each_database(|db| {
        let services = Services::start(db);
        let api_config = services.fuzz_config();
        for (instance, authorization) in services.each() {
            // The organizations are the api's; the other services' documents get defaults.
            let config = if instance.name() == "api" {
                api_config.as_str()
            } else {
                ""
            };
            fuzz(instance, &authorization, config, &[]);
        }
    });
}

impl Services<'_> {
    /// Schemathesis's configuration (`schemathesis.toml`): the `{org}` of the api's org-scoped
    /// routes is an organization of the fuzzed customer, so that the fuzzer reaches the
    /// handlers rather than the membership check's 404 (a made-up id is never a member's):
    /// the customer's personal organization, whose only owner they are (so `leave`, and
    /// demoting or removing themselves, `{user}`, are the documented 409), and for
    /// `DELETE /api/orgs/{org}` a team organization of theirs made to be deleted.
    fn fuzz_config(&self) -> String {
        let api = &self.stack.api;
        let access = &self.stack.customer.access;
        let mine = api.get("/api/orgs").bearer(access).send().expect_json(200);
        let personal = mine
            .as_array()
            .unwrap()
            .iter()
            .find(|org| org["kind"] == "personal")
            .unwrap_or_else(|| panic!("the customer has no personal organization: {mine}"));
        let doomed = api
            .post("/api/orgs")
            .bearer(access)
            .json(serde_json::json!({"name": "Fuzzed away"}))
            .send()
            .expect_json(201);
        let user = &self.stack.customer.user["id"];
        format!(
            "[parameters]\n\"path.org\" = {}\n\"path.user\" = {user}\n\n\
             [[operations]]\ninclude-path = \"/api/orgs/{{org}}\"\ninclude-method = \"DELETE\"\n\
             parameters = {{ \"path.org\" = {} }}\n",
            personal["id"], doomed["id"]
        )
    }
}

/// Runs Schemathesis against `instance`'s served document with `authorization` on every
/// request and `config` as its configuration file, on the operations `options` (`--include-tag
/// tasks`, ...) select, all when empty. Logging out would end the session the other operations
/// are fuzzed with: it is tested by tests/e2e/api.rs instead.
pub(crate) fn fuzz(instance: &Instance, authorization: &str, config: &str, options: &[&str]) {
    let name = instance.name();
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let output = Command::new("schemathesis")
        .arg("--config-file")
        .arg(&config_file)
        .args([
            "run",
            &format!("{}/openapi.json", instance.base),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--mode",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "1",
            // One worker: with two, Hypothesis (under Schemathesis) now and then crashes while
            // describing its strategies ("AST constructor recursion depth mismatch", CPython's
            // `ast` used from two threads at once): a failure of the tool, not of the service.
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--exclude-path",
            "/api/auth/logout",
            "--header",
            &format!("Authorization: {authorization}"),
        ])
        .args(options)
        .env("NO_COLOR", "1")
        // Where Schemathesis keeps its cache (`.schemathesis/`), not the repository.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run schemathesis ({error}): `pip install schemathesis` (see .ci/run)")
        });
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems in the {name} on {} (each with the curl command that \
         reproduces it):\n{report}\n{}",
        instance.db.kind(),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// `path` with each `{parameter}` filled: `1` for ids that are numbers, a word otherwise.
fn concrete_path(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let name = &rest[start + 1..end];
        out.push_str(if path.starts_with("/api/admin/jobs") && name == "id" {
            "1"
        } else {
            "unknown"
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn call<'a>(instance: &'a Instance, method: &str, path: &str) -> Call<'a> {
    let method = match method {
        "get" => "GET",
        "post" => "POST",
        "put" => "PUT",
        "delete" => "DELETE",
        "patch" => "PATCH",
        other => panic!("an operation with method {other}"),
    };
    let call = instance.call(method, path);
    if method == "GET" || method == "DELETE" {
        call
    } else {
        call.json(serde_json::json!({}))
    }
}

/// The Rust sources that make up service `name`: its crate's and the library crate's.
fn sources(root: &Path, name: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in [
        root.join("services").join(name).join("src"),
        root.join("crates/core/src"),
    ] {
        collect_rs(&dir, &mut files);
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let shown = path.strip_prefix(root).unwrap().display().to_string();
            (shown, text)
        })
        .collect()
}

fn collect_rs(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The first string literal after each `marker` (and after `then`, when given, within the
/// same piece) in the sources of service `name`, outside unit tests, which build routers of
/// their own.
fn literals_after(root: &Path, name: &str, marker: &str, then: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (file, text) in sources(root, name) {
        let text = text.split("#[cfg(test)]").next().unwrap();
        for piece in text.split(marker).skip(1) {
            let piece = match piece.split_once(then) {
                Some((_, after)) if !then.is_empty() => after,
                _ if then.is_empty() => piece,
                _ => continue,
            };
            let literal = piece
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split('"').next());
            if let Some(path) = literal.filter(|path| path.starts_with('/')) {
                found.push((file.clone(), path.to_string()));
            }
        }
    }
    found
}

/// Paths routed with a plain `.route("...")`.
fn routed_paths(root: &Path, name: &str) -> Vec<(String, String)> {
    literals_after(root, name, ".route(", "")
}

/// Paths of `#[utoipa::path(..., path = "...")]` annotations.
fn annotated_paths(root: &Path, name: &str) -> Vec<(String, String)> {
    literals_after(root, name, "#[utoipa::path(", "path = ")
}
