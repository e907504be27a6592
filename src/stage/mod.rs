//! Staging and writing: a command's whole change is planned in a [`tree::Tree`] (reads fall
//! through to the disk, writes stay in memory), becomes a list of [`change::Change`]s, and is
//! written by [`fsio::apply`], the one place in saaskit that writes to a workspace. The
//! pristine copies `upgrade` merges against are folded into one file by [`base_store`].
//!
//! Imports stay inside this folder: staging knows files and text, not modules or manifests.
//! [`change`] is the leaf that [`tree`], [`base_store`] and [`fsio`] share.

pub mod base_store;
pub mod change;
pub mod fsio;
pub mod tree;
