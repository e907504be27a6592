//! The table `saaskit dev` prints once every service is ready: what runs, where, and where to
//! start with it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One service of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub service: String,
    pub kind: String,
    pub url: String,
    pub entry_points: Vec<String>,
}

/// The address to connect to for a service listening on `addr`: the loopback address of the
/// same family when it listens on every interface.
pub fn connect_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// `http://127.0.0.1:8080`, `http://[::1]:8080`.
pub fn base_url(addr: SocketAddr) -> String {
    format!("http://{}", connect_addr(addr))
}

/// Where to start with a service of `kind` that has `modules`: what the generated code serves.
pub fn entry_points(kind: &str, modules: &[String]) -> Vec<String> {
    let has = |id: &str| modules.iter().any(|m| m == id);
    let mut entries = Vec::new();
    match kind {
        "api" => {
            if has("auth") {
                entries.push("/api/auth/* (register, login, refresh, me, ...)".to_string());
                entries.push("/.well-known/jwks.json".to_string());
            }
            if has("users") {
                entries.push("/api/users/profile".to_string());
            }
            if has("orgs") {
                entries.push("/api/orgs/* (organizations, members, invitations)".to_string());
            }
            if has("billing/api") {
                entries.push("/api/billing/plans, /api/billing/subscription".to_string());
            }
            if has("admin/feature-flags") {
                entries.push("/api/flags".to_string());
            }
        }
        "admin" if has("admin/core") => {
            entries.push(
                "panel: /admin (first admin: cargo run -p admin -- create-admin --email ...)"
                    .to_string(),
            );
            entries.push(
                "/api/admin/* (users, metrics, audit, impersonation; staff token: POST \
                 /api/admin/auth/token)"
                    .to_string(),
            );
            if has("admin/feature-flags") {
                entries.push("/admin/flags, /api/admin/flags".to_string());
            }
            if has("admin/webhooks") {
                entries.push("/admin/webhooks, /api/admin/webhooks/*".to_string());
            }
            if has("admin/billing") {
                entries.push("/api/admin/subscriptions".to_string());
            }
        }
        "admin" => entries.push("admin panel: / (no pages yet)".to_string()),
        "webhooks" if has("billing/stripe-webhooks") => {
            entries.push("POST /api/webhooks/stripe (Stripe's deliveries)".to_string());
            entries.push("/api/webhooks/logs, /events/{id}, /replay (operations)".to_string());
        }
        "webhooks" => entries.push("webhook endpoint: / (no routes yet)".to_string()),
        _ => {}
    }
    entries.push("/healthz, /readyz".to_string());
    entries
}

/// What a NestJS (`nest`) service `name` serves: its routes are under `/api/<name>/` (docs/nest.md).
pub fn nest_entry_points(name: &str) -> Vec<String> {
    vec![
        format!("/api/{name}/me, /api/{name}/notes (with an access token of the api's)"),
        "OpenAPI: /openapi.json, /docs".to_string(),
        "/healthz, /readyz".to_string(),
    ]
}

/// The rows as an aligned table with a header, the entry points one per line.
pub fn render(rows: &[Row]) -> String {
    let header = Row {
        service: "SERVICE".into(),
        kind: "KIND".into(),
        url: "URL".into(),
        entry_points: vec!["ENTRY POINTS".into()],
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let service_width = all.iter().map(|r| r.service.len()).max().unwrap_or(0);
    let kind_width = all.iter().map(|r| r.kind.len()).max().unwrap_or(0);
    let url_width = all.iter().map(|r| r.url.len()).max().unwrap_or(0);
    let mut out = String::new();
    for row in all {
        let mut entries = row.entry_points.iter();
        let first = entries.next().map(String::as_str).unwrap_or("");
        let line = format!(
            "{:<service_width$}  {:<kind_width$}  {:<url_width$}  {first}",
            row.service, row.kind, row.url
        );
        out.push_str(line.trim_end());
        out.push('\n');
        for entry in entries {
            let indent = service_width + kind_width + url_width + 6;
            out.push_str(&format!("{:indent$}{entry}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn urls_connect_to_loopback_when_listening_everywhere() {
        assert_eq!(
            base_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(base_url("[::]:8081".parse().unwrap()), "http://[::1]:8081");
        assert_eq!(
            base_url("192.168.1.5:80".parse().unwrap()),
            "http://192.168.1.5:80"
        );
    }

    #[test]
    fn the_admin_service_shows_the_panel_once_admin_core_is_installed() {
        assert_eq!(
            entry_points("admin", &[])[0],
            "admin panel: / (no pages yet)"
        );
        let full = entry_points("admin", &modules(&["admin/core", "admin/feature-flags"]));
        assert!(full[0].contains("/admin") && full[0].contains("create-admin"));
        assert!(full.contains(&"/admin/flags, /api/admin/flags".to_string()));
    }

    #[test]
    fn the_api_shows_the_routes_of_its_modules() {
        assert_eq!(entry_points("api", &[]), ["/healthz, /readyz"]);
        let full = entry_points("api", &modules(&["db", "auth", "users"]));
        assert!(full.iter().any(|e| e.starts_with("/api/auth/")));
        assert!(full.contains(&"/.well-known/jwks.json".to_string()));
        assert!(full.contains(&"/api/users/profile".to_string()));
        let webhooks = entry_points("webhooks", &modules(&["db", "billing/stripe-webhooks"]));
        assert!(webhooks.iter().any(|e| e.contains("/api/webhooks/stripe")));
        assert!(entry_points("admin", &[])[0].starts_with("admin panel"));
        assert!(entry_points("webhooks", &[])[0].starts_with("webhook endpoint"));
    }

    #[test]
    fn the_table_is_aligned() {
        let rows = vec![
            Row {
                service: "api".into(),
                kind: "api".into(),
                url: "http://127.0.0.1:8080".into(),
                entry_points: vec!["/a".into(), "/healthz, /readyz".into()],
            },
            Row {
                service: "webhooks".into(),
                kind: "webhooks".into(),
                url: "http://127.0.0.1:8082".into(),
                entry_points: vec!["/healthz, /readyz".into()],
            },
        ];
        let expected = [
            "SERVICE   KIND      URL                    ENTRY POINTS",
            "api       api       http://127.0.0.1:8080  /a",
            "                                           /healthz, /readyz",
            "webhooks  webhooks  http://127.0.0.1:8082  /healthz, /readyz",
        ];
        assert_eq!(render(&rows), expected.map(|l| format!("{l}\n")).concat());
    }
}
