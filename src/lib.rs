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
//! - the store: `store`, all SQL, one writer thread per database file with group commit;
//!   `store::postgres` the PostgreSQL engine so far (URL, versioned schema).
//! - the xAPI bridge: `bridge` turns committed changes into statements and delivers them.
//! - the read side: `query` (LAS feed, xAPI Statement Resource, problem details).
//! - data governance: `governance` (retention purge, erasure), `roster` (learner import).
//! - operations: `metrics` (Prometheus), `status` (sampler, `/ready`, the status page).
//! - tools: `tools` (replay, generate, differential), `demo`, `fuzzing`.

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
