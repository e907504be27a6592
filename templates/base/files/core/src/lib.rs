//! Code shared by every service of the workspace: configuration, HTTP plumbing, errors and
//! telemetry, plus the domain and infrastructure that modules add (each as a module below).

pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod telemetry;

// saaskit declares the modules it adds after the next line: keep it.
// <<<inject:mods>>>

pub use error::ApiError;
