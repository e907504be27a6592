//! The deployment modules' files, checked by the tools operators run on them: hadolint on the
//! Dockerfile, Compose itself and the Compose schema on compose.yaml, kubernetes-validate on the
//! manifests, the workflow schema on the CI workflow, shellcheck on the generated script,
//! systemd-analyze's exposure rating of the units; on the default workspace and an api-only one.
//! `.ci/run` installs the tools. What needs the services built (systemd-analyze verify with the
//! binaries in place, the nginx site in front of running services) is in tests/e2e/deploy.rs.

mod common;

use std::path::Path;

use common::{generate, run_tool, saaskit};

const MODULES: [&str; 5] = [
    "deploy/docker",
    "deploy/compose",
    "deploy/vps",
    "deploy/kubernetes",
    "ci/github",
];

/// A workspace generated with `args`, every deployment module added.
fn deployed(args: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let (temp, root) = generate("acme", args);
    for id in MODULES {
        saaskit(&root).args(["add", id]).assert().success();
    }
    (temp, root)
}

fn each_workspace(check: impl Fn(&Path)) {
    for args in [&["--yes"][..], &["--yes", "--services", "api"]] {
        let (_temp, root) = deployed(args);
        check(&root);
    }
}

/// The files of `dir` (relative to `root`) ending with `suffix`, as paths relative to `root`.
fn files(root: &Path, dir: &str, suffix: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(root.join(dir))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(suffix))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no {suffix} file in {dir}");
    found
}

#[test]
fn the_dockerfile_passes_hadolint_and_keeps_secrets_out_of_the_build() {
    each_workspace(|root| {
        run_tool(root, "hadolint", &["Dockerfile"]);
        let ignored = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
        for entry in [".env", "target/", "data/"] {
            assert!(ignored.lines().any(|l| l == entry), "{entry}: {ignored}");
        }
        let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
        assert!(dockerfile.contains(r#"CMD ["/usr/local/bin/api", "healthcheck"]"#));
        assert!(dockerfile.contains("cargo chef cook --release --locked"));
    });
}

#[test]
fn compose_accepts_compose_yaml_and_so_does_its_schema() {
    each_workspace(|root| {
        // `config` resolves everything: interpolation from .env, env files, anchors.
        run_tool(root, "docker-compose", &["config", "-q"]);
        let schema = ["--builtin-schema", "vendor.compose-spec", "compose.yaml"];
        run_tool(root, "check-jsonschema", &schema);
        let resolved = run_tool(root, "docker-compose", &["config", "--format", "json"]);
        let config: serde_json::Value = serde_json::from_str(&resolved).unwrap();
        let api = &config["services"]["api"];
        assert_eq!(
            api["depends_on"]["migrate"]["condition"], "service_completed_successfully",
            "{api}"
        );
        assert_eq!(api["environment"]["DATABASE_MIGRATE_ON_START"], "false");
        assert_eq!(config["services"]["migrate"]["command"][0], "migrate");
    });
}

#[test]
fn the_kubernetes_manifests_pass_kubernetes_validate_strict() {
    each_workspace(|root| {
        let manifests = files(root, "deploy/kubernetes", ".yaml");
        let mut args = vec!["--strict"];
        args.extend(manifests.iter().map(String::as_str));
        let report = run_tool(root, "kubernetes-validate", &args);
        for kind in ["deployment", "service", "job", "horizontalpodautoscaler"] {
            assert!(report.contains(&format!("resource {kind}/")), "{report}");
        }
    });
}

#[test]
fn the_workflow_matches_its_schema_and_the_script_passes_shellcheck() {
    each_workspace(|root| {
        let schema = ["--builtin-schema", "vendor.github-workflows"];
        run_tool(
            root,
            "check-jsonschema",
            &[&schema[..], &[".github/workflows/ci.yml"]].concat(),
        );
        run_tool(root, "shellcheck", &["scripts/check-deploy.sh"]);
        let workflow = std::fs::read_to_string(root.join(".github/workflows/ci.yml")).unwrap();
        assert!(workflow.contains("saaskit diff --check"), "{workflow}");
    });
}

/// The exposure `systemd-analyze security` gives each unit: 2.5 or less ("OK").
#[test]
fn the_systemd_units_are_rated_ok_by_systemd_analyze_security() {
    each_workspace(|root| {
        for unit in files(root, "deploy/vps/systemd", ".service") {
            let report = run_tool(
                root,
                "systemd-analyze",
                &["security", "--offline=true", "--threshold=25", &unit],
            );
            let rating = report
                .lines()
                .find_map(|l| l.split_once("Overall exposure level for "))
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|score| score.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no exposure level for {unit}:\n{report}"));
            assert!(rating <= 2.5, "{unit}: exposure {rating}\n{report}");
            eprintln!("{unit}: exposure {rating}");
        }
    });
}

/// The workspace's own check, as its CI runs it, passes on what saaskit generated.
#[test]
fn the_generated_check_script_passes() {
    let (_temp, root) = deployed(&["--yes"]);
    let output = std::process::Command::new("bash")
        .arg("scripts/check-deploy.sh")
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// No OpenSSL in the services' build, with or without the `tls` feature (rustls instead).
#[test]
fn the_services_build_without_openssl() {
    let (_temp, root) = generate("acme", &["--yes"]);
    for features in [&[][..], &["--features", "tls"]] {
        let output = std::process::Command::new(env!("CARGO"))
            .args(["tree", "--workspace", "-e", "normal", "-i", "openssl-sys"])
            .args(features)
            .current_dir(&root)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains("did not match any packages"),
            "openssl-sys is in the build {features:?}:\n{}{stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
