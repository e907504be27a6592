//! `saaskit.lock`: what saaskit generated, so it can tell "generated and untouched" from
//! "edited by the user". It records the saaskit version, each installed module with its version,
//! and a SHA-256 of every generated file and injected snippet, plus the Cargo dependencies each
//! module inserted (so `remove` takes out exactly those). saaskit owns this file entirely and
//! rewrites it in one canonical, sorted form.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FILE_NAME: &str = "saaskit.lock";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub saaskit_version: String,
    #[serde(default, rename = "module", skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<LockedModule>,
    #[serde(default, rename = "file", skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<LockedFile>,
    #[serde(default, rename = "snippet", skip_serializing_if = "Vec::is_empty")]
    pub snippets: Vec<LockedSnippet>,
    #[serde(default, rename = "dependency", skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<LockedDependency>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The user asked for it (`new --modules`, `add`).
    Explicit,
    /// Pulled in by another module's `requires`; removed with the last module needing it.
    Dependency,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedModule {
    pub id: String,
    pub version: String,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    pub path: String,
    pub module: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedSnippet {
    pub path: String,
    pub marker: String,
    pub module: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedDependency {
    /// The `Cargo.toml` the dependency was inserted into.
    pub path: String,
    pub module: String,
    pub name: String,
    /// The module inserted the dependency (otherwise it only added `features` to an existing one).
    pub inserted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

impl Lock {
    pub fn new() -> Lock {
        Lock {
            saaskit_version: env!("CARGO_PKG_VERSION").to_string(),
            ..Lock::default()
        }
    }

    pub fn parse(text: &str) -> Result<Lock> {
        toml_edit::de::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
            .with_context(|| format!("{FILE_NAME} is damaged; restore it from version control"))
    }

    pub fn to_text(&self) -> String {
        let mut sorted = self.clone();
        sorted.saaskit_version = env!("CARGO_PKG_VERSION").to_string();
        sorted.modules.sort_by(|a, b| a.id.cmp(&b.id));
        sorted.files.sort_by(|a, b| a.path.cmp(&b.path));
        sorted
            .snippets
            .sort_by(|a, b| (&a.path, &a.marker, &a.module).cmp(&(&b.path, &b.marker, &b.module)));
        sorted
            .dependencies
            .sort_by(|a, b| (&a.path, &a.name, &a.module).cmp(&(&b.path, &b.name, &b.module)));
        let body = toml_edit::ser::to_string_pretty(&sorted).expect("the lock is plain data");
        format!("# Written by saaskit: do not edit. Commit it with the workspace.\n{body}")
    }

    /// Records a module as installed, replacing an earlier record: one entry per module,
    /// however many services have it.
    pub fn record_module(&mut self, id: &str, version: &str, reason: Reason) {
        self.forget_module(id);
        self.modules.push(LockedModule {
            id: id.into(),
            version: version.into(),
            reason,
        });
    }

    pub fn forget_module(&mut self, id: &str) {
        self.modules.retain(|m| m.id != id);
    }

    /// The user asked for `id` by name: removing what required it keeps it.
    pub fn mark_explicit(&mut self, id: &str) {
        if let Some(locked) = self.modules.iter_mut().find(|m| m.id == id) {
            locked.reason = Reason::Explicit;
        }
    }

    /// Records that `module` generated `path` with `content`, replacing an earlier record.
    pub fn record_file(&mut self, path: &str, module: &str, content: &str) {
        self.forget_file(path);
        self.files.push(LockedFile {
            path: path.into(),
            module: module.into(),
            sha256: hash(content),
        });
    }

    pub fn forget_file(&mut self, path: &str) {
        self.files.retain(|f| f.path != path);
    }

    /// Records `module`'s snippet at `marker` in `path`, replacing an earlier record.
    pub fn record_snippet(&mut self, path: &str, marker: &str, module: &str, body: &str) {
        self.forget_snippet(path, marker, module);
        self.snippets.push(LockedSnippet {
            path: path.into(),
            marker: marker.into(),
            module: module.into(),
            sha256: hash(body),
        });
    }

    pub fn forget_snippet(&mut self, path: &str, marker: &str, module: &str) {
        self.snippets
            .retain(|s| !(s.path == path && s.marker == marker && s.module == module));
    }

    /// Forgets every snippet of `module` in `path`.
    pub fn forget_snippets_in(&mut self, path: &str, module: &str) {
        self.snippets
            .retain(|s| !(s.path == path && s.module == module));
    }

    pub fn record_dependency(&mut self, dependency: LockedDependency) {
        self.dependencies.push(dependency);
    }

    pub fn module(&self, id: &str) -> Option<&LockedModule> {
        self.modules.iter().find(|m| m.id == id)
    }

    pub fn file(&self, path: &str) -> Option<&LockedFile> {
        self.files.iter().find(|f| f.path == path)
    }

    pub fn snippet(&self, path: &str, marker: &str, module: &str) -> Option<&LockedSnippet> {
        self.snippets
            .iter()
            .find(|s| s.path == path && s.marker == marker && s.module == module)
    }
}

/// `sha256:<hex>` of some text.
pub fn hash(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(text.as_bytes());
    // By hand rather than `format!("{b:02x}")` per byte: a string for each of 32 bytes, for
    // each of the few hundred files and snippets `new` records.
    let mut out = String::with_capacity("sha256:".len() + 2 * digest.len());
    out.push_str("sha256:");
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_the_lowercase_hex_sha256_with_its_prefix() {
        assert_eq!(
            hash("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
