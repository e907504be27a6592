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

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Reads configuration values and collects every problem found on the way. Not `Debug`: it
/// holds every variable of the environment, secrets included.
#[derive(Default)]
pub struct Env {
    vars: HashMap<String, String>,
    problems: Vec<Problem>,
}

#[derive(Debug)]
struct Problem {
    key: String,
    reason: String,
}

impl Env {
    /// The process environment, over the values of `.env` when there is one.
    pub fn load() -> Self {
        let mut env = Self::default();
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
        env
    }

    /// Exactly the given variables, ignoring the process environment and `.env`: for tests.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            problems: Vec::new(),
        }
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
}
