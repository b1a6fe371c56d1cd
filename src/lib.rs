//! uwlr-gateway: the receiving side of UWLR 2.2 BrengLeerresultaten, as a library the binary drives.
//!
//! The modules follow the message: `http` takes the request, `intake` runs the
//! checks in order (`soap` envelope, `schema`, `uwlr` parsing, `domain` rules,
//! `vdex`) and hands the checked message to `store`, which commits it atomically.

/// The version and the git commit this binary was built from (`unknown` without git).
pub(crate) const VERSION_WITH_COMMIT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("UWLR_GIT_COMMIT"),
    ")"
);
/// The git commit this binary was built from, as in `VERSION_WITH_COMMIT`.
pub(crate) const COMMIT: &str = env!("UWLR_GIT_COMMIT");

pub(crate) mod app;
pub(crate) mod auth_limit;
pub mod bridge;
pub(crate) mod budget;
pub mod cli;
pub(crate) mod config;
pub(crate) mod demo;
pub mod domain;
pub mod fuzzing;
pub(crate) mod governance;
pub(crate) mod http;
pub(crate) mod intake;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod query;
pub(crate) mod roster;
pub mod schema;
pub mod secret;
pub(crate) mod soap;
pub(crate) mod status;
pub mod store;
pub mod tools;
pub(crate) mod uwlr;
pub(crate) mod vdex;
