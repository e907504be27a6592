//! The model: what a workspace is made of, as saaskit reads and writes it. The catalog of
//! modules shipped inside saaskit ([`catalog`]), a workspace's manifest `saaskit.toml`
//! ([`manifest`]) and its lockfile `saaskit.lock` ([`lock`]).
//!
//! The bottom layer: nothing here imports from the rest of saaskit (`crate::edit`,
//! `crate::stage`, `crate::workspace`, `crate::commands`), so the model can be read, and
//! tested, on its own.

pub mod catalog;
pub mod lock;
pub mod manifest;
