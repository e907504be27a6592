//! Typed configuration, read from the environment once at start-up.
//!
//! Each configuration section (`ServerConfig`, `HttpConfig`, ...) has a `from_env(&mut Env)`
//! constructor that reads its keys through [`Env`]. A missing or malformed key does not stop the
//! reading: `Env` records the problem and the section carries on with a placeholder value. Once
//! every section is read, [`Env::finish`] refuses to start when anything was recorded, naming
//! every bad key at once, so a placeholder never reaches a running service and a broken
//! deployment is fixed in one round trip instead of one restart per key.
//!
//! Values come from the process environment and, in development, from a `.env` file in the
//! current directory or one of its parents. A variable set in the environment wins over `.env`,
//! and `.env` is never copied into the process environment: it only feeds [`Env`]. A variable set
//! to the empty string counts as unset, so `.env.example` can list keys without values.
//!
//! # Production mode
//!
//! `APP_ENV` says where the service runs: `production` (also when the key is unset) or
//! `development` (what the generated `.env` sets). In production, secrets read with
//! [`Env::required_secret`] and [`Env::optional_secret`] must not be values anyone can know: the
//! test values saaskit derives from a public seed (`SAASKIT_SEED`, as in the committed example
//! workspace) and placeholders are refused. The mode comes from the environment, not from the
//! build profile: release binaries also run on developers' machines and debug ones in staging,
//! and a deployment that sets no `APP_ENV` gets the checks.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// Why a URL asking for TLS (`sslmode=verify-full`, `rediss://`) is refused by a build without the
/// `tls` feature: connecting in plain text instead would send passwords and data unencrypted.
pub const TLS_NOT_BUILT: &str = "asks for TLS, which this build leaves out: build the services \
     with the `tls` feature (`cargo build --release --features tls`)";

/// Reads configuration values and collects every problem found on the way. Not `Debug`: it
/// holds every variable of the environment, secrets included.
pub struct Env {
    vars: HashMap<String, String>,
    problems: Vec<Problem>,
    /// `APP_ENV` is `production`: secrets anyone can know are refused.
    production: bool,
}

#[derive(Debug)]
struct Problem {
    key: String,
    reason: String,
}

impl Env {
    /// The process environment, over the values of `.env` when there is one.
    pub fn load() -> Self {
        let mut env = Self::with_vars(HashMap::new());
        match dotenvy::dotenv_iter() {
            Ok(entries) => {
                for entry in entries {
                    match entry {
                        Ok((key, value)) => {
                            env.vars.insert(key, value);
                        }
                        Err(error) => {
                            env.record(".env", format!("is invalid: {error}"));
                            break;
                        }
                    }
                }
            }
            Err(error) if error.not_found() => {}
            Err(error) => env.record(".env", format!("cannot be read: {error}")),
        }
        // A value that is not UTF-8 is kept lossily: any key read from it fails to parse and is
        // reported, which is all configuration can do with it.
        env.vars.extend(std::env::vars_os().map(|(key, value)| {
            (
                key.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        }));
        env.read_app_env();
        env
    }

    /// Exactly the given variables, ignoring the process environment and `.env`: for tests.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut env = Self::with_vars(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        env.read_app_env();
        env
    }

    fn with_vars(vars: HashMap<String, String>) -> Self {
        Self {
            vars,
            problems: Vec::new(),
            production: true,
        }
    }

    fn read_app_env(&mut self) {
        self.production = self.optional("APP_ENV", AppEnv::Production) == AppEnv::Production;
    }

    /// A variable that must be set. When it is missing or malformed, the problem is recorded and
    /// the caller gets `None`, to replace with a placeholder that [`Env::finish`] keeps from ever
    /// being used.
    pub fn required<T>(&mut self, key: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        if self.get(key).is_none() {
            self.record(key, "is not set");
            return None;
        }
        self.parse(key)
    }

    /// A variable with a default for when it is unset. A malformed value is recorded as a
    /// problem (and the default returned in its place): a typo must not silently fall back.
    pub fn optional<T>(&mut self, key: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.parse(key).unwrap_or(default)
    }

    /// A secret that must be set, such as a signing key. In production, a value anyone can know
    /// (see [`publicly_known`]) is recorded as a problem.
    pub fn required_secret(&mut self, key: &str) -> Option<String> {
        let value: String = self.required(key)?;
        self.refuse_public_secret(key, &value);
        Some(value)
    }

    /// A secret that may be left unset (empty) to turn off what it protects, such as an API key;
    /// checked like [`Env::required_secret`] when set.
    pub fn optional_secret(&mut self, key: &str) -> String {
        let value: String = self.optional(key, String::new());
        if !value.is_empty() {
            self.refuse_public_secret(key, &value);
        }
        value
    }

    /// A key that an earlier version read and this one does not: when it still has a value, the
    /// problem is recorded with `instead`, what replaced it. A value left behind by an upgrade
    /// then stops start-up with the way out, instead of being ignored without a word.
    pub fn retired(&mut self, key: &str, instead: &str) {
        if self.get(key).is_some() {
            self.record(
                key,
                format!("is no longer read: {instead}; then delete {key}"),
            );
        }
    }

    fn refuse_public_secret(&mut self, key: &str, value: &str) {
        if self.production
            && let Some(what) = publicly_known(value)
        {
            self.record(
                key,
                format!(
                    "holds {what}, which anyone can know: a production service (APP_ENV=production, \
                     the default when it is unset) needs a fresh random secret here (a workspace \
                     generated without SAASKIT_SEED gets one in its .env). On a development \
                     machine, set APP_ENV=development instead"
                ),
            );
        }
    }

    /// Whether `APP_ENV` is `production` (also when it is unset): for settings that production
    /// needs and development may leave out.
    pub fn is_production(&self) -> bool {
        self.production
    }

    /// Records a problem that parsing alone cannot see, such as a value out of range.
    pub fn record(&mut self, key: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            reason: reason.into(),
        });
    }

    /// Fails when any key was missing or malformed, naming each of them.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// The parsed value of `key`, or `None` when it is unset or malformed (recorded).
    fn parse<T>(&mut self, key: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        // The value itself stays out of the message: it may be a secret.
        let parsed = self.get(key)?.parse::<T>();
        parsed
            .map_err(|error| self.record(key, format!("is invalid: {error}")))
            .ok()
    }
}

/// Where the service runs (`APP_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppEnv {
    Production,
    Development,
}

impl FromStr for AppEnv {
    type Err = &'static str;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "production" => Ok(Self::Production),
            "development" => Ok(Self::Development),
            _ => Err("must be `production` or `development`"),
        }
    }
}

/// What makes `value` a secret anyone can know, if anything:
///
/// - saaskit's test values: with `SAASKIT_SEED` set, `saaskit` derives secrets from the seed
///   (public in the example workspace and in saaskit's tests) and starts each one with
///   `PUBLIC-TEST-SEED` (in hex: `3d404b202f931124fe484103`), so that any of them is recognised
///   whatever the seed, and nothing else is (a random secret holds it once in 2^96 tries);
/// - placeholders: words such as `change` or `example`, or fewer than 10 different characters
///   (`changeme`, `xxxx...`, `0000...`). A random secret of 32 bytes, hex or base64, has about
///   16 or 31 different characters and holds such a word once in millions of tries.
fn publicly_known(value: &str) -> Option<&'static str> {
    const SEEDED: [&str; 2] = ["PUBLIC-TEST-SEED", "3d404b202f931124fe484103"];
    const PLACEHOLDER_WORDS: [&str; 6] = [
        "change",
        "example",
        "password",
        "placeholder",
        "replace",
        "secret",
    ];
    const MIN_DISTINCT_CHARS: usize = 10;
    if SEEDED.iter().any(|marker| value.contains(marker)) {
        return Some("a test value saaskit derived from a public seed (SAASKIT_SEED)");
    }
    let lowercase = value.to_ascii_lowercase();
    let distinct = value.chars().collect::<HashSet<_>>().len();
    if PLACEHOLDER_WORDS
        .iter()
        .any(|word| lowercase.contains(word))
        || distinct < MIN_DISTINCT_CHARS
    {
        return Some("a placeholder");
    }
    None
}

/// The configuration problems found at start-up.
#[derive(Debug)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration; set these environment variables (see .env.example):"
        )?;
        for Problem { key, reason } in &self.problems {
            write!(f, "\n  {key} {reason}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_typed_values_and_defaults() {
        let mut env = Env::from_vars([("PORT", "8080")]);

        assert_eq!(env.required::<u16>("PORT"), Some(8080));
        assert_eq!(env.optional("WORKERS", 4_u32), 4);
        assert!(env.finish().is_ok());
    }

    #[test]
    fn empty_values_count_as_unset() {
        let mut env = Env::from_vars([("WORKERS", "")]);

        assert_eq!(env.optional("WORKERS", 4_u32), 4);
        assert!(env.finish().is_ok());
    }

    #[test]
    fn names_every_missing_or_malformed_key() {
        let mut env = Env::from_vars([("PORT", "eighty"), ("WORKERS", "-1")]);

        assert_eq!(env.required::<u16>("PORT"), None);
        assert_eq!(env.required::<String>("SECRET"), None);
        assert_eq!(env.optional("WORKERS", 4_u32), 4);
        let message = env.finish().unwrap_err().to_string();

        assert!(
            message.contains("PORT is invalid: invalid digit"),
            "{message}"
        );
        assert!(message.contains("SECRET is not set"), "{message}");
        assert!(message.contains("WORKERS is invalid"), "{message}");
    }

    #[test]
    fn production_refuses_secrets_anyone_can_know() {
        const SEEDED: &str = "PUBLIC-TEST-SEEDv0c8Zb2Ys1Wn4Kq7Rt5Ux9Pl3Mj6Ha";
        const RANDOM: &str = "3sRvyMOY1jgzQKSY80wbPf0qQN6YjzjdLqG_WU3tXIs";
        for (app_env, refused) in [
            (None, true),
            (Some("production"), true),
            (Some("development"), false),
        ] {
            let mut vars = vec![
                ("SIGNING_KEY", SEEDED),
                ("API_KEY", "change-me-to-a-long-random-value"),
                ("WEBHOOK_SECRET", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
                ("OTHER_KEY", RANDOM),
            ];
            vars.extend(app_env.map(|value| ("APP_ENV", value)));
            let mut env = Env::from_vars(vars);

            assert_eq!(env.required_secret("SIGNING_KEY").as_deref(), Some(SEEDED));
            assert_eq!(
                env.optional_secret("API_KEY"),
                "change-me-to-a-long-random-value"
            );
            env.optional_secret("WEBHOOK_SECRET");
            env.required_secret("OTHER_KEY");
            assert_eq!(env.optional_secret("UNSET_KEY"), "");
            let result = env.finish();

            assert_eq!(result.is_err(), refused, "APP_ENV={app_env:?}");
            if let Err(error) = result {
                let message = error.to_string();
                assert!(
                    message.contains("SIGNING_KEY holds a test value"),
                    "{message}"
                );
                assert!(message.contains("API_KEY holds a placeholder"), "{message}");
                assert!(
                    message.contains("WEBHOOK_SECRET holds a placeholder"),
                    "{message}"
                );
                assert!(!message.contains("OTHER_KEY"), "{message}");
                assert!(
                    !message.contains(RANDOM),
                    "secrets stay out of messages: {message}"
                );
            }
        }
    }

    #[test]
    fn app_env_must_be_a_known_mode() {
        let env = Env::from_vars([("APP_ENV", "prod")]);

        let message = env.finish().unwrap_err().to_string();

        assert!(
            message.contains("APP_ENV is invalid: must be `production`"),
            "{message}"
        );
    }
}
