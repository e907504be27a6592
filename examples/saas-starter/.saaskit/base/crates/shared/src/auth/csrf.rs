//! Cross-site request forgery protection for cookie-authenticated requests.
//!
//! A browser attaches the session cookie to requests other sites make it send, so a request that
//! changes state and is authenticated by the cookie alone must show that it comes from a page of
//! this application. The rule follows the Fetch Metadata approach OWASP recommends (and Go's
//! `http.CrossOriginProtection`): modern browsers say where a request comes from in
//! `Sec-Fetch-Site`, older ones in `Origin`, and tools that are not browsers send neither (and
//! cannot be made to send a victim's cookie). Bearer-authenticated requests need no check: a
//! browser never attaches a Bearer token by itself.

use axum::http::{HeaderMap, HeaderValue, Method, header};

/// The custom header a same-site script may send to pass the check. Browsers only let a page
/// send it to another origin after a CORS preflight, which only the allowed origins pass.
pub const CUSTOM_HEADER: &str = "x-requested-with";

/// Whether a cookie-authenticated request may proceed. `trusted_origins` are the origins of
/// other sites allowed to call the API (`CORS_ALLOWED_ORIGINS`).
pub fn allows(method: &Method, headers: &HeaderMap, trusted_origins: &[HeaderValue]) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let origin = headers.get(header::ORIGIN);
    if origin.is_some_and(|origin| trusted_origins.contains(origin)) {
        return true;
    }
    if headers.contains_key(CUSTOM_HEADER) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    match origin {
        // Not sent: an old browser's same-origin request, or not a browser at all.
        None => true,
        Some(origin) => is_same_host(origin, headers.get(header::HOST)),
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to.
fn is_same_host(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, host)| host);
    let host = host.and_then(|host| host.to_str().ok());
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "https://app.example.com";

    fn allows_post(headers: &[(&'static str, &'static str)]) -> bool {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, HeaderValue::from_static("api.example.com"));
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        allows(&Method::POST, &map, &[HeaderValue::from_static(APP)])
    }

    #[test]
    fn safe_methods_always_pass() {
        let mut headers = HeaderMap::new();
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));

        assert!(allows(&Method::GET, &headers, &[]));
    }

    #[test]
    fn fetch_metadata_decides_when_present() {
        assert!(allows_post(&[("sec-fetch-site", "same-origin")]));
        assert!(allows_post(&[("sec-fetch-site", "none")]));
        assert!(!allows_post(&[("sec-fetch-site", "same-site")]));
        assert!(!allows_post(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ]));
    }

    #[test]
    fn trusted_origins_and_the_custom_header_pass() {
        assert!(allows_post(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", APP)
        ]));
        assert!(allows_post(&[
            ("sec-fetch-site", "cross-site"),
            ("x-requested-with", "fetch"),
        ]));
    }

    #[test]
    fn without_fetch_metadata_the_origin_must_match_the_host() {
        assert!(allows_post(&[]));
        assert!(allows_post(&[("origin", "https://api.example.com")]));
        assert!(!allows_post(&[("origin", "https://evil.example")]));
        assert!(!allows_post(&[("origin", "null")]));
    }
}
