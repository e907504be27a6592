//! The product's own resources (`saaskit generate resource`): the field model parsed from the
//! command line ([`spec`]) and the files and snippets rendered from it ([`render`]), among them
//! its part of the service's OpenAPI document ([`openapi`]), its tests in the generated
//! workspace ([`testfile`]) and its back-office pages ([`admin`]). Like `edit/`, pure: the
//! workspace layer stages what these produce.

pub mod admin;
pub mod handler;
pub mod openapi;
pub mod render;
pub mod spec;
pub mod testfile;
