//! The order in which modules were added does not change what a service does: a layer that
//! applies to a whole service (the rate limits) covers the routes of every module, those added
//! after it included (docs/modules.md, the `layers` marker).
//!
//! The workspace here gets `security/rate-limiting` before `admin/core`, the module that serves
//! the admin service's sign-ins, where the default workspace installs them the other way round.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::client::{Instance, at_once};
use crate::common::saaskit;
use crate::support::{Database, fresh_workspace, shared_target_dir};

#[test]
fn the_rate_limits_cover_a_module_added_after_them() {
    let (root, binary) = rate_limits_then_admin();
    let db = Database::sqlite();
    let admin = Instance::launch_in(
        &root,
        &binary,
        "admin",
        &db,
        &[
            ("DATABASE_URL", &db.url()),
            ("RATE_LIMIT_AUTH_PER_IP_PER_MINUTE", "3"),
        ],
    );
    // At once: each attempt is counted on arrival, before its password is hashed.
    let mut statuses: Vec<u16> = at_once(4, |n| {
        admin
            .post("/api/admin/auth/token")
            .json(json!({"email": format!("ops{n}@example.com"), "password": "wrong"}))
            .send()
    })
    .iter()
    .map(|reply| reply.status)
    .collect();
    statuses.sort_unstable();

    assert_eq!(statuses, [401, 401, 401, 429], "{}", admin.service.logs());
}

/// A workspace with `auth` and `security/rate-limiting`, then `admin/core` added, and its admin
/// binary: built beside the default workspace's binaries (another `admin`), sharing their
/// compiled dependencies.
fn rate_limits_then_admin() -> (PathBuf, PathBuf) {
    let root = fresh_workspace(
        "order",
        &["--yes", "--modules", "auth,security/rate-limiting"],
    );
    saaskit(&root)
        .args(["add", "admin/core"])
        .assert()
        .success();
    let binaries = build(&root, "order", &["admin"]);
    (root, binaries.join("admin"))
}

/// Builds `packages` of the workspace at `root` into a target directory of its own named after
/// `name`, beside the default workspace's (binaries of the same names would replace each
/// other's), sharing its compiled dependencies; returns where the binaries are.
pub(crate) fn build(root: &Path, name: &str, packages: &[&str]) -> PathBuf {
    let target = shared_target_dir().with_file_name(format!("generated-workspaces-{name}"));
    let mut args = vec!["build"];
    for package in packages {
        args.extend(["-p", package]);
    }
    let output = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_BUILD_BUILD_DIR", shared_target_dir())
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "`cargo {}` failed in {}:\n{}",
        args.join(" "),
        root.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    target.join("debug")
}
