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
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The custom header a same-site script may send to pass the check. Browsers only let a page
/// send it to another origin after a CORS preflight, which only the allowed origins pass.
pub const CUSTOM_HEADER: &str = "x-requested-with";

/// Whether a cookie-authenticated request may proceed. `trusted_origins` are the origins of
/// other sites allowed to call the service (its `<SERVICE>_CORS_ALLOWED_ORIGINS`).
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

/// The token an HTML form of a cookie session carries in a hidden field (the synchronizer token
/// pattern), on top of [`allows`]: a page of another site cannot read it, so it cannot forge the
/// form. Derived from the session's cookie token rather than stored: it lives exactly as long as
/// the session, and a database leak (which holds only a different hash of the cookie token) does
/// not reveal it.
pub fn form_token(session_token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"csrf-form-token:");
    hasher.update(session_token.as_bytes());
    BASE64URL.encode(hasher.finalize())
}

/// Whether `submitted` is the form token of `session_token`, compared in constant time.
pub fn form_token_matches(session_token: &str, submitted: &str) -> bool {
    same_token(&form_token(session_token), submitted)
}

/// Whether two secret tokens are equal, compared in constant time so that the time taken does
/// not tell how much of a guess was right.
pub fn same_token(expected: &str, submitted: &str) -> bool {
    expected.as_bytes().ct_eq(submitted.as_bytes()).into()
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

    #[test]
    fn form_tokens_belong_to_one_session() {
        let token = form_token("session-a");

        assert!(form_token_matches("session-a", &token));
        assert!(!form_token_matches("session-b", &token));
        assert!(!form_token_matches("session-a", ""));
        assert!(!form_token_matches("session-a", &token[1..]));
        assert_ne!(token, super::super::session::hash_token("session-a"));
    }
}
