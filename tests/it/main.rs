//! Integration tests: the real `uwlr-gateway` binary over HTTP, its CLI, and its SQLite file.
//!
//! Every test starts its own gateway (`support::spawn_gateway`) on a free port with
//! a fresh data dir, so tests run in parallel and in any order.

mod access;
mod cli;
mod concurrency;
mod data_dir;
mod differential;
mod errors;
mod fuzz_regressions;
mod governance;
mod http_edges;
mod http_surface;
mod interop;
mod logs;
mod observability;
mod operations;
mod ownership;
mod packaging;
mod private_files;
mod processing;
mod quarantine;
mod replay;
mod samples;
mod soap_headers;
mod support;
mod tools;
mod xsd_values;
