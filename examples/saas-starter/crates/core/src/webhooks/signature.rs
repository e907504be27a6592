//! Stripe's webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, where each
//! `v1` is the HMAC-SHA256 of `"<t>.<raw body>"` keyed by an endpoint secret.
//!
//! Checked against the raw body bytes, before anything parses them: re-serialised JSON would not
//! hash the same. A header passes when any `v1` matches any configured secret (several are
//! configured while one is rolled), compared in constant time by `hmac`; `v0` and every other
//! scheme are ignored, as Stripe's own libraries do. The timestamp must be within the tolerance
//! in both directions, so that a captured request cannot be replayed later.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The endpoint secrets (`whsec_...`) signatures are checked against. Not `Debug`: they are
/// secrets.
#[derive(Clone)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Reads a comma-separated list; `None` when it holds no secret.
    pub fn parse(list: &str) -> Option<Self> {
        let secrets: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .map(str::to_owned)
            .collect();
        (!secrets.is_empty()).then_some(Self(secrets))
    }
}

/// Why a request's signature is refused; each has its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or empty")]
    MissingHeader,
    #[error("the Stripe-Signature header has no timestamp (t=)")]
    MissingTimestamp,
    #[error("the Stripe-Signature header has no v1 signature")]
    MissingV1,
    #[error("no v1 signature matches the payload and a configured secret")]
    Mismatch,
    #[error("the signature's timestamp is older than the tolerance")]
    Expired,
    #[error("the signature's timestamp is further in the future than the tolerance")]
    FromTheFuture,
}

impl SignatureError {
    /// The stable error code clients (and Stripe's delivery log) see.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingHeader => "signature_header_missing",
            Self::MissingTimestamp => "signature_timestamp_missing",
            Self::MissingV1 => "signature_v1_missing",
            Self::Mismatch => "signature_mismatch",
            Self::Expired => "signature_expired",
            Self::FromTheFuture => "signature_from_the_future",
        }
    }
}

/// Checks `header` (the `Stripe-Signature` value) for `body` at time `now` (Unix seconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &Secrets,
    tolerance_secs: i64,
    now: i64,
) -> Result<(), SignatureError> {
    let header = header
        .map(str::trim)
        .filter(|header| !header.is_empty())
        .ok_or(SignatureError::MissingHeader)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for (key, value) in header.split(',').filter_map(|item| item.split_once('=')) {
        match key.trim() {
            // Stripe's libraries take the first `t`; so does this.
            "t" if timestamp.is_none() => timestamp = Some(value.trim()),
            "v1" => signatures.push(value.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::MissingTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::MissingV1);
    }
    // Checked before the timestamp: an unsigned timestamp says nothing.
    let matches = secrets.0.iter().any(|secret| {
        let mac = signed_payload_mac(secret, timestamp, body);
        signatures.iter().any(|signature| {
            hex::decode(signature).is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok())
        })
    });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    if seconds < now.saturating_sub(tolerance_secs) {
        return Err(SignatureError::Expired);
    }
    if seconds > now.saturating_add(tolerance_secs) {
        return Err(SignatureError::FromTheFuture);
    }
    Ok(())
}

/// A `Stripe-Signature` header for `body` signed with `secret` at `timestamp`: what Stripe
/// sends, for tests and for tools that replay events against a local service.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = signed_payload_mac(secret, &timestamp.to_string(), body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The HMAC state after `"<timestamp>.<body>"`, keyed by `secret`.
fn signed_payload_mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    fn secrets(list: &str) -> Secrets {
        Secrets::parse(list).unwrap()
    }

    fn check(header: &str) -> Result<(), SignatureError> {
        verify(Some(header), BODY, &secrets(SECRET), 300, NOW)
    }

    #[test]
    fn accepts_what_it_signs() {
        assert_eq!(check(&sign(SECRET, NOW, BODY)), Ok(()));
    }

    #[test]
    fn matches_stripes_published_algorithm() {
        // Computed independently: Python's hmac.new(secret, b"1700000000." + BODY, sha256).
        assert_eq!(
            sign(SECRET, NOW, BODY),
            "t=1700000000,v1=46dc069361a7691082640523fa33fe5d6c8c88d5f5e257cdf8cf11539d166595"
        );
    }

    #[test]
    fn any_v1_may_match_any_secret() {
        let good = sign(SECRET, NOW, BODY);
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t={NOW},v1={},v1={v1},v0={v1}", "ab".repeat(32));
        let rolled = secrets(&format!("whsec_new,{SECRET}"));

        assert_eq!(verify(Some(&header), BODY, &rolled, 300, NOW), Ok(()));
    }

    #[test]
    fn refuses_each_fault_with_its_own_reason() {
        let good = sign(SECRET, NOW, BODY);
        let v1 = good.split_once(",v1=").unwrap().1.to_owned();

        assert_eq!(
            verify(None, BODY, &secrets(SECRET), 300, NOW),
            Err(SignatureError::MissingHeader)
        );
        assert_eq!(check("  "), Err(SignatureError::MissingHeader));
        assert_eq!(
            check(&format!("v1={v1}")),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            check(&format!("t={NOW},v0={v1}")),
            Err(SignatureError::MissingV1)
        );
        assert_eq!(
            check(&format!("t={NOW},v1=zz")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&good), b"{}", &secrets(SECRET), 300, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&good), BODY, &secrets("whsec_other"), 300, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&sign(SECRET, NOW - 301, BODY)),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            check(&sign(SECRET, NOW + 301, BODY)),
            Err(SignatureError::FromTheFuture)
        );
        assert_eq!(check(&sign(SECRET, NOW - 300, BODY)), Ok(()));
    }

    #[test]
    fn a_secret_list_needs_one_secret() {
        assert!(Secrets::parse(" , ").is_none());
        assert_eq!(secrets("a, b").0, ["a", "b"]);
    }
}
