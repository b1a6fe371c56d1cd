//! Tools for integration testers: deterministic message generation and replay against a gateway.

pub mod generate;
pub mod replay;
