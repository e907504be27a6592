//! The product's own resources (`saaskit generate resource`): the field model parsed from the
//! command line ([`spec`]) and the files and snippets rendered from it ([`render`]), among them
//! its part of the service's OpenAPI document ([`openapi`]) and its tests in the generated
//! workspace ([`testfile`]). Like `edit/`, pure: the workspace layer stages what these produce.

pub mod handler;
pub mod openapi;
pub mod render;
pub mod spec;
pub mod testfile;
