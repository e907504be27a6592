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
            Generator::Base64Url32 => crate::signing_keys::encode(&bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
