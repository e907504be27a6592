//! Fresh random secrets for `.env` (signing keys, API keys).
//!
//! Secrets come from the operating system's CSPRNG, so no two workspaces share one. For
//! reproducible snapshot tests only, `SAASKIT_SEED=<u64>` makes the sequence deterministic; it is
//! documented as a test switch and never set by saaskit itself.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::catalog::Generator;

pub const SEED_VARIABLE: &str = "SAASKIT_SEED";

pub struct Secrets {
    rng: ChaCha20Rng,
}

impl Secrets {
    /// Seeded from `SAASKIT_SEED` when it holds a number, from the OS otherwise.
    pub fn from_environment() -> Secrets {
        match std::env::var(SEED_VARIABLE)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(seed) => Secrets::seeded(seed),
            None => Secrets {
                rng: rand::make_rng(),
            },
        }
    }

    pub fn seeded(seed: u64) -> Secrets {
        Secrets {
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    pub fn generate(&mut self, generator: Generator) -> String {
        let mut bytes = [0u8; 32];
        self.rng.fill_bytes(&mut bytes);
        match generator {
            Generator::Hex32 => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            Generator::Base64Url32 => base64url(&bytes),
        }
    }
}

/// Unpadded base64url (RFC 4648 §5); a dozen lines rather than a dependency for one call.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn seeded_sequences_repeat_and_unseeded_ones_differ() {
        let a = Secrets::seeded(7).generate(Generator::Hex32);
        let b = Secrets::seeded(7).generate(Generator::Hex32);
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        let c = Secrets {
            rng: rand::make_rng(),
        }
        .generate(Generator::Hex32);
        let d = Secrets {
            rng: rand::make_rng(),
        }
        .generate(Generator::Hex32);
        assert_ne!(c, d);
    }
}
