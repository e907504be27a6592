//! The product's own resources (`saaskit generate resource`): the field model parsed from the
//! command line ([`spec`]) and the files and snippets rendered from it ([`render`]). Like
//! `edit/`, pure: the workspace layer stages what these produce.

pub mod handler;
pub mod render;
pub mod spec;
