//! Fresh random secrets for `.env` (signing keys, API keys).
//!
//! Secrets come from the operating system's CSPRNG, so no two workspaces share one. For
//! reproducible snapshot tests only, `SAASKIT_SEED=<u64>` makes them deterministic; it is
//! documented as a test switch and never set by saaskit itself.
//!
//! A seeded secret is public (the example workspace and saaskit's tests use seed 42), so it is
//! marked: its first 12 bytes are [`SEEDED_MARKER`], which reads `PUBLIC-TEST-SEED` in base64url
//! and `3d404b202f931124fe484103` in hex. A generated service running in production refuses a
//! secret holding either (see the generated `config.rs`), whatever the seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use crate::model::catalog::Generator;

pub const SEED_VARIABLE: &str = "SAASKIT_SEED";

/// The bytes every seeded secret starts with: `PUBLIC-TEST-SEED` once base64url-encoded.
const SEEDED_MARKER: [u8; 12] = [
    0x3d, 0x40, 0x4b, 0x20, 0x2f, 0x93, 0x11, 0x24, 0xfe, 0x48, 0x41, 0x03,
];

pub enum Secrets {
    Random(Box<ChaCha20Rng>),
    /// Each secret derived from the seed and its key's name, so that a key gets the same value
    /// whichever command generates it and whatever was generated before.
    Seeded(u64),
}

impl Secrets {
    /// Seeded from `SAASKIT_SEED` when it holds a number, from the OS otherwise.
    pub fn from_environment() -> Secrets {
        match std::env::var(SEED_VARIABLE)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(seed) => Secrets::Seeded(seed),
            None => Secrets::Random(Box::new(rand::make_rng())),
        }
    }

    /// A new secret for environment key `key`.
    pub fn generate(&mut self, key: &str, generator: Generator) -> String {
        let mut bytes = [0u8; 32];
        match self {
            Secrets::Random(rng) => rng.fill_bytes(&mut bytes),
            Secrets::Seeded(seed) => {
                let digest = Sha256::new()
                    .chain_update(seed.to_le_bytes())
                    .chain_update(key.as_bytes())
                    .finalize();
                ChaCha20Rng::from_seed(digest.into()).fill_bytes(&mut bytes);
                bytes[..SEEDED_MARKER.len()].copy_from_slice(&SEEDED_MARKER);
            }
        }
        match generator {
            Generator::Hex32 => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            Generator::Base64Url32 => crate::edit::signing_keys::encode(&bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_secrets_depend_on_seed_and_key_only_and_random_ones_differ() {
        let mut seeded = Secrets::Seeded(7);
        let a = seeded.generate("API_KEY", Generator::Hex32);
        seeded.generate("OTHER_KEY", Generator::Hex32);
        let b = Secrets::Seeded(7).generate("API_KEY", Generator::Hex32);
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            Secrets::Seeded(7).generate("OTHER_KEY", Generator::Hex32)
        );
        assert_ne!(a, Secrets::Seeded(8).generate("API_KEY", Generator::Hex32));
        let c = Secrets::Random(Box::new(rand::make_rng())).generate("API_KEY", Generator::Hex32);
        let d = Secrets::Random(Box::new(rand::make_rng())).generate("API_KEY", Generator::Hex32);
        assert_ne!(c, d);
    }

    #[test]
    fn seeded_secrets_are_marked_public_in_both_encodings() {
        let mut seeded = Secrets::Seeded(42);
        let base64 = seeded.generate("AUTH_SIGNING_KEY", Generator::Base64Url32);
        let hex = seeded.generate("API_KEY", Generator::Hex32);
        assert!(base64.starts_with("PUBLIC-TEST-SEED"), "{base64}");
        assert_eq!(base64.len(), 43);
        assert!(hex.starts_with("3d404b202f931124fe484103"), "{hex}");
        let random =
            Secrets::Random(Box::new(rand::make_rng())).generate("KEY", Generator::Base64Url32);
        assert!(!random.contains("PUBLIC-TEST-SEED"), "{random}");
    }
}
