//! `saaskit doctor`: is this workspace in a state saaskit and cargo can work with? Each check
//! gives findings with a fix hint; the command fails when any finding is an error.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::edit::inject::{self, CommentStyle};
use crate::edit::render::ServiceVars;
use crate::edit::typescript::Syntax;
use crate::model::catalog::{Catalog, Language};
use crate::model::lock;
use crate::workspace::{Workspace, env_value, find_root, read_env};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Severity {
    Ok,
    Warning,
    Error,
}

#[derive(Debug, Serialize)]
struct Finding {
    check: &'static str,
    severity: Severity,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

fn finding(
    check: &'static str,
    severity: Severity,
    message: impl Into<String>,
    hint: Option<&str>,
) -> Finding {
    Finding {
        check,
        severity,
        message: message.into(),
        hint: hint.map(str::to_string),
    }
}

pub fn run(args: DoctorArgs) -> Result<()> {
    let root = find_root(&std::env::current_dir()?)?;
    let catalog = Catalog::load()?;
    let mut findings = toolchain(&root);
    match Workspace::open(&catalog, &root) {
        Err(error) => findings.push(finding(
            "workspace",
            Severity::Error,
            format!("{error:#}"),
            Some("fix saaskit.toml or restore saaskit.lock as the message says, then run doctor again"),
        )),
        Ok(workspace) => {
            findings.push(finding("workspace", Severity::Ok, "saaskit.toml and saaskit.lock are valid", None));
            findings.extend(node_toolchain(&root, &workspace));
            findings.extend(fences(&workspace)?);
            let env = read_env(&root);
            findings.extend(env_keys(&workspace, &env)?);
            findings.extend(database(&root, &env));
            findings.extend(ports(&workspace, &env));
        }
    }

    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            let label = match f.severity {
                Severity::Ok => "ok",
                Severity::Warning => "warning",
                Severity::Error => "error",
            };
            println!("{label:<8} {:<10} {}", f.check, f.message);
            if let Some(hint) = &f.hint {
                println!("{:<8} {:<10} fix: {hint}", "", "");
            }
        }
    }
    if errors > 0 {
        bail!("doctor found {errors} error(s)");
    }
    Ok(())
}

/// `rustc 1.95.0 (...)` -> (1, 95)
fn version_of(program: &str) -> Option<(String, (u32, u32))> {
    let output = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let number = text.split_whitespace().nth(1)?;
    let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
    Some((text.clone(), (parts.next()??, parts.next()??)))
}

/// cargo and rustc exist and are at least the workspace's `rust-version`.
fn toolchain(root: &Path) -> Vec<Finding> {
    let required = std::fs::read_to_string(root.join("Cargo.toml"))
        .ok()
        .and_then(|text| text.parse::<toml_edit::DocumentMut>().ok())
        .and_then(|doc| {
            doc.get("workspace")?
                .get("package")?
                .get("rust-version")?
                .as_str()
                .map(str::to_string)
        });
    let minimum = required.as_deref().and_then(|v| {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??))
    });
    ["cargo", "rustc"]
        .into_iter()
        .map(|program| match version_of(program) {
            None => finding(
                "toolchain",
                Severity::Error,
                format!("`{program}` was not found"),
                Some("install Rust with rustup: https://rustup.rs"),
            ),
            Some((text, version)) if minimum.is_some_and(|m| version < m) => finding(
                "toolchain",
                Severity::Error,
                format!(
                    "{text} is older than the workspace's rust-version {}",
                    required.clone().unwrap_or_default()
                ),
                Some("run `rustup update stable`"),
            ),
            Some((text, _)) => finding("toolchain", Severity::Ok, text, None),
        })
        .collect()
}

/// The oldest Node major version the `nest` services run on (their package.json says the same
/// in `engines`).
const NODE_MAJOR_MIN: u32 = 20;

/// For a workspace with TypeScript services: Node and npm exist (Node recent enough), and each
/// such service has its dependencies installed. Rust-only workspaces get no finding: nothing of
/// theirs needs Node.
fn node_toolchain(root: &Path, workspace: &Workspace) -> Vec<Finding> {
    let services: Vec<&str> = (workspace.manifest().services.iter())
        .filter(|s| Language::of_kind(&s.kind) == Language::TypeScript)
        .map(|s| s.name.as_str())
        .collect();
    if services.is_empty() {
        return Vec::new();
    }
    let mut findings = Vec::new();
    let node = Command::new("node").arg("--version").output().ok();
    let node = node.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let major = node
        .as_deref()
        .and_then(|v| v.strip_prefix('v')?.split('.').next()?.parse::<u32>().ok());
    let hint = Some("install Node.js 20 or later (with npm): https://nodejs.org");
    findings.push(match (node, major) {
        (Some(version), Some(major)) if major >= NODE_MAJOR_MIN => {
            finding("toolchain", Severity::Ok, format!("node {version}"), None)
        }
        (Some(version), Some(_)) => finding(
            "toolchain",
            Severity::Error,
            format!(
                "node {version} is older than {NODE_MAJOR_MIN}, which {} need(s)",
                services.join(", ")
            ),
            hint,
        ),
        _ => finding(
            "toolchain",
            Severity::Error,
            format!(
                "`node` was not found; the TypeScript service(s) {} need it",
                services.join(", ")
            ),
            hint,
        ),
    });
    if version_of_npm().is_none() {
        findings.push(finding(
            "toolchain",
            Severity::Error,
            "`npm` was not found",
            hint,
        ));
    }
    for name in services {
        let dir = ServiceVars::dir_of(name);
        if !root.join(&dir).join("node_modules").is_dir() {
            findings.push(finding(
                "node",
                Severity::Warning,
                format!("{dir}/node_modules is missing: the dependencies of `{name}` are not installed"),
                Some("run `npm ci` in that folder (`saaskit dev` does it when it starts the service)"),
            ));
        }
    }
    findings
}

fn version_of_npm() -> Option<String> {
    let output = Command::new("npm").arg("--version").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Every marker and fence saaskit relies on is intact, and every recorded snippet is in place.
fn fences(workspace: &Workspace) -> Result<Vec<Finding>> {
    let lock = &workspace.lock();
    let mut paths: Vec<&str> = lock.snippets.iter().map(|s| s.path.as_str()).collect();
    paths.extend(
        lock.files
            .iter()
            .map(|f| f.path.as_str())
            .filter(|p| CommentStyle::for_path(p) != CommentStyle::Hash || p.starts_with(".env")),
    );
    paths.sort();
    paths.dedup();
    let mut findings = Vec::new();
    let mut intact = 0;
    for path in paths {
        let Some(source) = workspace.tree().read(path)? else {
            findings.push(finding(
                "fences",
                Severity::Error,
                format!("{path} is missing; saaskit generated it and injects code into it"),
                Some("restore it from version control"),
            ));
            continue;
        };
        let style = CommentStyle::for_path(path);
        // No compiler checks a TypeScript file before `npm run build`: say here that one no
        // longer parses (cargo tells for Rust files).
        if style == CommentStyle::TypeScript
            && let Some(syntax) = Syntax::for_path(path)
            && let Err(e) = syntax.check(&source)
        {
            findings.push(finding(
                "fences",
                Severity::Error,
                format!(
                    "{path}:{}:{}: not valid {}: {}",
                    e.line,
                    e.column,
                    syntax.name(),
                    e.message
                ),
                Some("fix the file (`saaskit diff` shows what changed since saaskit wrote it)"),
            ));
        }
        for problem in inject::scan(&source, style).problems {
            findings.push(finding(
                "fences",
                Severity::Error,
                format!("{path}:{}: {problem}", problem.line()),
                Some("restore the marker or fence line as the message says"),
            ));
        }
        for snippet in lock.snippets.iter().filter(|s| s.path == path) {
            match inject::block_body(&source, style, &snippet.marker, &snippet.module) {
                Ok(Some((body, line))) if lock::hash(&body) != snippet.sha256 => findings.push(finding(
                    "fences",
                    Severity::Warning,
                    format!("{path}:{line}: the `{}` snippet of `{}` was edited", snippet.marker, snippet.module),
                    Some("fine if intended; `saaskit remove` will ask for --force before dropping it"),
                )),
                Ok(Some(_)) => intact += 1,
                Ok(None) => findings.push(finding(
                    "fences",
                    Severity::Error,
                    format!("{path}: the `{}` snippet of `{}` is missing", snippet.marker, snippet.module),
                    Some("restore it from version control, or remove and add the module again"),
                )),
                // Malformed fences were reported by the scan above.
                Err(_) => {}
            }
        }
    }
    findings.push(finding(
        "fences",
        Severity::Ok,
        format!("{intact} injected snippets are intact"),
        None,
    ));
    Ok(findings)
}

fn env_keys(workspace: &Workspace, env: &Option<BTreeMap<String, String>>) -> Result<Vec<Finding>> {
    if env.is_none() {
        return Ok(vec![finding(
            "env",
            Severity::Error,
            ".env is missing",
            Some("`cp .env.example .env`, then fill in the secrets it leaves empty"),
        )]);
    }
    let expected = workspace.expected_env_keys()?;
    let mut findings: Vec<Finding> = expected
        .iter()
        .filter(|(_, key)| env_value(env, key).is_none())
        .map(|(module, key)| {
            finding(
                "env",
                Severity::Error,
                format!("{key} (needed by `{module}`) is not set in .env or the environment"),
                Some("copy its line from .env.example into .env and give it a value"),
            )
        })
        .collect();
    if findings.is_empty() {
        findings.push(finding(
            "env",
            Severity::Ok,
            format!("all {} keys are set", expected.len()),
            None,
        ));
    }
    Ok(findings)
}

/// The database in `DATABASE_URL` can be reached (PostgreSQL) or created (SQLite).
fn database(root: &Path, env: &Option<BTreeMap<String, String>>) -> Vec<Finding> {
    let Some(url) = env_value(env, "DATABASE_URL") else {
        return Vec::new();
    };
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let file = root.join(path.split('?').next().unwrap_or(path));
        let dir = file.parent().unwrap_or(root);
        let usable = dir.is_dir() || dir.parent().is_some_and(Path::is_dir);
        return vec![if usable {
            finding(
                "database",
                Severity::Ok,
                format!("SQLite at {}", file.display()),
                None,
            )
        } else {
            finding(
                "database",
                Severity::Error,
                format!(
                    "the directory of the SQLite file {} cannot be created",
                    file.display()
                ),
                Some("point DATABASE_URL at a file in an existing directory"),
            )
        }];
    }
    let Some(authority) = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(rest))
    else {
        return vec![finding(
            "database",
            Severity::Error,
            "DATABASE_URL is not a URL",
            Some("see .env.example"),
        )];
    };
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let target = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    let reachable = target
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)));
    vec![match reachable {
        Some(Ok(_)) => finding(
            "database",
            Severity::Ok,
            format!("PostgreSQL answers at {target}"),
            None,
        ),
        Some(Err(error)) => finding(
            "database",
            Severity::Error,
            format!("cannot reach the database at {target}: {error}"),
            Some("start PostgreSQL, or fix DATABASE_URL in .env"),
        ),
        None => finding(
            "database",
            Severity::Error,
            format!("cannot resolve the database host in `{target}`"),
            Some("fix DATABASE_URL in .env"),
        ),
    }]
}

/// Each service's address is free to listen on.
fn ports(workspace: &Workspace, env: &Option<BTreeMap<String, String>>) -> Vec<Finding> {
    workspace
        .manifest()
        .services
        .iter()
        .map(|spec| {
            let service = ServiceVars::new(spec);
            let key = format!("{}_ADDR", service.env_prefix);
            let addr = env_value(env, &key)
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], spec.port)));
            match TcpListener::bind(addr) {
                Ok(_) => finding("ports", Severity::Ok, format!("{} can listen on {addr}", spec.name), None),
                Err(error) => finding(
                    "ports",
                    Severity::Warning,
                    format!("{} cannot listen on {addr} ({key}): {error}", spec.name),
                    Some("stop what uses the port (the service itself, if it is running), or change the address in .env"),
                ),
            }
        })
        .collect()
}
