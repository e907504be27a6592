//! saaskit: generate a production-grade Rust SaaS backend and keep it maintainable.
//!
//! The folders are layers; a module imports only from the layers below its own:
//!
//! ```text
//!   commands/     one file per command: gather input, plan, hand the plan to `commit`
//!   dev/          the pieces of `saaskit dev` (processes, builds, watching)
//!       │
//!   workspace/    install / uninstall modules, `.env` blocks, Cargo dependencies, lock records
//!       │
//!   edit/         pure text edits: fences, templates, Cargo.toml, .env, merge, secrets
//!   stage/        the staged tree, the plan, the base store, the one writer
//!       │
//!   model/        catalog, manifest, lockfile
//!
//!   shared        work shared with helper threads, for any layer
//! ```
//!
//! `edit` and `stage` are side by side: neither imports the other. `cli` (clap definitions)
//! stands apart; only `commands` reads it. Everything but [`stage::fsio`] only reads: commands
//! plan their whole change in a staged [`stage::tree::Tree`], and [`stage::fsio::apply`] is the
//! one place that writes, atomically.

pub mod cli;
pub mod commands;
#[cfg(unix)]
pub mod dev;
pub mod edit;
pub mod model;
pub mod resource;
pub mod shared;
pub mod stage;
pub mod workspace;
