//! uwlr-gateway: the receiving side of UWLR 2.2 BrengLeerresultaten, as a library the binary drives.
//!
//! The modules follow the message: `http` takes the request, `intake` runs the
//! checks in order (`soap` envelope, `schema`, `uwlr` parsing, `domain` rules,
//! `vdex`) and hands the checked message to `store`, which commits it atomically.

/// The version and the git commit this binary was built from (`unknown` without git).
pub const VERSION_WITH_COMMIT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("UWLR_GIT_COMMIT"),
    ")"
);
/// The git commit this binary was built from, as in `VERSION_WITH_COMMIT`.
pub const COMMIT: &str = env!("UWLR_GIT_COMMIT");

pub mod app;
pub mod auth_limit;
pub mod bridge;
pub mod budget;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod fuzzing;
pub mod governance;
pub mod http;
pub mod intake;
pub mod logging;
pub mod metrics;
pub mod query;
pub mod roster;
pub mod schema;
pub mod secret;
pub mod soap;
pub mod status;
pub mod store;
pub mod tools;
pub mod uwlr;
pub mod vdex;
