//! Editing: pure functions from text to text, each for one kind of file saaskit changes. Fenced
//! snippets in Rust and hash-commented files ([`inject`]), templates ([`render`]), a crate's
//! dependencies in a `Cargo.toml` ([`cargo_deps`]), the `.env` file as the services read it
//! ([`env_file`]) and its signing keys ([`signing_keys`]), fresh secrets ([`secrets`]), and the
//! three-way merge `upgrade` uses ([`merge`]). TypeScript, JavaScript and JSON files are checked
//! to parse before they are written ([`typescript`]).
//!
//! Imports may point down to [`crate::model`] only: nothing here reads or writes the disk or
//! knows about a workspace, which is what keeps these functions easy to test (most have
//! property tests).

pub mod cargo_deps;
pub mod env_file;
pub mod inject;
pub mod merge;
pub mod render;
pub mod secrets;
pub mod signing_keys;
pub mod typescript;
