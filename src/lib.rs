//! uwlr-gateway: the receiving side of UWLR 2.2 BrengLeerresultaten, as a library the binary drives.
//!
//! The modules follow the message: `http` takes the request, `intake` runs the
//! checks in order (`soap` envelope, `schema`, `uwlr` parsing, `domain` rules,
//! `vdex`) and hands the checked message to `store`, which commits it atomically.

pub mod auth_limit;
pub mod body;
pub mod bridge;
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
pub mod query;
pub mod roster;
pub mod schema;
pub mod secret;
pub mod soap;
pub mod store;
pub mod tools;
pub mod uwlr;
pub mod vdex;
