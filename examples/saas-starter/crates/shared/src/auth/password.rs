//! Passwords: the policy new passwords must meet, and argon2id hashing off the async runtime.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Shorter passwords are refused: length is what makes a password hard to guess.
pub const MIN_CHARS: usize = 10;

/// Longer passwords are refused, so that hashing one costs a bounded amount of work.
pub const MAX_BYTES: usize = 1024;

/// Why a new password is refused, worded to follow the field name ("password must be ...").
pub fn policy_violation(password: &str) -> Option<String> {
    if password.chars().count() < MIN_CHARS {
        Some(format!("must be at least {MIN_CHARS} characters long"))
    } else if password.len() > MAX_BYTES {
        Some(format!("must be at most {MAX_BYTES} bytes long"))
    } else if is_common(password) {
        Some("is too common; choose one that is harder to guess".to_owned())
    } else {
        None
    }
}

fn is_common(password: &str) -> bool {
    static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
        include_str!("common-passwords.txt")
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    });
    COMMON.contains(password.to_lowercase().as_str())
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The password matches; `rehash` holds a new hash when the stored one was made with other
    /// parameters than today's, to be saved in its place.
    Match {
        rehash: Option<String>,
    },
    Mismatch,
}

/// Hashes and verifies passwords with argon2id at OWASP's minimum parameters (19 MiB of memory,
/// 2 passes, 1 lane), on Tokio's blocking threads.
///
/// One hash takes tens of milliseconds of CPU: run on the async runtime, a handful of concurrent
/// logins would stall every other request. At most one hash per CPU core but one runs at a time
/// (more would only queue inside the kernel, holding 19 MiB each), which leaves a core to the
/// runtime so that the rest of the API stays responsive while people sign in.
#[derive(Clone)]
pub struct Passwords {
    argon2: Argon2<'static>,
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified when a login names an unknown account so that the
    /// answer takes as long as for a wrong password and does not reveal which emails exist.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Fails only when the operating system cannot provide random bytes.
    pub fn new() -> Result<Self, getrandom::Error> {
        let params = Params::DEFAULT;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut random = [0_u8; 32];
        getrandom::fill(&mut random)?;
        let dummy_hash = argon2
            .hash_password(&random)
            .expect("argon2 hashes 32-byte passwords with its default parameters")
            .to_string();
        Ok(Self {
            argon2,
            params,
            permits: Arc::new(Semaphore::new(cores.saturating_sub(1).max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) of `password`, with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let argon2 = self.argon2.clone();
        self.off_runtime(move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(ApiError::internal)
        })
        .await
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no account,
    /// which always ends in [`Verified::Mismatch`] after the same amount of work.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verified, ApiError> {
        let argon2 = self.argon2.clone();
        let params = self.params.clone();
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        self.off_runtime(move || {
            let hash = PasswordHash::new(&stored).map_err(ApiError::internal)?;
            if argon2.verify_password(password.as_bytes(), &hash).is_err() || !exists {
                return Ok(Verified::Mismatch);
            }
            let rehash = if is_current(&params, &hash) {
                None
            } else {
                let new_hash = argon2.hash_password(password.as_bytes());
                Some(new_hash.map_err(ApiError::internal)?.to_string())
            };
            Ok(Verified::Match { rehash })
        })
        .await
    }

    async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        // The semaphore is never closed, so acquiring only fails if that changes.
        let _permit = self.permits.acquire().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(ApiError::internal)?
    }
}

/// Whether `hash` was made with argon2id, its current version, and the `current` parameters.
fn is_current(current: &Params, hash: &PasswordHash) -> bool {
    hash.algorithm == argon2::ARGON2ID_IDENT
        && hash.version == Some(Version::V0x13.into())
        && Params::try_from(hash).is_ok_and(|params| {
            params.m_cost() == current.m_cost()
                && params.t_cost() == current.t_cost()
                && params.p_cost() == current.p_cost()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_wants_long_uncommon_passwords() {
        assert!(policy_violation("correct horse battery staple").is_none());
        assert!(policy_violation("short").unwrap().contains("at least 10"));
        assert!(
            policy_violation("QwertyUiop")
                .unwrap()
                .contains("too common")
        );
        assert!(
            policy_violation("1234567890")
                .unwrap()
                .contains("too common")
        );
        assert!(
            policy_violation(&"x".repeat(MAX_BYTES + 1))
                .unwrap()
                .contains("at most")
        );
        // Characters, not bytes: ten accented letters are ten characters.
        assert!(policy_violation("éàèùâêîôûç").is_none());
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let passwords = Passwords::new().unwrap();

        let hash = passwords.hash("correct horse".into()).await.unwrap();

        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap(),
            Verified::Match { rehash: None }
        );
        assert_eq!(
            passwords
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap(),
            Verified::Mismatch
        );
        assert_eq!(
            passwords.verify("anything".into(), None).await.unwrap(),
            Verified::Mismatch
        );
    }

    #[tokio::test]
    async fn hashes_with_old_parameters_are_upgraded() {
        let passwords = Passwords::new().unwrap();
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let old_hash = weak.hash_password(b"correct horse").unwrap().to_string();

        let verified = passwords
            .verify("correct horse".into(), Some(old_hash))
            .await
            .unwrap();

        let Verified::Match {
            rehash: Some(new_hash),
        } = verified
        else {
            panic!("expected a rehash, got {verified:?}");
        };
        assert!(new_hash.contains("m=19456,t=2,p=1"), "{new_hash}");
    }
}
