//! The service's OpenAPI 3.1 document, made from its router: `GET /openapi.json`, the `openapi`
//! command that prints it, and the `/docs` page that shows it.
//!
//! Every module builds its routes as a [`utoipa_axum::router::OpenApiRouter`] with
//! `routes!(handler, ...)`: a handler cannot be routed without its `#[utoipa::path]`, so the
//! document cannot miss a route nor list one that is gone. [`api_docs`] takes the merged router
//! once every module has added its routes, and splits it into the axum router and the document.
//!
//! The HTML pages of the admin panel (`/admin/...`) are not JSON operations: their routes are
//! added with plain `.route(...)` and stay out of the document, on purpose.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::config::Env;

/// The error envelope, the body of every error response, for handlers' `responses(...)`.
pub use crate::error::{ErrorBody, ErrorDetail};

/// Whether the service serves its `/docs` page (`API_DOCS_ENABLED`). `/openapi.json` is always
/// served: it tells nothing a client could not learn by calling the API.
#[derive(Debug, Clone)]
pub struct ApiDocsConfig {
    pub docs_page: bool,
}

impl ApiDocsConfig {
    /// Reads `API_DOCS_ENABLED`: on by default in development, off by default in production
    /// (where a docs page is a choice, e.g. for a public API).
    pub fn from_env(env: &mut Env) -> Self {
        let default = !env.is_production();
        Self {
            docs_page: env.optional("API_DOCS_ENABLED", default),
        }
    }
}

/// The document of `router`'s routes (with the service's title, the security schemes and the
/// error envelope), and the router with `GET /openapi.json` and, when enabled, `GET /docs`.
/// The document is returned as the exact bytes `/openapi.json` serves: the `openapi` command
/// prints them, and the committed copy (`services/<name>/openapi.json`) is compared with them.
pub fn api_docs(router: OpenApiRouter, config: &ApiDocsConfig, title: &str) -> (Router, String) {
    let (router, api) = router.split_for_parts();
    let document = finish(api, title)
        .to_pretty_json()
        // Serializing a document of strings and maps does not fail.
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
    // Bytes clone without copying: every request answers the same buffer.
    let served = Bytes::from(document.clone());
    let router = router.route(
        "/openapi.json",
        get(move || {
            let body = served.clone();
            async move {
                let json = HeaderValue::from_static("application/json");
                ([(header::CONTENT_TYPE, json)], body)
            }
        }),
    );
    let router = if config.docs_page {
        router.route("/docs", get(docs_page))
    } else {
        router
    };
    (router, document)
}

/// Adds what no single route knows: the title, the version, the security schemes and the error
/// envelope every operation's error responses refer to. Operations name the schemes in their
/// `security(...)`: `bearer` (an access token), `session` (the api's session cookie),
/// `staff_session` (the admin panel's), `stripe_signature` and `operations_key`.
fn finish(mut api: OpenApi, title: &str) -> OpenApi {
    api.info = InfoBuilder::new()
        .title(title)
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Errors have one shape everywhere, `ErrorBody`; its `code` is stable.",
        ))
        .build();
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some("An access token from `POST /api/auth/login`"))
        .build();
    let operations_key = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(
            "The operations API key (`WEBHOOKS_OPERATIONS_API_KEY`) or a staff token from the \
             admin service's `POST /api/admin/auth/token`",
        ))
        .build();
    let components = ComponentsBuilder::new()
        .schema(ErrorBody::name(), ErrorBody::schema())
        .schema(ErrorDetail::name(), ErrorDetail::schema())
        .security_scheme("bearer", SecurityScheme::Http(bearer))
        .security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "session",
                "The session cookie set by `POST /api/auth/login` (`__Host-session` over HTTPS); \
                 a request that changes something also needs the CSRF header",
            ))),
        )
        .security_scheme(
            "staff_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "admin-session",
                "The admin panel's staff session cookie (`__Host-admin-session` over HTTPS)",
            ))),
        )
        .security_scheme(
            "stripe_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Stripe-Signature",
                "Stripe's signature of the raw body with the endpoint's signing secret",
            ))),
        )
        .security_scheme("operations_key", SecurityScheme::Http(operations_key))
        .build();
    match api.components.as_mut() {
        Some(existing) => {
            existing.schemas.extend(components.schemas);
            existing
                .security_schemes
                .extend(components.security_schemes);
        }
        None => api.components = Some(components),
    }
    api
}

/// The `openapi` command of every service: `openapi` prints the document the service serves,
/// `openapi --check` compares it with the committed copy and fails on a difference, `openapi
/// --write` updates the committed copy.
///
/// The committed copy is the folder `openapi/` of the service's crate, one JSON file per part:
/// `base.json` and one file per saaskit module, which saaskit writes and removes with the
/// modules (so the copy is right from `saaskit new` on, and after `add` and `remove`), and
/// `app.json`, yours, which `--write` fills with what your own code adds or changes. The
/// document is the parts merged in file name order, `app.json` last: a path's operation, a
/// component, or a top-level field of a later part replaces the earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenApiCommand {
    Print,
    Check,
    Write,
    Unknown(String),
}

/// The file `--write` updates in the committed copy.
const APP_PART: &str = "app.json";

impl OpenApiCommand {
    /// The command on the command line, if it is `openapi`.
    pub fn from_args() -> Option<Self> {
        let mut args = std::env::args().skip(1);
        if args.next().as_deref() != Some("openapi") {
            return None;
        }
        Some(match args.next().as_deref() {
            None => Self::Print,
            Some("--check") => Self::Check,
            Some("--write") => Self::Write,
            Some(other) => Self::Unknown(other.to_owned()),
        })
    }

    /// Runs the command for `document` (what `/openapi.json` serves), with the committed copy in
    /// `<crate_dir>/openapi/`.
    pub fn run(&self, document: &str, crate_dir: &str) -> Result<(), OpenApiError> {
        let dir = Path::new(crate_dir).join("openapi");
        let update = update_command(crate_dir);
        match self {
            Self::Print => {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{document}").map_err(|error| OpenApiError::Io(dir, error))
            }
            Self::Unknown(option) => Err(OpenApiError::Usage(option.clone())),
            Self::Check | Self::Write => {
                let served: Value = serde_json::from_str(document)
                    .map_err(|error| OpenApiError::Part(PathBuf::from("(served)"), error))?;
                let parts = read_parts(&dir)?;
                let others: Vec<&Value> = parts
                    .iter()
                    .filter(|(name, _)| name != APP_PART)
                    .map(|(_, part)| part)
                    .collect();
                if *self == Self::Check {
                    let committed = merge(parts.iter().map(|(_, part)| part));
                    let differences = differences(&served, &committed);
                    if differences.is_empty() {
                        return Ok(());
                    }
                    return Err(OpenApiError::Differs {
                        dir,
                        differences,
                        update,
                    });
                }
                let base = merge(others.iter().copied());
                let gone = gone(&served, &base);
                if !gone.is_empty() {
                    return Err(OpenApiError::Gone { dir, gone });
                }
                let app = serde_json::to_string_pretty(&overrides(&served, &base))
                    .map_err(|error| OpenApiError::Part(dir.join(APP_PART), error))?;
                let path = dir.join(APP_PART);
                std::fs::write(&path, format!("{app}\n"))
                    .map_err(|error| OpenApiError::Io(path, error))
            }
        }
    }
}

/// Why the `openapi` command failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("unknown option `{0}`: use `openapi`, `openapi --check` or `openapi --write`")]
    Usage(String),
    #[error("cannot read or write {}: {}", .0.display(), .1)]
    Io(PathBuf, #[source] std::io::Error),
    #[error("{} is not a JSON part of an OpenAPI document: {}", .0.display(), .1)]
    Part(PathBuf, #[source] serde_json::Error),
    #[error(
        "the committed OpenAPI document ({}) differs from the one the service serves: {}. If the \
         change is intended, run `{update}` and commit the result",
        .dir.display(), .differences.join("; ")
    )]
    Differs {
        dir: PathBuf,
        differences: Vec<String>,
        update: String,
    },
    #[error(
        "{} lists what the service no longer serves: {}. Delete it from the part of {} that \
         has it, then run the command again",
        .dir.display(), .gone.join(", "), .dir.display()
    )]
    Gone { dir: PathBuf, gone: Vec<String> },
}

/// `cargo run -p <package> -- openapi --write`, the package being the crate's folder name.
fn update_command(crate_dir: &str) -> String {
    let package = Path::new(crate_dir)
        .file_name()
        .map_or_else(|| "<service>".into(), |name| name.to_string_lossy());
    format!("cargo run -p {package} -- openapi --write")
}

/// The parts in `dir`, by file name; none when it does not exist.
fn read_parts(dir: &Path) -> Result<Vec<(String, Value)>, OpenApiError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(OpenApiError::Io(dir.to_owned(), error)),
    };
    let mut parts = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|error| OpenApiError::Io(dir.to_owned(), error))?
            .path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|error| OpenApiError::Io(path.clone(), error))?;
        let part =
            serde_json::from_str(&text).map_err(|error| OpenApiError::Part(path.clone(), error))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        parts.push((name, part));
    }
    // `app.json` last: it holds what the application changes in the modules' parts.
    parts.sort_by_key(|(name, _)| (name == APP_PART, name.clone()));
    Ok(parts)
}

/// Where an entry of the document lives: a path's operation, a component, or a top-level field.
fn entries(document: &Value) -> BTreeMap<String, &Value> {
    let mut entries = BTreeMap::new();
    let Some(object) = document.as_object() else {
        return entries;
    };
    for (key, value) in object {
        match (key.as_str(), value.as_object()) {
            ("paths", Some(paths)) => {
                for (path, item) in paths {
                    for (method, operation) in item.as_object().into_iter().flatten() {
                        entries.insert(format!("{method} {path}"), operation);
                    }
                }
            }
            ("components", Some(components)) => {
                for (section, items) in components {
                    for (name, item) in items.as_object().into_iter().flatten() {
                        entries.insert(format!("components.{section}.{name}"), item);
                    }
                }
            }
            _ => {
                entries.insert(key.clone(), value);
            }
        }
    }
    entries
}

/// The parts merged: each entry of a later part replaces the same entry of an earlier one.
fn merge<'a>(parts: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut merged = serde_json::Map::new();
    for part in parts {
        for (key, value) in part.as_object().into_iter().flatten() {
            match (key.as_str(), value.as_object()) {
                ("paths" | "components", Some(groups)) => {
                    let slot = merged
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(serde_json::Map::new()));
                    let Value::Object(slot) = slot else {
                        continue;
                    };
                    for (group, items) in groups {
                        let target = slot
                            .entry(group.clone())
                            .or_insert_with(|| Value::Object(serde_json::Map::new()));
                        if let (Value::Object(target), Some(items)) = (target, items.as_object()) {
                            target.extend(items.clone());
                        }
                    }
                }
                _ => {
                    merged.insert(key.clone(), value.clone());
                }
            }
        }
    }
    Value::Object(merged)
}

/// What differs between the served document and the committed one, entry by entry.
fn differences(served: &Value, committed: &Value) -> Vec<String> {
    let served = entries(served);
    let committed = entries(committed);
    let mut found = Vec::new();
    for (key, value) in &served {
        match committed.get(key) {
            None => found.push(format!("`{key}` is served but not committed")),
            Some(other) if other != value => found.push(format!("`{key}` changed")),
            Some(_) => {}
        }
    }
    for key in committed.keys().filter(|key| !served.contains_key(*key)) {
        found.push(format!("`{key}` is committed but no longer served"));
    }
    found
}

/// The entries of `base` the service no longer serves, which `app.json` cannot take away.
fn gone(served: &Value, base: &Value) -> Vec<String> {
    let served = entries(served);
    entries(base)
        .into_keys()
        .filter(|key| !served.contains_key(key))
        .collect()
}

/// The part that turns `base` into `served`: every entry served differently or only served.
fn overrides(served: &Value, base: &Value) -> Value {
    let base_entries = entries(base);
    let mut part = serde_json::Map::new();
    for (key, value) in served.as_object().into_iter().flatten() {
        match (key.as_str(), value.as_object()) {
            ("paths" | "components", Some(groups)) => {
                let mut kept = serde_json::Map::new();
                for (group, items) in groups {
                    let mut changed = serde_json::Map::new();
                    for (name, item) in items.as_object().into_iter().flatten() {
                        let entry = if key == "paths" {
                            format!("{name} {group}")
                        } else {
                            format!("components.{group}.{name}")
                        };
                        if base_entries.get(&entry) != Some(&item) {
                            changed.insert(name.clone(), item.clone());
                        }
                    }
                    if !changed.is_empty() {
                        kept.insert(group.clone(), Value::Object(changed));
                    }
                }
                if !kept.is_empty() {
                    part.insert(key.clone(), Value::Object(kept));
                }
            }
            _ if base_entries.get(key) != Some(&value) => {
                part.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(part)
}

/// The viewer's script, loaded by the browser at run time: nothing is embedded in the binary
/// nor downloaded at build time. Pinned to a major version so a page keeps working.
const VIEWER_SCRIPT: &str = "https://cdn.jsdelivr.net/npm/@scalar/api-reference@1";

/// `/docs`: a small page that loads the viewer and points it at `/openapi.json`. Its CSP allows
/// exactly that: the viewer's script and styles from the CDN, the document from this origin.
async fn docs_page() -> impl IntoResponse {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>API reference</title>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n</head>\n\
         <body>\n<script id=\"api-reference\" data-url=\"/openapi.json\"></script>\n\
         <script src=\"{VIEWER_SCRIPT}\"></script>\n</body>\n</html>\n"
    );
    let csp = "default-src 'none'; script-src https://cdn.jsdelivr.net; \
               style-src 'unsafe-inline' https://cdn.jsdelivr.net; \
               font-src https://cdn.jsdelivr.net https://fonts.scalar.com data:; \
               img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        page,
    )
}

/// The document as a JSON value, for tests.
#[cfg(test)]
fn document_of(router: OpenApiRouter) -> serde_json::Value {
    let (_, document) = api_docs(router, &ApiDocsConfig { docs_page: false }, "test");
    serde_json::from_str(&document).unwrap()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn the_document_has_the_health_routes_the_envelope_and_the_schemes() {
        let document = document_of(crate::http::health_routes(Default::default()));

        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["info"]["title"], "test");
        assert!(
            document["paths"]["/healthz"]["get"].is_object(),
            "{document}"
        );
        assert!(document["paths"]["/readyz"]["get"]["responses"]["503"].is_object());
        let components = &document["components"];
        assert!(components["schemas"]["ErrorBody"].is_object());
        for name in ["bearer", "session", "stripe_signature", "operations_key"] {
            assert!(components["securitySchemes"][name].is_object(), "{name}");
        }
    }

    #[tokio::test]
    async fn serves_the_document_and_the_docs_page_only_when_enabled() {
        for docs_page in [false, true] {
            let (router, document) = api_docs(
                crate::http::health_routes(Default::default()),
                &ApiDocsConfig { docs_page },
                "test",
            );
            let get = |uri: &'static str| {
                router
                    .clone()
                    .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            };
            let served = get("/openapi.json").await.unwrap();
            assert_eq!(served.status(), StatusCode::OK);
            let bytes = axum::body::to_bytes(served.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(bytes, document.as_bytes());

            let page = get("/docs").await.unwrap();
            let expected = if docs_page {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(page.status(), expected);
            if docs_page {
                let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap();
                assert!(csp.contains("script-src https://cdn.jsdelivr.net"), "{csp}");
            }
        }
    }

    #[test]
    fn docs_are_on_in_development_and_off_in_production_unless_set() {
        for (app_env, set, expected) in [
            ("development", None, true),
            ("production", None, false),
            ("production", Some("true"), true),
            ("development", Some("false"), false),
        ] {
            let mut vars = vec![("APP_ENV", app_env)];
            vars.extend(set.map(|value| ("API_DOCS_ENABLED", value)));
            let mut env = Env::from_vars(vars);
            assert_eq!(ApiDocsConfig::from_env(&mut env).docs_page, expected);
        }
    }

    fn sample() -> Value {
        serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "acme api", "version": "0.1.0"},
            "paths": {
                "/healthz": {"get": {"summary": "alive"}},
                "/api/things": {"get": {"summary": "list"}, "post": {"summary": "make"}},
            },
            "components": {"schemas": {"Thing": {"type": "object"}}},
        })
    }

    #[test]
    fn committed_parts_merge_into_the_document_and_differences_are_named() {
        let base = serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "acme api", "version": "0.1.0"},
            "paths": {"/healthz": {"get": {"summary": "alive"}}},
        });
        let things = serde_json::json!({
            "paths": {"/api/things": {"get": {"summary": "list"}, "post": {"summary": "make"}}},
            "components": {"schemas": {"Thing": {"type": "object"}}},
        });
        assert_eq!(merge([&base, &things]), sample());
        assert!(differences(&sample(), &merge([&base, &things])).is_empty());

        let mut served = sample();
        served["paths"]["/api/things"]["post"]["summary"] = "create".into();
        served["paths"]["/api/other"] = serde_json::json!({"get": {}});
        assert_eq!(
            differences(&served, &merge([&base, &things])),
            [
                "`get /api/other` is served but not committed",
                "`post /api/things` changed",
            ]
        );
        assert_eq!(
            differences(&base, &merge([&base, &things])),
            [
                "`components.schemas.Thing` is committed but no longer served",
                "`get /api/things` is committed but no longer served",
                "`post /api/things` is committed but no longer served",
            ]
        );
    }

    #[test]
    fn the_written_part_holds_only_what_the_application_changes() {
        let base = sample();
        let mut served = sample();
        served["paths"]["/api/things"]["post"]["summary"] = "create".into();
        served["components"]["schemas"]["Other"] = serde_json::json!({"type": "string"});

        let app = overrides(&served, &base);

        assert_eq!(
            app,
            serde_json::json!({
                "paths": {"/api/things": {"post": {"summary": "create"}}},
                "components": {"schemas": {"Other": {"type": "string"}}},
            })
        );
        assert_eq!(merge([&base, &app]), served);
        assert!(gone(&served, &base).is_empty());
        assert_eq!(gone(&serde_json::json!({}), &base).len(), 6);
    }

    #[test]
    fn check_and_write_use_the_crate_s_openapi_folder() {
        let crate_dir = std::env::temp_dir().join(format!("openapi-check-{}", std::process::id()));
        let dir = crate_dir.join("openapi");
        std::fs::create_dir_all(&dir).unwrap();
        let crate_dir_text = crate_dir.to_str().unwrap();
        let document = sample().to_string();

        let error = OpenApiCommand::Check
            .run(&document, crate_dir_text)
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("`get /healthz` is served but not committed"),
            "{message}"
        );
        let package = crate_dir.file_name().unwrap().to_str().unwrap();
        assert!(
            message.contains(&format!("cargo run -p {package} -- openapi --write")),
            "{message}"
        );

        OpenApiCommand::Write
            .run(&document, crate_dir_text)
            .unwrap();
        OpenApiCommand::Check
            .run(&document, crate_dir_text)
            .unwrap();
        std::fs::remove_dir_all(&crate_dir).unwrap();
    }
}
