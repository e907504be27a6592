//! The generated api's access-token signing keys, as `.env` holds them: parsing, key ids, and
//! the text of a rotation or a removal. Pure: every function takes the file's text and returns
//! the planned text; `commands::keys` reads and writes.
//!
//! `AUTH_SIGNING_KEY` is the base64url (no padding) of a 32-byte Ed25519 seed;
//! `AUTH_PREVIOUS_KEYS` a comma-separated list of base64url (no padding) 32-byte Ed25519 public
//! keys, possibly empty. A key id (`kid`) is the RFC 7638 JWK thumbprint of the public key, the
//! id the api puts in its tokens and its JWKS. An edit rewrites the values only: every other byte
//! of the file (comments, order, quotes, line endings) stays as it was.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::edit::env_file;

pub const SIGNING_KEY: &str = "AUTH_SIGNING_KEY";
pub const PREVIOUS_KEYS: &str = "AUTH_PREVIOUS_KEYS";

pub type Seed = [u8; 32];
pub type PublicKey = [u8; 32];

/// What a valid key looks like, for error messages.
fn shape(what: &str) -> String {
    format!(
        "the base64url (no padding) of a 32-byte Ed25519 {what}: 43 characters of A-Z a-z 0-9 - _"
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{file} has no {SIGNING_KEY} line: the api's signing key comes with the `auth` module \
         (`saaskit add auth` installs it)"
    )]
    MissingSigningKey { file: String },
    #[error(
        "{file}:{second}: {key} is set a second time (first at {file}:{first}): keep one of them"
    )]
    Duplicate {
        file: String,
        key: &'static str,
        first: usize,
        second: usize,
    },
    #[error("{file}:{line}: {key} {problem}")]
    Malformed {
        file: String,
        line: usize,
        key: &'static str,
        problem: String,
    },
    #[error(
        "`{kid}` is the kid of the signing key ({SIGNING_KEY}), which cannot be removed: \
         run `saaskit keys rotate` first, deploy, wait AUTH_ACCESS_TOKEN_TTL_SECS, then remove it"
    )]
    RemovingSigningKey { kid: String },
    #[error("no previous key in {file} has the kid `{kid}`; the keys are:\n{known}")]
    UnknownKid {
        file: String,
        kid: String,
        known: String,
    },
}

// ------------------------------------------------------------------------------------ crypto

/// The Ed25519 public key of a 32-byte seed.
pub fn public_key(seed: &Seed) -> PublicKey {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// The RFC 7638 JWK thumbprint of an Ed25519 public key: base64url of the SHA-256 of the
/// canonical JWK (members sorted, no whitespace).
pub fn kid(public: &PublicKey) -> String {
    let jwk = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        encode(public)
    );
    encode(&Sha256::digest(jwk.as_bytes()))
}

// ------------------------------------------------------------------------------------ base64url

/// Unpadded base64url (RFC 4648 §5).
pub fn encode(bytes: &[u8]) -> String {
    BASE64URL.encode(bytes)
}

/// Strict unpadded base64url, as the generated services read keys: `None` on any other
/// character, on padding, on an impossible length, and on non-zero trailing bits (so that each
/// byte string has exactly one spelling).
pub fn decode(text: &str) -> Option<Vec<u8>> {
    BASE64URL.decode(text).ok()
}

/// The 32 bytes of a base64url key (a seed or a public key), `None` when it is not one.
pub fn decode32(text: &str) -> Option<[u8; 32]> {
    decode(text)?.try_into().ok()
}

// ------------------------------------------------------------------------------------ the file

/// Where a value sits in the file: its line and the byte range of the value (inside quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    line: usize,
    start: usize,
    end: usize,
    /// Just past the line's terminator (or the end of the text).
    line_end: usize,
}

/// One key and its value, found on a `KEY=value` line.
#[derive(Debug, Clone, Copy)]
struct Assignment<'t> {
    key: &'t str,
    value: &'t str,
    span: Span,
}

/// The keys of an env file, parsed and checked.
#[derive(Debug, Clone)]
pub struct KeyFile<'t> {
    /// How the file is named in messages (`.env`).
    file: String,
    text: &'t str,
    /// `None` while `AUTH_SIGNING_KEY` is empty.
    signing: Option<Seed>,
    signing_span: Span,
    previous: Vec<PublicKey>,
    previous_span: Option<Span>,
}

/// A key as `saaskit keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    pub kid: String,
    /// The public key, base64url.
    pub x: String,
    /// `signing` or `previous`.
    pub role: &'static str,
}

/// What a rotation plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub text: String,
    /// The kid of the key that signed until now; `None` when `AUTH_SIGNING_KEY` was empty.
    pub old_kid: Option<String>,
    pub new_kid: String,
}

impl<'t> KeyFile<'t> {
    /// Finds and checks both keys wherever they are in the file. `file` names it in errors.
    pub fn parse(file: &str, text: &'t str) -> Result<KeyFile<'t>, KeyError> {
        let malformed = |line: usize, key: &'static str, problem: String| KeyError::Malformed {
            file: file.to_string(),
            line,
            key,
            problem,
        };
        let mut signing: Option<Assignment> = None;
        let mut previous: Option<Assignment> = None;
        for assignment in assignments(text) {
            let assignment = match assignment {
                Ok(assignment) => assignment,
                // Other keys are the services' business (dotenv allows multi-line values).
                Err((line, key, problem)) => match known_key(key) {
                    Some(key) => return Err(malformed(line, key, problem)),
                    None => continue,
                },
            };
            let Some(key) = known_key(assignment.key) else {
                continue;
            };
            let slot = if key == SIGNING_KEY {
                &mut signing
            } else {
                &mut previous
            };
            if let Some(first) = slot {
                return Err(KeyError::Duplicate {
                    file: file.to_string(),
                    key,
                    first: first.span.line,
                    second: assignment.span.line,
                });
            }
            *slot = Some(assignment);
        }
        let signing_line = signing.ok_or_else(|| KeyError::MissingSigningKey {
            file: file.to_string(),
        })?;
        let seed = match signing_line.value {
            "" => None,
            value => Some(decode32(value).ok_or_else(|| {
                malformed(
                    signing_line.span.line,
                    SIGNING_KEY,
                    format!(
                        "is not a valid key: `{}` is not the base64url of 32 bytes. A valid value \
                         is {}. Put the right value back, or empty it and run `saaskit keys \
                         rotate` for a fresh key (tokens signed with the old one then stop \
                         verifying)",
                        redact(value),
                        shape("seed")
                    ),
                )
            })?),
        };
        let mut keys = Vec::new();
        if let Some(line) = &previous {
            for (index, entry) in line.value.split(',').map(str::trim).enumerate() {
                if entry.is_empty() {
                    continue;
                }
                let key = decode32(entry)
                    .filter(|bytes| VerifyingKey::from_bytes(bytes).is_ok())
                    .ok_or_else(|| {
                        malformed(
                            line.span.line,
                            PREVIOUS_KEYS,
                            format!(
                                "is not valid: entry {} (`{entry}`) is not an Ed25519 public key. \
                                 Each comma-separated entry is {}, as `saaskit keys rotate` \
                                 writes it",
                                index + 1,
                                shape("public key")
                            ),
                        )
                    })?;
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        Ok(KeyFile {
            file: file.to_string(),
            text,
            signing: seed,
            signing_span: signing_line.span,
            previous: keys,
            previous_span: previous.map(|a| a.span),
        })
    }

    /// The signing key (when set) first, then each previous key.
    pub fn keys(&self) -> Vec<KeyInfo> {
        let signing = self
            .signing
            .as_ref()
            .map(|seed| (public_key(seed), "signing"));
        let previous = self.previous.iter().map(|key| (*key, "previous"));
        signing
            .into_iter()
            .chain(previous)
            .map(|(key, role)| KeyInfo {
                kid: kid(&key),
                x: encode(&key),
                role,
            })
            .collect()
    }

    pub fn signing_kid(&self) -> Option<String> {
        self.signing.as_ref().map(|seed| kid(&public_key(seed)))
    }

    /// The seed currently in `AUTH_SIGNING_KEY`, if any.
    pub fn signing_seed(&self) -> Option<&Seed> {
        self.signing.as_ref()
    }

    /// `new_seed` becomes the signing key; the old signing key's public key goes first in
    /// `AUTH_PREVIOUS_KEYS` (added after the signing key's line when the file has none).
    pub fn rotate(&self, new_seed: &Seed) -> Rotation {
        let old = self.signing.as_ref().map(public_key);
        let previous: Vec<PublicKey> = old
            .into_iter()
            .chain(self.previous.iter().copied().filter(|k| Some(*k) != old))
            .collect();
        let mut edits = vec![(
            self.signing_span.start..self.signing_span.end,
            encode(new_seed),
        )];
        let list = join(&previous);
        match self.previous_span {
            Some(span) => edits.push((span.start..span.end, list)),
            None => {
                let line_end = self.signing_span.line_end;
                let line = format!("{PREVIOUS_KEYS}={list}");
                let inserted = match terminator(self.text, line_end) {
                    Some(ending) => format!("{line}{ending}"),
                    // The signing key's line is the last and has no terminator: keep it so.
                    None => format!("{}{line}", dominant_ending(self.text)),
                };
                edits.push((line_end..line_end, inserted));
            }
        }
        Rotation {
            text: apply(self.text, edits),
            old_kid: old.as_ref().map(kid),
            new_kid: kid(&public_key(new_seed)),
        }
    }

    /// The text without the previous key whose kid is `target`.
    pub fn remove(&self, target: &str) -> Result<String, KeyError> {
        if self.signing_kid().as_deref() == Some(target) {
            return Err(KeyError::RemovingSigningKey {
                kid: target.to_string(),
            });
        }
        let (Some(span), Some(position)) = (
            self.previous_span,
            self.previous.iter().position(|k| kid(k) == target),
        ) else {
            let known: Vec<String> = self
                .keys()
                .iter()
                .map(|k| format!("  {}  {}", k.kid, k.role))
                .collect();
            return Err(KeyError::UnknownKid {
                file: self.file.clone(),
                kid: target.to_string(),
                known: if known.is_empty() {
                    "  (none)".to_string()
                } else {
                    known.join("\n")
                },
            });
        };
        let mut previous = self.previous.clone();
        previous.remove(position);
        Ok(apply(
            self.text,
            vec![(span.start..span.end, join(&previous))],
        ))
    }
}

fn known_key(key: &str) -> Option<&'static str> {
    [SIGNING_KEY, PREVIOUS_KEYS].into_iter().find(|k| *k == key)
}

fn join(keys: &[PublicKey]) -> String {
    keys.iter().map(|k| encode(k)).collect::<Vec<_>>().join(",")
}

/// Shows a malformed secret without printing it whole.
fn redact(value: &str) -> String {
    match value.char_indices().nth(6) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_string(),
    }
}

/// Replaces byte ranges of `text` (which do not overlap).
fn apply(text: &str, mut edits: Vec<(std::ops::Range<usize>, String)>) -> String {
    edits.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut out = text.to_string();
    for (range, replacement) in edits {
        out.replace_range(range, &replacement);
    }
    out
}

/// The terminator of the line that ends at `line_end`, if it has one.
fn terminator(text: &str, line_end: usize) -> Option<&'static str> {
    let before = &text[..line_end];
    if before.ends_with("\r\n") {
        Some("\r\n")
    } else if before.ends_with('\n') {
        Some("\n")
    } else {
        None
    }
}

fn dominant_ending(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

/// Each assignment of an env file as the services read it ([`env_file::entries`]), with the
/// span of its value; an error (line, key, problem) for a line they cannot read.
fn assignments(text: &str) -> impl Iterator<Item = Result<Assignment<'_>, (usize, &str, String)>> {
    env_file::entries(text)
        .into_iter()
        .filter_map(move |entry| match entry {
            Ok(entry) => Some(Ok(Assignment {
                key: entry.key,
                value: &text[entry.span.clone()],
                span: Span {
                    line: entry.line,
                    start: entry.span.start,
                    end: entry.span.end,
                    line_end: entry.line_end,
                },
            })),
            Err(error) => error.key.map(|key| Err((error.line, key, error.problem))),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 A.1 and A.3.
    const RFC_SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const RFC_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const RFC_KID: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

    fn seed(byte: u8) -> Seed {
        [byte; 32]
    }

    fn x(seed: &Seed) -> String {
        encode(&public_key(seed))
    }

    fn rfc_seed() -> Seed {
        decode32(RFC_SEED).unwrap()
    }

    #[test]
    fn kid_and_public_key_match_the_rfc_8037_vectors() {
        assert_eq!(encode(&public_key(&rfc_seed())), RFC_X);
        assert_eq!(kid(&decode32(RFC_X).unwrap()), RFC_KID);
    }

    #[test]
    fn base64url_round_trips_and_rejects_what_is_not_canonical() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg");
        assert_eq!(encode(b"fo"), "Zm8");
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        for bytes in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            &[0xfb, 0xff, 0x00, 0x7f],
        ] {
            assert_eq!(decode(&encode(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(decode("Zh"), None, "non-zero trailing bits");
        assert_eq!(decode("Zg=="), None, "padding");
        assert_eq!(decode("Z"), None, "impossible length");
        assert_eq!(decode("+/8"), None, "standard alphabet");
    }

    #[test]
    fn both_keys_are_found_wherever_they_are_and_listed() {
        let text = format!(
            "# top\nexport AUTH_PREVIOUS_KEYS = \"{}\"   # kept\nOTHER=1\nAUTH_SIGNING_KEY={RFC_SEED}\n",
            x(&seed(1))
        );
        let file = KeyFile::parse(".env", &text).unwrap();
        let keys = file.keys();
        assert_eq!(keys.len(), 2);
        assert_eq!((keys[0].kid.as_str(), keys[0].role), (RFC_KID, "signing"));
        assert_eq!(keys[0].x, RFC_X);
        assert_eq!(keys[1].kid, kid(&public_key(&seed(1))));
        assert_eq!(keys[1].role, "previous");
    }

    #[test]
    fn rotate_changes_only_the_two_values() {
        let text = format!(
            "# comment\r\nA=1\r\n# <<<begin:auth@env>>>\r\nAUTH_SIGNING_KEY={RFC_SEED}\r\nAUTH_PREVIOUS_KEYS={}\r\n# <<<end:auth@env>>>\r\nZ=2",
            x(&seed(1))
        );
        let file = KeyFile::parse(".env", &text).unwrap();
        let rotation = file.rotate(&seed(2));
        assert_eq!(rotation.old_kid.as_deref(), Some(RFC_KID));
        assert_eq!(rotation.new_kid, kid(&public_key(&seed(2))));
        let expected = format!(
            "# comment\r\nA=1\r\n# <<<begin:auth@env>>>\r\nAUTH_SIGNING_KEY={}\r\nAUTH_PREVIOUS_KEYS={RFC_X},{}\r\n# <<<end:auth@env>>>\r\nZ=2",
            encode(&seed(2)),
            x(&seed(1))
        );
        assert_eq!(rotation.text, expected);
        let after = KeyFile::parse(".env", &rotation.text).unwrap();
        assert_eq!(after.keys().len(), 3);
    }

    #[test]
    fn rotate_keeps_quotes_and_adds_no_duplicate() {
        let text = format!(
            "AUTH_SIGNING_KEY='{RFC_SEED}'\nAUTH_PREVIOUS_KEYS=\" {RFC_X} , {}\"\n",
            x(&seed(1))
        );
        let rotation = KeyFile::parse(".env", &text).unwrap().rotate(&seed(2));
        assert_eq!(
            rotation.text,
            format!(
                "AUTH_SIGNING_KEY='{}'\nAUTH_PREVIOUS_KEYS=\"{RFC_X},{}\"\n",
                encode(&seed(2)),
                x(&seed(1))
            )
        );
    }

    #[test]
    fn rotate_adds_the_previous_keys_line_when_there_is_none() {
        let rotation = KeyFile::parse(".env", &format!("A=1\nAUTH_SIGNING_KEY={RFC_SEED}\nB=2\n"))
            .unwrap()
            .rotate(&seed(2));
        assert_eq!(
            rotation.text,
            format!(
                "A=1\nAUTH_SIGNING_KEY={}\nAUTH_PREVIOUS_KEYS={RFC_X}\nB=2\n",
                encode(&seed(2))
            )
        );
        let at_the_end = KeyFile::parse(".env", &format!("A=1\r\nAUTH_SIGNING_KEY={RFC_SEED}"))
            .unwrap()
            .rotate(&seed(2));
        assert_eq!(
            at_the_end.text,
            format!(
                "A=1\r\nAUTH_SIGNING_KEY={}\r\nAUTH_PREVIOUS_KEYS={RFC_X}",
                encode(&seed(2))
            )
        );
    }

    #[test]
    fn rotate_fills_an_empty_signing_key_without_a_previous_key() {
        let file = KeyFile::parse(".env", "AUTH_SIGNING_KEY=\nAUTH_PREVIOUS_KEYS=\n").unwrap();
        assert!(file.keys().is_empty());
        let rotation = file.rotate(&seed(2));
        assert_eq!(rotation.old_kid, None);
        assert_eq!(
            rotation.text,
            format!(
                "AUTH_SIGNING_KEY={}\nAUTH_PREVIOUS_KEYS=\n",
                encode(&seed(2))
            )
        );
    }

    #[test]
    fn remove_drops_one_previous_key_and_refuses_the_signing_and_unknown_ones() {
        let text = format!(
            "AUTH_SIGNING_KEY={RFC_SEED} # inline\nAUTH_PREVIOUS_KEYS={},{} # inline\n",
            x(&seed(1)),
            x(&seed(2))
        );
        let file = KeyFile::parse(".env", &text).unwrap();
        let first = kid(&public_key(&seed(1)));
        assert_eq!(
            file.remove(&first).unwrap(),
            format!(
                "AUTH_SIGNING_KEY={RFC_SEED} # inline\nAUTH_PREVIOUS_KEYS={} # inline\n",
                x(&seed(2))
            )
        );
        assert_eq!(
            file.remove(RFC_KID),
            Err(KeyError::RemovingSigningKey {
                kid: RFC_KID.into()
            })
        );
        let unknown = file.remove("nope").unwrap_err().to_string();
        assert!(
            unknown.contains("no previous key in .env has the kid `nope`"),
            "{unknown}"
        );
        assert!(
            unknown.contains(&format!("{RFC_KID}  signing")),
            "{unknown}"
        );
        assert!(unknown.contains(&format!("{first}  previous")), "{unknown}");
        let last = KeyFile::parse(".env", &file.remove(&first).unwrap())
            .unwrap()
            .remove(&kid(&public_key(&seed(2))))
            .unwrap();
        assert_eq!(
            last,
            format!("AUTH_SIGNING_KEY={RFC_SEED} # inline\nAUTH_PREVIOUS_KEYS= # inline\n")
        );
    }

    #[test]
    fn parse_errors_name_the_key_and_the_line() {
        let missing = KeyFile::parse(".env", "A=1\n# AUTH_SIGNING_KEY=x\n").unwrap_err();
        assert!(matches!(missing, KeyError::MissingSigningKey { .. }));
        assert!(
            missing.to_string().contains("saaskit add auth"),
            "{missing}"
        );

        let short = KeyFile::parse(".env", "A=1\nAUTH_SIGNING_KEY=abcdefghijk\n").unwrap_err();
        let message = short.to_string();
        assert!(
            message.starts_with(".env:2: AUTH_SIGNING_KEY is not a valid key"),
            "{message}"
        );
        assert!(message.contains("43 characters"), "{message}");
        assert!(
            !message.contains("abcdefghijk"),
            "the secret is not printed whole: {message}"
        );

        let previous = format!("AUTH_SIGNING_KEY={RFC_SEED}\n\nAUTH_PREVIOUS_KEYS={RFC_X},abc\n");
        let message = KeyFile::parse(".env", &previous).unwrap_err().to_string();
        assert!(
            message.starts_with(".env:3: AUTH_PREVIOUS_KEYS is not valid: entry 2 (`abc`)"),
            "{message}"
        );

        let twice = format!("AUTH_SIGNING_KEY={RFC_SEED}\nAUTH_SIGNING_KEY={RFC_SEED}\n");
        assert_eq!(
            KeyFile::parse(".env", &twice).unwrap_err().to_string(),
            ".env:2: AUTH_SIGNING_KEY is set a second time (first at .env:1): keep one of them"
        );

        let unclosed = KeyFile::parse(".env", "AUTH_SIGNING_KEY=\"abc\n").unwrap_err();
        assert!(
            unclosed
                .to_string()
                .starts_with(".env:1: AUTH_SIGNING_KEY has an opening \""),
            "{unclosed}"
        );
    }

    #[test]
    fn a_point_that_is_not_on_the_curve_is_not_a_public_key() {
        let bytes = (0..=255u8)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .expect("about half of all y coordinates are not on the curve");
        let text = format!("AUTH_SIGNING_KEY=\nAUTH_PREVIOUS_KEYS={}\n", encode(&bytes));
        assert!(KeyFile::parse(".env", &text).is_err());
    }
}
