//! saaskit: generate a production-grade Rust SaaS backend and keep it maintainable.
//!
//! One module per concern. Everything but [`fsio`] only reads: commands plan their whole change
//! in a staged [`tree::Tree`], and [`fsio::apply`] is the one place that writes, atomically.

pub mod base_store;
pub mod cargo_deps;
pub mod catalog;
pub mod cli;
pub mod commands;
#[cfg(unix)]
pub mod dev;
pub mod fsio;
pub mod inject;
pub mod lock;
pub mod manifest;
pub mod merge;
pub mod render;
pub mod secrets;
pub mod signing_keys;
pub mod tree;
pub mod workspace;
