//! uwlr-gateway: the receiving side of UWLR 2.2 BrengLeerresultaten, as a library the binary drives.
//!
//! The modules in the order a message meets them (ARCHITECTURE.md has a paragraph on each):
//!
//! - wiring: `cli` parses the command line and runs one command; `app` builds a running
//!   gateway (`Application::build`/`run`) that `serve`, tests and benches share; `config`,
//!   `logging`, `secret` (secrets kept sealed in the database).
//! - the front door: `http` (listeners, TLS, limits, body spooling, routes, the SOAP
//!   endpoint, receipts, admin and operations resources), `budget` (per-address budgets),
//!   `auth_limit` (failed-authentication buckets).
//! - the intake: `intake` runs the checks in order (head scan and sender, definitions and the
//!   libxml2 verdict, the store pass, derived totals; offline `validate`) over `soap`
//!   (envelope, faults), `uwlr` (the streaming scanner and wire types), `schema` (libxml2),
//!   `vdex` and `domain` (rules, violations, school codes, dates, the clock).
//! - the store: `store`, all SQL, one writer thread per database file with group commit.
//! - the xAPI bridge: `bridge` turns committed changes into statements and delivers them.
//! - the read side: `query` (LAS feed, xAPI Statement Resource, problem details).
//! - data governance: `governance` (retention purge, erasure), `roster` (learner import).
//! - operations: `metrics` (Prometheus), `status` (sampler, `/ready`, the status page).
//! - tools: `tools` (replay, generate, differential), `demo`, `fuzzing`.

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
pub use http::body;
pub mod bridge;
pub mod budget;
pub mod cli;
pub mod clock;
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
