//! Install and uninstall on a small catalog, end to end in memory.

use super::*;
use crate::edit::inject::{self, CommentStyle};
use crate::model::catalog::test_module;

const MAIN: &str = "\
// <<<inject:mods>>>

fn main() {
// <<<inject:routes>>>
serve();
// <<<inject:shutdown>>>
}
";

const BASE: &str = r#"
summary = "base"
description = "base"
version = "0.1.0"
services = ["api", "admin", "webhooks"]

[[files]]
source = "files/service/src/main.rs"
target = "{{ service.dir }}/src/main.rs"
scope = "service"
"#;

/// `auth` on api and webhooks services, with its handlers for the api only and a default on
/// the api only; `db`, which it requires; `jobs`, a worker using the database.
fn catalog() -> Catalog {
    let module = |id: &str, toml: &str| {
        let files = [("files/api/src/auth.rs", "pub fn routes() {}\n")];
        (id.to_string(), test_module(id, toml, &files).unwrap())
    };
    let db = r#"
summary = "db"
description = "db"
version = "0.1.0"
services = ["api", "admin", "webhooks"]
default = true

[[snippets]]
target = "{{ service.dir }}/src/main.rs"
marker = "shutdown"
scope = "service"
code = "db.close();"
"#;
    let auth = r#"
summary = "auth"
description = "auth"
version = "0.1.0"
services = ["api", "webhooks"]
requires = ["db"]
default = ["api"]

[[files]]
source = "files/api/src/auth.rs"
target = "{{ service.dir }}/src/auth.rs"
scope = "service"
kinds = ["api"]

[[snippets]]
target = "{{ service.dir }}/src/main.rs"
marker = "mods"
scope = "service"
kinds = ["api"]
code = "mod auth;"

[[snippets]]
target = "{{ service.dir }}/src/main.rs"
marker = "routes"
scope = "service"
kinds = ["api"]
code = "let app = auth::routes();"

[[snippets]]
target = "{{ service.dir }}/src/main.rs"
marker = "shutdown"
scope = "service"
code = "sessions.flush();"
"#;
    let jobs = r#"
summary = "jobs"
description = "jobs"
version = "0.1.0"
services = ["webhooks"]
requires = ["db"]

[[snippets]]
target = "{{ service.dir }}/src/main.rs"
marker = "shutdown"
scope = "service"
code = "jobs.drain();"
"#;
    // An api module whose data a webhooks worker keeps.
    let plans = r#"
summary = "plans"
description = "plans"
version = "0.1.0"
services = ["api"]
requires = ["jobs"]
"#;
    Catalog {
        base: test_module(BASE_ID, BASE, &[("files/service/src/main.rs", MAIN)]).unwrap(),
        modules: BTreeMap::from([
            module("db", db),
            module("auth", auth),
            module("jobs", jobs),
            module("plans", plans),
        ]),
    }
}

/// Two services, no module yet (shared with other tests of the workspace).
pub(super) const MANIFEST: &str = r#"
[workspace]
name = "acme"
database = "sqlite"

[services.api]
kind = "api"
port = 8080
modules = []

[services.hooks]
kind = "webhooks"
port = 8081
modules = []
"#;

const API_MAIN: &str = "services/api/src/main.rs";
const HOOKS_MAIN: &str = "services/hooks/src/main.rs";

/// A workspace with the base generated and no module, in an empty directory.
fn workspace<'c>(catalog: &'c Catalog, root: &Path) -> Workspace<'c> {
    let manifest = Manifest::parse(MANIFEST).unwrap();
    let mut workspace = Workspace::create(catalog, root, manifest, false);
    workspace.install_base().unwrap();
    workspace
}

fn read(workspace: &Workspace, path: &str) -> Option<String> {
    workspace.tree.read(path).unwrap()
}

fn modules_of<'w>(workspace: &'w Workspace, service: &str) -> &'w [String] {
    &workspace.manifest.service(service).unwrap().modules
}

/// The modules of the blocks at `marker` in `path`, in file order.
fn blocks(workspace: &Workspace, path: &str, marker: &str) -> Vec<String> {
    let text = read(workspace, path).unwrap();
    inject::scan(&text, CommentStyle::Rust)
        .blocks
        .into_iter()
        .filter(|b| b.marker == marker)
        .map(|b| b.module)
        .collect()
}

#[test]
fn entries_limited_to_some_kinds_are_skipped_on_other_kinds_and_remove_agrees() {
    let catalog = catalog();
    let temp = tempfile::tempdir().unwrap();
    let mut workspace = workspace(&catalog, temp.path());
    let bare_api = read(&workspace, API_MAIN);
    let bare_hooks = read(&workspace, HOOKS_MAIN);

    workspace.install("auth", None).unwrap();
    assert_eq!(modules_of(&workspace, "hooks"), ["db", "auth"]);
    assert!(read(&workspace, "services/api/src/auth.rs").is_some());
    assert_eq!(read(&workspace, "services/hooks/src/auth.rs"), None);
    assert_eq!(blocks(&workspace, API_MAIN, "mods"), ["auth"]);
    assert_eq!(blocks(&workspace, API_MAIN, "routes"), ["auth"]);
    assert!(blocks(&workspace, HOOKS_MAIN, "mods").is_empty());
    assert!(blocks(&workspace, HOOKS_MAIN, "routes").is_empty());
    assert_eq!(blocks(&workspace, HOOKS_MAIN, "shutdown"), ["auth", "db"]);
    let recorded = |path: &str| workspace.lock.files.iter().any(|f| f.path == path);
    assert!(recorded("services/api/src/auth.rs") && !recorded("services/hooks/src/auth.rs"));
    let hooks_snippets: Vec<&str> = workspace
        .lock
        .snippets
        .iter()
        .filter(|s| s.path == HOOKS_MAIN && s.module == "auth")
        .map(|s| s.marker.as_str())
        .collect();
    assert_eq!(hooks_snippets, ["shutdown"]);

    workspace.uninstall("auth", None).unwrap();
    assert!(workspace.notes.is_empty(), "{:?}", workspace.notes);
    assert_eq!(read(&workspace, API_MAIN), bare_api);
    assert_eq!(read(&workspace, HOOKS_MAIN), bare_hooks);
    assert_eq!(read(&workspace, "services/api/src/auth.rs"), None);
    assert!(workspace.lock.snippets.is_empty() && workspace.installed().is_empty());
}

#[test]
fn removing_from_the_service_of_another_kind_keeps_the_api_s_entries() {
    let catalog = catalog();
    let temp = tempfile::tempdir().unwrap();
    let mut workspace = workspace(&catalog, temp.path());
    workspace.install("auth", None).unwrap();
    let api_main = read(&workspace, API_MAIN);
    workspace.uninstall("auth", Some("hooks")).unwrap();
    assert!(workspace.notes.is_empty(), "{:?}", workspace.notes);
    assert_eq!(
        blocks(&workspace, HOOKS_MAIN, "shutdown"),
        Vec::<String>::new()
    );
    assert_eq!(read(&workspace, API_MAIN), api_main);
    assert!(read(&workspace, "services/api/src/auth.rs").is_some());
}

#[test]
fn a_default_on_some_kinds_goes_on_their_services_and_requirements_as_usual() {
    let catalog = catalog();
    let temp = tempfile::tempdir().unwrap();
    let mut workspace = workspace(&catalog, temp.path());
    // What `saaskit new` does without a choice of modules.
    let defaults = catalog.defaults(&["api", "webhooks"]);
    assert_eq!(defaults, ["auth", "db"]);
    for id in defaults {
        workspace.install_default(id).unwrap();
    }
    assert_eq!(modules_of(&workspace, "api"), ["db", "auth"]);
    assert_eq!(modules_of(&workspace, "hooks"), ["db"]);
    // Not a default there, but `add` still puts it on the other kind.
    workspace.install("auth", Some("hooks")).unwrap();
    assert_eq!(modules_of(&workspace, "hooks"), ["db", "auth"]);
}

#[test]
fn a_default_on_no_service_of_the_workspace_installs_nothing() {
    let catalog = catalog();
    let temp = tempfile::tempdir().unwrap();
    let manifest =
        Manifest::parse(&MANIFEST.replace("kind = \"api\"", "kind = \"admin\"")).unwrap();
    let mut workspace = Workspace::create(&catalog, temp.path(), manifest, false);
    workspace.install_base().unwrap();
    assert!(workspace.install_default("auth").unwrap().is_empty());
    assert!(workspace.installed().is_empty());
}

#[test]
fn a_requirement_goes_where_the_module_requiring_it_goes() {
    let catalog = catalog();
    let temp = tempfile::tempdir().unwrap();
    let mut workspace = workspace(&catalog, temp.path());
    // `plans` (api) needs `jobs` (webhooks only), which needs `db` on the webhooks service,
    // before `jobs` is installed there: not on the api, where `plans` goes.
    let installed = workspace.install("plans", None).unwrap();
    let expected: Installed = vec![
        ("db".into(), vec!["hooks".into()]),
        ("jobs".into(), vec!["hooks".into()]),
        ("plans".into(), vec!["api".into()]),
    ];
    assert_eq!(installed, expected);
    assert_eq!(blocks(&workspace, HOOKS_MAIN, "shutdown"), ["jobs", "db"]);
    assert!(blocks(&workspace, API_MAIN, "shutdown").is_empty());
}

#[test]
fn shutdown_blocks_run_in_reverse_install_order_in_every_render() {
    let catalog = catalog();
    let temp = tempfile::tempdir().unwrap();
    let mut workspace = workspace(&catalog, temp.path());
    workspace.install("db", None).unwrap();
    workspace.install("jobs", None).unwrap();
    workspace.install("auth", None).unwrap();
    assert_eq!(
        blocks(&workspace, HOOKS_MAIN, "shutdown"),
        ["auth", "jobs", "db"]
    );
    let installed = read(&workspace, HOOKS_MAIN);

    // What `diff` and `upgrade` compare with: the same order.
    let fresh = Workspace::render_fresh(&catalog, &workspace.manifest).unwrap();
    assert_eq!(read(&fresh, HOOKS_MAIN), installed);
    assert_eq!(read(&fresh, API_MAIN), read(&workspace, API_MAIN));

    // Removing the newest module and adding it again puts its block back first.
    workspace.uninstall("auth", None).unwrap();
    assert_eq!(blocks(&workspace, HOOKS_MAIN, "shutdown"), ["jobs", "db"]);
    workspace.install("auth", None).unwrap();
    assert_eq!(read(&workspace, HOOKS_MAIN), installed);
}

#[test]
fn a_module_generating_invalid_json_is_refused_with_the_place_whoever_rendered_it() {
    let invalid = r#"
summary = "config"
description = "config"
version = "0.1.0"
services = ["api"]

[[files]]
source = "files/workspace/settings.json"
target = "settings.json"
"#;
    let mut catalog = catalog();
    let config = test_module(
        "config",
        invalid,
        &[("files/workspace/settings.json", "{\n  \"a\": 1,\n}\n")],
    )
    .unwrap();
    catalog.modules.insert("config".into(), config);
    let temp = tempfile::tempdir().unwrap();
    let manifest = Manifest::parse(MANIFEST).unwrap();
    // Rendered ahead, as `new` does: the check fails there, and the installing thread, which
    // renders the file again, reports it.
    let prerendered = Prerendered::default();
    prerendered.fill(&manifest, &[&catalog.modules["config"]]);
    let mut workspace = Workspace::create(&catalog, temp.path(), manifest, false);
    workspace.use_prerendered(&prerendered);
    workspace.install_base().unwrap();
    let error = format!("{:#}", workspace.install("config", None).unwrap_err());
    assert!(
        error.starts_with("settings.json:3:1: module `config` generates invalid JSON"),
        "{error}"
    );
}
