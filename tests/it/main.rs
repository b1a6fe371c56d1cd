//! Integration tests: the real `uwlr-gateway` binary over HTTP, its CLI, and its SQLite files, in one test binary.
//!
//! Every test starts its own gateway (`harness::spawn_gateway`) on port 0 with a fresh
//! data dir, so tests run in parallel and in any order. Modules per area: `bridge`
//! (xAPI delivery to a real LRS and a stand-in), `crash` (SIGKILL consistency),
//! `hostile` (bad input within bounds), `query` (the read API), and the rest below.

mod access;
mod boundary;
mod bridge;
mod cli;
mod concurrency;
mod crash;
mod data_dir;
mod data_dir_lock;
mod differential;
mod errors;
mod fuzz_regressions;
mod governance;
mod harness;
mod hostile;
mod http_edges;
mod http_surface;
mod intake_split;
mod interop;
mod logs;
mod multi_instance;
mod observability;
mod operations;
mod ownership;
mod packaging;
mod postgres;
mod private_files;
mod processing;
mod quarantine;
mod query;
mod replay;
mod samples;
mod soap_headers;
mod tools;
mod xsd_values;
