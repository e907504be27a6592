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
        // The form saaskit writes is read line by line; anything else (a hand-edited or damaged
        // lock, a string that needed escaping) goes through toml_edit, which also words the error.
        if let Some(lock) = canonical::read(text) {
            return Ok(lock);
        }
        toml_edit::de::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
            .with_context(|| format!("{FILE_NAME} is damaged; restore it from version control"))
    }

    pub fn to_text(&self) -> String {
        // Sorted as references: the lock holds a few hundred entries, over a thousand strings.
        let mut sorted = Sorted::in_order_of(self);
        sorted.saaskit_version = env!("CARGO_PKG_VERSION");
        sorted.modules.sort_by(|a, b| a.id.cmp(&b.id));
        sorted.files.sort_by(|a, b| a.path.cmp(&b.path));
        sorted
            .snippets
            .sort_by(|a, b| (&a.path, &a.marker, &a.module).cmp(&(&b.path, &b.marker, &b.module)));
        sorted
            .dependencies
            .sort_by(|a, b| (&a.path, &a.name, &a.module).cmp(&(&b.path, &b.name, &b.module)));
        if let Some(text) = canonical::write(&sorted) {
            return text;
        }
        let owned = Lock {
            saaskit_version: sorted.saaskit_version.to_string(),
            modules: sorted.modules.into_iter().cloned().collect(),
            files: sorted.files.into_iter().cloned().collect(),
            snippets: sorted.snippets.into_iter().cloned().collect(),
            dependencies: sorted.dependencies.into_iter().cloned().collect(),
        };
        let body = toml_edit::ser::to_string_pretty(&owned).expect("the lock is plain data");
        format!("{}{body}", canonical::HEADER)
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
        self.record_file_with_hash(path, module, hash(content));
    }

    /// [`Lock::record_file`] with the content's [`hash`] already known.
    pub fn record_file_with_hash(&mut self, path: &str, module: &str, sha256: String) {
        self.forget_file(path);
        self.files.push(LockedFile {
            path: path.into(),
            module: module.into(),
            sha256,
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

/// A lock's entries, borrowed, in the order to write them ([`Lock::to_text`] sorts them).
struct Sorted<'l> {
    saaskit_version: &'l str,
    modules: Vec<&'l LockedModule>,
    files: Vec<&'l LockedFile>,
    snippets: Vec<&'l LockedSnippet>,
    dependencies: Vec<&'l LockedDependency>,
}

impl<'l> Sorted<'l> {
    /// `lock`'s entries in the order it holds them.
    fn in_order_of(lock: &'l Lock) -> Sorted<'l> {
        Sorted {
            saaskit_version: &lock.saaskit_version,
            modules: lock.modules.iter().collect(),
            files: lock.files.iter().collect(),
            snippets: lock.snippets.iter().collect(),
            dependencies: lock.dependencies.iter().collect(),
        }
    }
}

/// The lockfile in the one form saaskit writes it, without toml_edit: its parser and printer
/// were 40 % of `generate resource`'s instructions (a lock holds a few hundred tables). Only
/// strings that TOML writes as they are (printable ASCII without quotes or backslashes) take
/// this path; [`write`] gives `None` for any other, and [`read`] for any text that is not exactly
/// what [`write`] gives, so that toml_edit handles those as before.
mod canonical {
    use std::fmt::Write as _;

    use super::{Lock, LockedDependency, LockedFile, LockedModule, LockedSnippet, Reason, Sorted};

    pub const HEADER: &str = "# Written by saaskit: do not edit. Commit it with the workspace.\n";

    /// The text toml_edit's `to_string_pretty` gives for `lock` after [`HEADER`], or `None` when
    /// a string would need quoting otherwise.
    pub fn write(lock: &Sorted) -> Option<String> {
        let mut out = String::with_capacity(
            HEADER.len() + 64 * lock.modules.len() + 160 * (lock.files.len() + lock.snippets.len()),
        );
        out.push_str(HEADER);
        string(&mut out, "saaskit_version", lock.saaskit_version)?;
        for module in &lock.modules {
            out.push_str("\n[[module]]\n");
            string(&mut out, "id", &module.id)?;
            string(&mut out, "version", &module.version)?;
            let reason = match module.reason {
                Reason::Explicit => "explicit",
                Reason::Dependency => "dependency",
            };
            string(&mut out, "reason", reason)?;
        }
        for file in &lock.files {
            out.push_str("\n[[file]]\n");
            string(&mut out, "path", &file.path)?;
            string(&mut out, "module", &file.module)?;
            string(&mut out, "sha256", &file.sha256)?;
        }
        for snippet in &lock.snippets {
            out.push_str("\n[[snippet]]\n");
            string(&mut out, "path", &snippet.path)?;
            string(&mut out, "marker", &snippet.marker)?;
            string(&mut out, "module", &snippet.module)?;
            string(&mut out, "sha256", &snippet.sha256)?;
        }
        for dependency in &lock.dependencies {
            out.push_str("\n[[dependency]]\n");
            string(&mut out, "path", &dependency.path)?;
            string(&mut out, "module", &dependency.module)?;
            string(&mut out, "name", &dependency.name)?;
            let _ = writeln!(out, "inserted = {}", dependency.inserted);
            // toml_edit's pretty form: one feature inline, several one a line with a comma.
            match dependency.features.as_slice() {
                [] => {}
                [feature] => {
                    out.push_str("features = [");
                    quoted(&mut out, feature)?;
                    out.push_str("]\n");
                }
                features => {
                    out.push_str("features = [\n");
                    for feature in features {
                        out.push_str("    ");
                        quoted(&mut out, feature)?;
                        out.push_str(",\n");
                    }
                    out.push_str("]\n");
                }
            }
        }
        Some(out)
    }

    fn string(out: &mut String, key: &str, value: &str) -> Option<()> {
        out.push_str(key);
        out.push_str(" = ");
        quoted(out, value)?;
        out.push('\n');
        Some(())
    }

    /// `"value"`, for a value TOML (and toml_edit) writes between double quotes as it is.
    fn quoted(out: &mut String, value: &str) -> Option<()> {
        let plain = value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && !matches!(b, b'"' | b'\\' | b'\''));
        if !plain {
            return None;
        }
        out.push('"');
        out.push_str(value);
        out.push('"');
        Some(())
    }

    /// The lock in `text`, when `text` is exactly what [`write`] gives for it.
    pub fn read(text: &str) -> Option<Lock> {
        let mut lines = text.strip_prefix(HEADER)?.split_terminator('\n');
        let mut lock = Lock {
            saaskit_version: value(lines.next()?, "saaskit_version")?.to_string(),
            ..Lock::default()
        };
        while let Some(blank) = lines.next() {
            if !blank.is_empty() {
                return None;
            }
            let table = lines.next()?;
            let mut field =
                |key: &str| -> Option<String> { value(lines.next()?, key).map(str::to_string) };
            match table {
                "[[module]]" => lock.modules.push(LockedModule {
                    id: field("id")?,
                    version: field("version")?,
                    reason: match field("reason")?.as_str() {
                        "explicit" => Reason::Explicit,
                        "dependency" => Reason::Dependency,
                        _ => return None,
                    },
                }),
                "[[file]]" => lock.files.push(LockedFile {
                    path: field("path")?,
                    module: field("module")?,
                    sha256: field("sha256")?,
                }),
                "[[snippet]]" => lock.snippets.push(LockedSnippet {
                    path: field("path")?,
                    marker: field("marker")?,
                    module: field("module")?,
                    sha256: field("sha256")?,
                }),
                "[[dependency]]" => {
                    let (path, module, name) = (field("path")?, field("module")?, field("name")?);
                    let inserted = match lines.next()? {
                        "inserted = true" => true,
                        "inserted = false" => false,
                        _ => return None,
                    };
                    // The features are optional: look at the next line without taking it.
                    let mut features = Vec::new();
                    let next = lines.clone().next();
                    if let Some(list) = next.and_then(|line| line.strip_prefix("features = [")) {
                        lines.next();
                        if list.is_empty() {
                            // One a line, up to the closing bracket.
                            loop {
                                match lines.next()? {
                                    "]" => break,
                                    line => {
                                        let feature =
                                            line.strip_prefix("    ")?.strip_suffix(',')?;
                                        features.push(unquoted(feature)?.to_string());
                                    }
                                }
                            }
                        } else {
                            features.push(unquoted(list.strip_suffix(']')?)?.to_string());
                        }
                    }
                    lock.dependencies.push(LockedDependency {
                        path,
                        module,
                        name,
                        inserted,
                        features,
                    });
                }
                _ => return None,
            }
        }
        // Whatever the lines above let through (an ordering, a stray quote inside a value) is
        // caught here: only a text that prints back exactly is taken.
        (write(&Sorted::in_order_of(&lock))?.as_str() == text).then_some(lock)
    }

    fn value<'t>(line: &'t str, key: &str) -> Option<&'t str> {
        unquoted(line.strip_prefix(key)?.strip_prefix(" = ")?)
    }

    fn unquoted(text: &str) -> Option<&str> {
        text.strip_prefix('"')?.strip_suffix('"')
    }
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

    fn sample() -> Lock {
        let mut lock = Lock::new();
        lock.record_module("db", "0.1.0", Reason::Explicit);
        lock.record_module("auth", "0.2.0", Reason::Dependency);
        lock.record_file("services/api/src/main.rs", "base", "fn main() {}\n");
        lock.record_file("a b/with spaces.sql", "db", "");
        lock.record_snippet("services/api/src/main.rs", "startup", "db", "let db = 1;\n");
        for (name, inserted, features) in [
            ("tokio", true, vec![]),
            ("sqlx", false, vec!["sqlite".to_string()]),
            (
                "hyper",
                false,
                vec!["client".into(), "http1".into(), "server".into()],
            ),
        ] {
            lock.record_dependency(LockedDependency {
                path: "crates/core/Cargo.toml".into(),
                module: "db".into(),
                name: name.into(),
                inserted,
                features,
            });
        }
        lock
    }

    fn with_toml_edit(lock: &Lock) -> String {
        let mut sorted = lock.clone();
        sorted.modules.sort_by(|a, b| a.id.cmp(&b.id));
        sorted.files.sort_by(|a, b| a.path.cmp(&b.path));
        sorted
            .dependencies
            .sort_by(|a, b| (&a.path, &a.name, &a.module).cmp(&(&b.path, &b.name, &b.module)));
        let body = toml_edit::ser::to_string_pretty(&sorted).unwrap();
        format!("{}{body}", canonical::HEADER)
    }

    #[test]
    fn the_lock_is_written_as_toml_edit_writes_it_and_read_back_alike() {
        // Each table list on its own too: the blank lines between lists are toml_edit's.
        let mut dependencies_only = sample();
        dependencies_only.modules.clear();
        dependencies_only.files.clear();
        dependencies_only.snippets.clear();
        let mut files_only = sample();
        files_only.modules.clear();
        files_only.dependencies.clear();
        for lock in [Lock::new(), sample(), dependencies_only, files_only] {
            let text = lock.to_text();
            assert!(canonical::write(&Sorted::in_order_of(&lock)).is_some());
            assert_eq!(text, with_toml_edit(&lock));
            let read =
                canonical::read(&text).expect("the canonical form is read without toml_edit");
            let parsed: Lock = toml_edit::de::from_str(&text).unwrap();
            assert_eq!(read, parsed);
            assert_eq!(Lock::parse(&text).unwrap().to_text(), text);
        }
    }

    #[test]
    fn strings_toml_would_escape_and_hand_edited_locks_go_through_toml_edit() {
        let mut odd = sample();
        odd.record_file("quote\"d/back\\slash/it's/é.rs", "base", "x");
        assert!(canonical::write(&Sorted::in_order_of(&odd)).is_none());
        let text = odd.to_text();
        assert_eq!(text, with_toml_edit(&odd));
        assert!(canonical::read(&text).is_none());
        assert_eq!(Lock::parse(&text).unwrap().to_text(), text);

        let text = sample().to_text();
        // Same data, other layout: toml_edit reads it, the canonical reader declines.
        for edited in [
            text.replace(
                "id = \"db\"\nversion",
                "version = \"0.1.0\"\nid = \"db\"\nversion",
            ),
            text.replace("\n\n[[file]]", "\n[[file]]"),
            text.replace("inserted = true", "inserted = true # why"),
            text.replace("[\"sqlite\"]", "[ \"sqlite\" ]"),
            text.replace("    \"http1\",\n", "    \"http1\", \n"),
            text.replace("\"server\",\n]", "\"server\"\n]"),
            format!("{text}\n"),
        ] {
            assert!(canonical::read(&edited).is_none(), "{edited}");
        }
        let spaced = text.replace("[\"sqlite\"]", "[ \"sqlite\" ]");
        assert_eq!(Lock::parse(&spaced).unwrap(), Lock::parse(&text).unwrap());
        assert!(Lock::parse(&text.replace("reason = \"explicit\"", "reason = \"maybe\"")).is_err());
    }
}
