//! The pieces of `saaskit dev` (the command itself is `commands::dev`): how a service of each
//! kind is built and run ([`runner`], [`build`]), child processes in process groups of their own
//! ([`supervisor`]), change detection ([`watch`]), prefixed coloured output ([`output`]) and the
//! status table ([`status`]).

pub mod build;
pub mod output;
pub mod runner;
pub mod status;
pub mod supervisor;
pub mod watch;
