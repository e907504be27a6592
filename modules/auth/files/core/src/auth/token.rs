//! Access tokens: compact JWS (JWT) signed with Ed25519, and the key set that signs and verifies
//! them.
//!
//! The JWS is written here rather than taken from `jsonwebtoken`: with one algorithm it is a
//! hundred lines, and that crate would bring RSA, ECDSA and an older generation of the RustCrypto
//! crates into the build. Verification is deliberately narrow: `alg` must be exactly `EdDSA`
//! (so `none`, `HS256` with the public key as secret, and every other algorithm-confusion trick
//! fail before any key is looked at), and `kid` must name a key of the configured set.
//!
//! Key ids are RFC 7638 JWK thumbprints, so that this service, `saaskit keys` and any party
//! reading the JWKS compute the same id from the public key alone.
//!
//! The signature check is the costly part of a request (about 20 µs of Ed25519 arithmetic), and
//! clients present the same token for its whole lifetime: the key set remembers the SHA-256 of
//! the tokens whose signature it verified, in a bounded cache ([`KeySet::remember_verified`]).
//! A token seen before skips the signature check only: its claims are still decoded and checked
//! (type, issuer, audience, expiry) on every request, and the session it names is still looked
//! up, so a revoked session or an expired token is refused whether cached or not.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use quick_cache::sync::Cache;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How far `exp` may be in the past before a token is refused: clocks of machines drift apart.
const LEEWAY_SECS: i64 = 60;

/// The only algorithm tokens are signed with, and the only one accepted.
const ALGORITHM: &str = "EdDSA";

/// The `typ` claim of access tokens, so that no other token this service might sign one day is
/// accepted in their place.
const ACCESS_TYPE: &str = "access";

/// The keys that sign and verify access tokens: one signing key, plus the public keys of former
/// signing keys, which keep verifying the tokens they signed until they are removed.
pub struct KeySet {
    signing_key: SigningKey,
    signing_kid: String,
    verifying: Vec<(String, VerifyingKey)>,
    /// SHA-256 digests of tokens whose signature a key of this set verified; `None`: every
    /// token's signature is checked. Valid as long as the set, which never changes once read.
    verified: Option<Cache<[u8; 32], ()>>,
}

impl KeySet {
    /// Reads the signing key (a base64url 32-byte Ed25519 seed) and the comma-separated
    /// base64url public keys of former signing keys.
    pub fn parse(signing_key: &str, previous_keys: &str) -> Result<Self, KeyError> {
        let seed = decode_key(signing_key).ok_or(KeyError::SigningKey)?;
        let signing_key = SigningKey::from_bytes(&seed);
        let signing_public = signing_key.verifying_key();
        let signing_kid = key_id(&signing_public);
        let mut verifying = vec![(signing_kid.clone(), signing_public)];
        for (position, encoded) in previous_keys
            .split(',')
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .enumerate()
        {
            let key = decode_key(encoded)
                .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
                .ok_or(KeyError::PreviousKey(position + 1))?;
            let kid = key_id(&key);
            if verifying.iter().all(|(known, _)| *known != kid) {
                verifying.push((kid, key));
            }
        }
        Ok(Self {
            signing_key,
            signing_kid,
            verifying,
            verified: None,
        })
    }

    /// Remembers the last `capacity` or so tokens whose signature verified (an S3-FIFO cache:
    /// tokens presented again and again stay), so that [`KeySet::verify`] checks a token's
    /// signature once rather than on every request. 0 turns it off.
    #[must_use]
    pub fn remember_verified(mut self, capacity: usize) -> Self {
        self.verified = (capacity > 0).then(|| Cache::new(capacity));
        self
    }

    /// The id of the key new tokens are signed with.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Jwks {
        let keys = self
            .verifying
            .iter()
            .map(|(kid, key)| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: BASE64URL.encode(key.as_bytes()),
                kid: kid.clone(),
                alg: ALGORITHM,
                key_use: "sig",
            })
            .collect();
        Jwks { keys }
    }

    /// Signs `claims` into a compact JWS with the signing key.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: ALGORITHM.to_owned(),
            typ: Some("JWT".to_owned()),
            kid: Some(self.signing_kid.clone()),
        };
        let mut token = encode_json(&header);
        token.push('.');
        token.push_str(&encode_json(claims));
        let signature = self.signing_key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&BASE64URL.encode(signature.to_bytes()));
        token
    }

    /// The claims of `token` if it is an access token signed by a key of the set, for this
    /// issuer and audience, and not expired at `now` (Unix seconds).
    pub fn verify(
        &self,
        token: &str,
        expected: &Expected<'_>,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let Some((signed, signature)) = token.rsplit_once('.') else {
            return Err(TokenError::Malformed);
        };
        let Some((header, payload)) = signed.split_once('.') else {
            return Err(TokenError::Malformed);
        };
        // A collision-resistant digest of the whole token: a hit means these very bytes, header,
        // claims and signature, verified before.
        let remembered = self.verified.as_ref().map(|verified| {
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            (verified, digest)
        });
        match remembered {
            Some((verified, digest)) if verified.get(&digest).is_some() => {}
            _ => {
                self.verify_signature(header, signed, signature)?;
                if let Some((verified, digest)) = remembered {
                    verified.insert(digest, ());
                }
            }
        }
        let claims: Claims = decode_json(payload)?;
        if claims.typ != ACCESS_TYPE {
            return Err(TokenError::Type);
        }
        if claims.iss != expected.issuer {
            return Err(TokenError::Issuer);
        }
        if claims.aud != expected.audience {
            return Err(TokenError::Audience);
        }
        if claims.exp + LEEWAY_SECS <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Checks that `signature` is a key of the set's over `signed`, the header and the claims
    /// (`header` is the first).
    fn verify_signature(
        &self,
        header: &str,
        signed: &str,
        signature: &str,
    ) -> Result<(), TokenError> {
        let header: Header = decode_json(header)?;
        if header.alg != ALGORITHM {
            return Err(TokenError::Algorithm);
        }
        let key = header
            .kid
            .and_then(|kid| self.verifying.iter().find(|(known, _)| *known == kid))
            .map(|(_, key)| key)
            .ok_or(TokenError::UnknownKey)?;
        let signature: [u8; 64] = BASE64URL
            .decode(signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(TokenError::Malformed)?;
        // `verify_strict` also refuses the weak keys and malleable signatures plain `verify`
        // lets through.
        key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| TokenError::Signature)
    }
}

/// What a token must say to be accepted, besides being well signed and not expired.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session the token was issued in: the token stops working when the session ends.
    pub sid: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub typ: String,
    /// RFC 8693's actor claim: the staff member acting as `sub` (impersonation), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The organization the token was switched to (the `orgs` module's
    /// `POST /api/orgs/{org}/switch`), if any: the token acts in that organization only.
    /// Tokens without it, those issued before it existed included, stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The caller's role in `org_id` when the token was issued, for clients to show; the
    /// services check the membership itself on every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
}

/// Who acts on behalf of a token's subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The staff member's user id.
    pub sub: String,
    pub email: String,
}

impl Claims {
    /// The claims of a new access token for `user_id` in `session_id`.
    pub fn access(
        expected: &Expected<'_>,
        user_id: &str,
        session_id: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Self {
        Self {
            iss: expected.issuer.to_owned(),
            aud: expected.audience.to_owned(),
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            exp: now + ttl_secs,
            iat: now,
            jti: uuid::Uuid::now_v7().to_string(),
            typ: ACCESS_TYPE.to_owned(),
            act: None,
            org_id: None,
            org_role: None,
        }
    }
}

/// Why a token was refused. Clients only ever learn that it was (401); the reason is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("signed with an algorithm other than EdDSA")]
    Algorithm,
    #[error("signed with a key that is not in the key set")]
    UnknownKey,
    #[error("the signature does not match")]
    Signature,
    #[error("not an access token")]
    Type,
    #[error("issued by someone else")]
    Issuer,
    #[error("meant for another audience")]
    Audience,
    #[error("expired")]
    Expired,
}

/// A JSON Web Key Set (RFC 7517) of Ed25519 public keys (RFC 8037).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub kid: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub key_use: &'static str,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

/// The RFC 7638 thumbprint of an Ed25519 public key: base64url(SHA-256) of its JWK's required
/// members, in lexical order, without whitespace.
pub fn key_id(key: &VerifyingKey) -> String {
    let x = BASE64URL.encode(key.as_bytes());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    BASE64URL.encode(Sha256::digest(canonical.as_bytes()))
}

fn decode_key(encoded: &str) -> Option<[u8; 32]> {
    let bytes = BASE64URL.decode(encoded.trim()).ok()?;
    bytes.try_into().ok()
}

/// What is wrong with the configured keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "is not an Ed25519 private key: expected its 32-byte seed in base64url without padding \
         (43 characters)"
    )]
    SigningKey,
    #[error(
        "has an invalid entry at position {0}: expected an Ed25519 public key, 32 bytes in \
         base64url without padding (43 characters)"
    )]
    PreviousKey(usize),
}

fn encode_json(value: &impl Serialize) -> String {
    // Serializing these plain structs cannot fail.
    BASE64URL.encode(serde_json::to_vec(value).expect("JSON-serializable"))
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = BASE64URL.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8037, appendix A.1: a private key and its public key.
    const RFC_SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const RFC_PUBLIC: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const OTHER_SEED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    const EXPECTED: Expected<'static> = Expected {
        issuer: "acme",
        audience: "acme",
    };
    const NOW: i64 = 1_800_000_000;
    /// What the back office expects: a customer-facing token fails it.
    const OTHER_AUDIENCE: Expected<'static> = Expected {
        issuer: "acme",
        audience: "admin",
    };

    fn keys(seed: &str, previous: &str) -> KeySet {
        KeySet::parse(seed, previous).unwrap()
    }

    fn token(keys: &KeySet) -> String {
        keys.sign(&Claims::access(&EXPECTED, "user-1", "session-1", NOW, 900))
    }

    /// `token` with its header replaced by `header` (JSON), payload and signature kept.
    fn with_header(token: &str, header: &str) -> String {
        let (_, rest) = token.split_once('.').unwrap();
        format!("{}.{rest}", BASE64URL.encode(header))
    }

    #[test]
    fn key_ids_are_rfc_7638_thumbprints() {
        // RFC 8037, appendix A.3.
        let keys = keys(RFC_SEED, "");

        assert_eq!(keys.jwks().keys[0].x, RFC_PUBLIC);
        assert_eq!(
            keys.signing_kid(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn verifies_what_it_signs() {
        let keys = keys(RFC_SEED, "");

        let claims = keys.verify(&token(&keys), &EXPECTED, NOW + 10).unwrap();

        assert_eq!(claims.sub, "user-1");
        assert_eq!(claims.sid, "session-1");
        assert_eq!(claims.exp, NOW + 900);
    }

    #[test]
    fn previous_keys_verify_until_removed() {
        let old = keys(RFC_SEED, "");
        let old_token = token(&old);

        let rotated = keys(OTHER_SEED, RFC_PUBLIC);
        let removed = keys(OTHER_SEED, "");

        assert!(rotated.verify(&old_token, &EXPECTED, NOW).is_ok());
        assert_eq!(rotated.jwks().keys.len(), 2);
        assert_eq!(
            removed.verify(&old_token, &EXPECTED, NOW),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn refuses_other_algorithms_before_looking_at_keys() {
        let keys = keys(RFC_SEED, "");
        let token = token(&keys);
        let kid = keys.signing_kid();

        for alg in ["none", "HS256", "RS256", "eddsa"] {
            let forged = with_header(&token, &format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#));
            assert_eq!(
                keys.verify(&forged, &EXPECTED, NOW),
                Err(TokenError::Algorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn refuses_tampered_tokens() {
        let keys = keys(RFC_SEED, "");
        let token = token(&keys);
        let (signed, _) = token.rsplit_once('.').unwrap();
        let (header, _) = signed.split_once('.').unwrap();
        let mut claims = Claims::access(&EXPECTED, "admin", "session-1", NOW, 900);
        claims.sub = "someone-else".into();
        let tampered = format!(
            "{header}.{}.{}",
            encode_json(&claims),
            token.rsplit('.').next().unwrap()
        );

        assert_eq!(
            keys.verify(&tampered, &EXPECTED, NOW),
            Err(TokenError::Signature)
        );
        assert_eq!(
            keys.verify("a.b", &EXPECTED, NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            keys.verify(&format!("{token}.x"), &EXPECTED, NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn checks_expiry_issuer_and_audience() {
        let other_issuer = Expected {
            issuer: "evil",
            audience: "acme",
        };
        // A remembered token (the second set verifies it once first) is checked all the same.
        for keys in [keys(RFC_SEED, ""), keys(RFC_SEED, "").remember_verified(16)] {
            let token = token(&keys);
            assert!(keys.verify(&token, &EXPECTED, NOW).is_ok());

            assert!(keys.verify(&token, &EXPECTED, NOW + 900 + 59).is_ok());
            assert_eq!(
                keys.verify(&token, &EXPECTED, NOW + 900 + 60),
                Err(TokenError::Expired)
            );
            assert_eq!(
                keys.verify(&token, &OTHER_AUDIENCE, NOW),
                Err(TokenError::Audience)
            );
            assert_eq!(
                keys.verify(&token, &other_issuer, NOW),
                Err(TokenError::Issuer)
            );
        }
    }

    #[test]
    fn a_remembered_token_skips_the_signature_check_only() {
        let keys = keys(RFC_SEED, "").remember_verified(16);
        let token = token(&keys);
        let remembered = || keys.verified.as_ref().map_or(0, Cache::len);

        assert!(keys.verify(&token, &EXPECTED, NOW).is_ok());
        assert_eq!(remembered(), 1);
        assert!(keys.verify(&token, &EXPECTED, NOW + 10).is_ok());
        // Another signature over the same header and claims: another token, checked in full.
        let (signed, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{signed}.{}", BASE64URL.encode([0_u8; 64]));
        assert_eq!(
            keys.verify(&forged, &EXPECTED, NOW),
            Err(TokenError::Signature)
        );
        assert_eq!(remembered(), 1);
    }

    #[test]
    fn rejects_malformed_keys() {
        assert_eq!(KeySet::parse("short", "").err(), Some(KeyError::SigningKey));
        assert_eq!(
            KeySet::parse(RFC_SEED, &format!("{RFC_PUBLIC},nope")).err(),
            Some(KeyError::PreviousKey(2))
        );
    }
}
