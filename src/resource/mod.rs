//! The product's own resources (`saaskit generate resource`): the field model parsed from the
//! command line ([`spec`]) and the files and snippets rendered from it ([`render`], and
//! [`admin`] for its back-office pages). Like
//! `edit/`, pure: the workspace layer stages what these produce.

pub mod admin;
pub mod render;
pub mod spec;
