//! The `.env` file of a workspace as `doctor` and `dev` read it: what the services would read.

use std::collections::BTreeMap;
use std::path::Path;

use super::ENV_FILE;
use crate::edit::env_file;

/// The values of the workspace's `.env` as the services read them, or `None` when there is no
/// readable `.env`.
pub fn read_env(root: &Path) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(root.join(ENV_FILE)).ok()?;
    Some(env_file::values(&text))
}

/// A value from the process environment, which wins as it does for the services, or from
/// `.env`; `None` when empty.
pub fn env_value(env: &Option<BTreeMap<String, String>>, key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .or_else(|| env.as_ref()?.get(key).cloned())
        .filter(|v| !v.is_empty())
}
