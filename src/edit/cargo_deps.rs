//! Adding and removing a module's Cargo dependencies in a crate's `Cargo.toml`, with toml_edit so
//! that everything else in the file (comments, order, formatting) stays as it is.
//!
//! Both functions are exact inverses: [`add`] reports what it changed ([`Added`]) and [`remove`]
//! takes out exactly that, so `add` then `remove` gives back the same bytes.

use anyhow::{Context, Result};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

use crate::model::catalog::Dependency;

/// What [`add`] changed: the dependency was inserted, or features were added to an existing one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Added {
    pub inserted: bool,
    pub features: Vec<String>,
}

impl Added {
    pub fn is_empty(&self) -> bool {
        !self.inserted && self.features.is_empty()
    }
}

/// The crate manifest at `path`, parsed for [`add_to_document`].
pub fn parse(path: &str, text: &str) -> Result<DocumentMut> {
    text.parse::<DocumentMut>()
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
        .with_context(|| {
            format!("{path} is not valid TOML; fix it before adding or removing modules")
        })
}

fn dependencies_table<'d>(path: &str, doc: &'d mut DocumentMut) -> Result<&'d mut Table> {
    if !doc.contains_key("dependencies") {
        doc.insert("dependencies", Item::Table(Table::new()));
    }
    doc["dependencies"]
        .as_table_mut()
        .with_context(|| format!("{path}: [dependencies] must be a table"))
}

fn is_sorted(table: &Table) -> bool {
    let keys: Vec<&str> = table.iter().map(|(k, _)| k).collect();
    keys.windows(2).all(|w| w[0] <= w[1])
}

/// Adds each of `deps` to `[dependencies]`, in one parse of the file: inserted in sorted position
/// when the table is sorted, appended otherwise; when the crate is already there, only the
/// missing features are added. Returns the new text and what changed for each dependency, in
/// order.
pub fn add(path: &str, text: &str, deps: &[&Dependency]) -> Result<(String, Vec<Added>)> {
    let mut doc = parse(path, text)?;
    let changes = add_to_document(path, &mut doc, deps)?;
    Ok((doc.to_string(), changes))
}

/// [`add`] on a parsed manifest, edited in place: a caller adding to one file many times keeps
/// the document between calls rather than parsing the text it printed: while [`can_be_kept`]
/// holds, editing the document further gives what parsing its print and editing that gives.
pub fn add_to_document(
    path: &str,
    doc: &mut DocumentMut,
    deps: &[&Dependency],
) -> Result<Vec<Added>> {
    let table = dependencies_table(path, doc)?;
    let changes: Vec<Added> = (deps.iter())
        .map(|dep| add_one(path, table, dep))
        .collect::<Result<_>>()?;
    for (dep, added) in deps.iter().zip(&changes) {
        if !added.is_empty() {
            settle(table, &dep.name);
        }
    }
    Ok(changes)
}

/// Whether `doc`, edited by [`add_to_document`], can be kept for the next additions: whether
/// those give what they give on the parse of its print. Not when `[dependencies]` holds a
/// table (`[dependencies.serde]`, `serde.version = ..`): toml_edit orders a table's entries as
/// they were added and the parser as they are written, which differ once a dependency appended
/// after that table is sorted, and the order decides whether the table counts as sorted.
pub fn can_be_kept(doc: &DocumentMut) -> bool {
    (doc.get("dependencies").and_then(Item::as_table))
        .is_none_or(|table| table.iter().all(|(_, item)| item.is_value()))
}

/// Makes the dependency `name`, just edited, what parsing the printed file would make of it,
/// which prints the same. toml_edit spaces a value it made by defaults that depend on where the
/// value is (the last one of an inline table gets a space before the `}`, any other none) and a
/// parsed one as it was written: without this, a key added later after that last value would
/// print differently in a kept document than in the parse of its text.
fn settle(table: &mut Table, name: &str) {
    let Some(Item::Value(value)) = table.get_mut(name) else {
        return;
    };
    // The spaces around the value are the key's line's, kept as they are: the value parser
    // takes the value alone.
    let decor = std::mem::take(value.decor_mut());
    *value = (value.to_string().parse()).expect("toml_edit parses the value it printed");
    *value.decor_mut() = decor;
}

fn add_one(path: &str, table: &mut Table, dep: &Dependency) -> Result<Added> {
    let mut added = Added::default();
    match table.get_mut(&dep.name) {
        None => {
            let was_sorted = is_sorted(table);
            table.insert(&dep.name, Item::Value(spec(dep)));
            if was_sorted {
                table.sort_values();
            }
            added.inserted = true;
        }
        Some(existing) => {
            let missing: Vec<String> = dep
                .features
                .iter()
                .filter(|f| !features_of(existing).contains(f))
                .cloned()
                .collect();
            if !missing.is_empty() {
                let features = features_array(existing).with_context(|| {
                    format!("{path}: cannot add features to dependency `{}`", dep.name)
                })?;
                for feature in &missing {
                    features.push(feature.as_str());
                }
                added.features = missing;
            }
        }
    }
    Ok(added)
}

/// Removes what [`add`] added: the whole dependency, or just the listed features.
pub fn remove(path: &str, text: &str, name: &str, added: &Added) -> Result<String> {
    let mut doc = parse(path, text)?;
    let table = dependencies_table(path, &mut doc)?;
    if added.inserted {
        table.remove(name);
    } else if let Some(existing) = table.get_mut(name)
        && let Ok(features) = features_array(existing)
    {
        features.retain(|v| {
            !v.as_str()
                .is_some_and(|f| added.features.iter().any(|a| a == f))
        });
        if features.is_empty()
            && let Some(inline) = existing.as_inline_table_mut()
        {
            inline.remove("features");
        }
    }
    Ok(doc.to_string())
}

fn spec(dep: &Dependency) -> Value {
    if dep.features.is_empty() && dep.default_features.is_none() {
        return Value::from(dep.version.as_str());
    }
    let mut inline = InlineTable::new();
    inline.insert("version", Value::from(dep.version.as_str()));
    if let Some(default_features) = dep.default_features {
        inline.insert("default-features", Value::from(default_features));
    }
    if !dep.features.is_empty() {
        let features: Array = dep.features.iter().map(String::as_str).collect();
        inline.insert("features", Value::Array(features));
    }
    Value::InlineTable(inline)
}

fn features_of(item: &Item) -> Vec<String> {
    item.get("features")
        .and_then(Item::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The `features` array of a dependency, turning `name = "1"` into `{ version = "1", features = [] }`.
fn features_array(item: &mut Item) -> Result<&mut Array> {
    if let Some(version) = item.as_str() {
        let mut inline = InlineTable::new();
        inline.insert("version", Value::from(version));
        *item = Item::Value(Value::InlineTable(inline));
    }
    let table = item
        .as_table_like_mut()
        .context("dependency is neither a version string nor a table")?;
    if !table.contains_key("features") {
        table.insert("features", Item::Value(Value::Array(Array::new())));
    }
    table
        .get_mut("features")
        .and_then(Item::as_array_mut)
        .context("`features` must be an array")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::CrateTarget;

    fn dep(name: &str, features: &[&str]) -> Dependency {
        Dependency {
            target: CrateTarget::Core,
            name: name.into(),
            version: "1.0".into(),
            default_features: None,
            features: features.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn without_default_features(name: &str) -> Dependency {
        Dependency {
            default_features: Some(false),
            ..dep(name, &[])
        }
    }

    fn add_one(path: &str, text: &str, dep: &Dependency) -> Result<(String, Added)> {
        let (text, mut added) = add(path, text, &[dep])?;
        Ok((text, added.remove(0)))
    }

    const MANIFEST: &str = "[package]\nname = \"acme-core\"\n\n[dependencies]\n# keep me\nanyhow = \"1\"\nserde = { version = \"1\", features = [\"derive\"] }\n";

    #[test]
    fn insertion_keeps_sorted_tables_sorted_and_is_undone_exactly() {
        let (text, added) = add_one("Cargo.toml", MANIFEST, &dep("base64", &[])).unwrap();
        assert!(
            text.contains("anyhow = \"1\"\nbase64 = \"1.0\"\nserde"),
            "{text}"
        );
        assert!(added.inserted);
        assert_eq!(
            remove("Cargo.toml", &text, "base64", &added).unwrap(),
            MANIFEST
        );
    }

    #[test]
    fn features_added_to_an_existing_dependency_are_removed_again() {
        let (text, added) =
            add_one("Cargo.toml", MANIFEST, &dep("serde", &["derive", "rc"])).unwrap();
        assert_eq!(
            added,
            Added {
                inserted: false,
                features: vec!["rc".into()]
            }
        );
        assert!(text.contains("features = [\"derive\", \"rc\"]"), "{text}");
        assert_eq!(
            remove("Cargo.toml", &text, "serde", &added).unwrap(),
            MANIFEST
        );
    }

    #[test]
    fn an_existing_dependency_with_all_features_is_left_alone() {
        let (text, added) = add_one("Cargo.toml", MANIFEST, &dep("anyhow", &[])).unwrap();
        assert!(added.is_empty());
        assert_eq!(text, MANIFEST);
    }

    #[test]
    fn invalid_toml_names_the_file() {
        let error =
            add_one("crates/core/Cargo.toml", "[dependencies\n", &dep("x", &[])).unwrap_err();
        assert!(format!("{error:#}").contains("crates/core/Cargo.toml"));
    }

    #[test]
    fn several_dependencies_at_once_give_what_one_at_a_time_gives() {
        let deps = [
            dep("zstd", &[]),
            dep("serde", &["rc"]),
            dep("base64", &[]),
            dep("anyhow", &["backtrace"]),
        ];
        let mut one_at_a_time = MANIFEST.to_string();
        let mut each = Vec::new();
        for dep in &deps {
            let (text, added) = add_one("Cargo.toml", &one_at_a_time, dep).unwrap();
            one_at_a_time = text;
            each.push(added);
        }
        let all: Vec<&Dependency> = deps.iter().collect();
        let (text, added) = add("Cargo.toml", MANIFEST, &all).unwrap();
        assert_eq!(text, one_at_a_time);
        assert_eq!(added, each);
    }

    #[test]
    fn a_document_kept_between_additions_prints_what_parsing_each_text_again_gives() {
        // Each step edits what the steps before inserted: features onto a plain version string,
        // onto an inline table without features, onto features inserted earlier.
        let steps = [
            vec![dep("base64", &[]), dep("serde", &["rc"])],
            vec![without_default_features("zstd")],
            vec![dep("base64", &["std"]), dep("anyhow", &["backtrace"])],
            vec![dep("zstd", &["a", "b"]), dep("aho", &[])],
            vec![
                dep("serde", &["derive", "rc", "alloc"]),
                dep("zstd", &["c"]),
            ],
        ];
        let unsorted = "[dependencies]\nzlib = \"1\"\nanyhow = \"1\"\n";
        let serde_table =
            "[dependencies]\nanyhow = \"1\"\n\n[dependencies.serde]\nversion = \"1\"\n";
        for start in [MANIFEST, "[package]\nname = \"x\"\n", unsorted, serde_table] {
            let mut doc = parse("Cargo.toml", start).unwrap();
            let mut text = start.to_string();
            for step in &steps {
                if !can_be_kept(&doc) {
                    doc = parse("Cargo.toml", &text).unwrap();
                }
                let deps: Vec<&Dependency> = step.iter().collect();
                let kept = add_to_document("Cargo.toml", &mut doc, &deps).unwrap();
                let (reparsed, changes) = add("Cargo.toml", &text, &deps).unwrap();
                assert_eq!(doc.to_string(), reparsed);
                assert_eq!(kept, changes);
                text = reparsed;
            }
        }
    }
}
