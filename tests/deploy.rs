//! The deployment modules' files, checked by the tools operators run on them: hadolint on the
//! Dockerfile, Compose itself and the Compose schema on compose.yaml, kubernetes-validate on the
//! manifests, the workflow schema on the CI workflow, shellcheck on the generated script,
//! systemd-analyze's exposure rating of the units; on the default workspace, an api-only one and
//! one with a NestJS service (`api,nest`), whose files differ (docs/nest.md).
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

/// The `saaskit new` arguments of a workspace with a NestJS service beside the api.
const WITH_NEST: [&str; 3] = ["--yes", "--services", "api,nest"];

fn each_workspace(check: impl Fn(&Path)) {
    for args in [&["--yes"][..], &["--yes", "--services", "api"], &WITH_NEST] {
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

/// The nest service's image: Node 20 slim, production dependencies from the lockfile, the
/// compiled service, its migrations, a non-root user and a health check; none without one.
#[test]
fn the_dockerfile_builds_a_node_image_for_a_nest_service() {
    let (_temp, root) = deployed(&WITH_NEST);
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let stage = dockerfile
        .split("FROM node:20-bookworm-slim AS nest\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no `nest` stage on node:20-bookworm-slim:\n{dockerfile}"));
    for line in [
        "COPY --from=nest-deps /app/node_modules ./node_modules",
        "COPY --from=nest-build /app/dist ./dist",
        "COPY services/nest/migrations ./migrations",
        "USER 65532:65532",
        "ENTRYPOINT [\"node\", \"dist/main.js\"]",
    ] {
        assert!(stage.contains(line), "{line}:\n{stage}");
    }
    assert!(
        stage.contains("HEALTHCHECK") && stage.contains("/healthz"),
        "{stage}"
    );
    assert!(dockerfile.contains("FROM nest-toolchain AS nest-deps\nRUN npm ci --omit=dev\n"));
    let ignored = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    assert!(
        ignored.lines().any(|l| l == "**/node_modules/"),
        "{ignored}"
    );

    let (_temp, rust_only) = deployed(&["--yes"]);
    let dockerfile = std::fs::read_to_string(rust_only.join("Dockerfile")).unwrap();
    assert!(!dockerfile.contains("node:20"), "{dockerfile}");
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
        if let Some(nest) = config["services"].get("nest") {
            // Its own migrations run once the Rust services' have, then it starts.
            let migrate = &config["services"]["nest-migrate"];
            assert_eq!(
                migrate["entrypoint"],
                serde_json::json!(["node", "dist/migrate.js"])
            );
            assert_eq!(
                migrate["depends_on"]["migrate"]["condition"],
                "service_completed_successfully"
            );
            assert_eq!(
                nest["depends_on"]["nest-migrate"]["condition"], "service_completed_successfully",
                "{nest}"
            );
            assert_eq!(
                nest["environment"]["NEST_AUTH_JWKS_URL"],
                "http://api:8080/.well-known/jwks.json"
            );
            assert_eq!(nest["build"]["target"], "nest");
        }
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
        if let Ok(nest) = std::fs::read_to_string(root.join("deploy/kubernetes/nest.yaml")) {
            assert!(
                nest.contains(r#"command: ["node", "dist/migrate.js"]"#),
                "{nest}"
            );
            assert!(nest.contains("/.well-known/jwks.json"), "{nest}");
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
        // npm steps only for a workspace with a NestJS service.
        let nest = root.join("services/nest").is_dir();
        assert_eq!(
            workflow.contains("actions/setup-node@v4"),
            nest,
            "{workflow}"
        );
        if nest {
            for step in [
                "cache-dependency-path: services/nest/package-lock.json",
                "run: npm ci",
                "run: npm run lint",
                "run: npm run build",
                "run: npm test",
            ] {
                assert!(workflow.contains(step), "{step}:\n{workflow}");
            }
        }
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

/// The workspace's own check, as its CI runs it, passes on what saaskit generated (nginx -t on
/// the site included), with and without a NestJS service.
#[test]
fn the_generated_check_script_passes() {
    for args in [&["--yes"][..], &WITH_NEST] {
        let (_temp, root) = deployed(args);
        let output = std::process::Command::new("bash")
            .arg("scripts/check-deploy.sh")
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A NestJS service on a VPS: a hardened unit running Node (its migrations first), no socket
/// unit (it binds its port), and a server of its own in the nginx site.
#[test]
fn a_nest_service_gets_a_unit_and_an_nginx_server() {
    let (_temp, root) = deployed(&WITH_NEST);
    let systemd = root.join("deploy/vps/systemd");
    let unit = std::fs::read_to_string(systemd.join("acme-nest.service")).unwrap();
    for line in [
        "ExecStartPre=/usr/bin/node /opt/acme/services/nest/dist/migrate.js",
        "ExecStart=/usr/bin/node /opt/acme/services/nest/dist/main.js",
        "Environment=NEST_ADDR=127.0.0.1:8081",
        "DynamicUser=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}:\n{unit}");
    }
    assert!(!systemd.join("acme-nest.socket").exists());
    assert!(systemd.join("acme-api.socket").exists());
    let site = std::fs::read_to_string(root.join("deploy/vps/nginx/acme.conf")).unwrap();
    assert!(
        site.contains("upstream acme_nest {\n    server 127.0.0.1:8081;"),
        "{site}"
    );
    assert!(site.contains("server_name nest.example.com;"), "{site}");
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
