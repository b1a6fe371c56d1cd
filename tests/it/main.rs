//! Integration tests: the real `uwlr-gateway` binary over HTTP, its CLI, and its SQLite file.
//!
//! Every test starts its own gateway (`support::spawn_gateway`) on a free port with
//! a fresh data dir, so tests run in parallel and in any order.

mod access;
mod cli;
mod concurrency;
mod differential;
mod fuzz_regressions;
mod governance;
mod http_edges;
mod interop;
mod logs;
mod operations;
mod ownership;
mod private_files;
mod processing;
mod quarantine;
mod replay;
mod samples;
mod support;
mod tools;
mod xsd_values;
