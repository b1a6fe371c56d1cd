//! Tools for integration testers: deterministic message generation and replay against a gateway.

pub mod differential;
pub mod generate;
pub(crate) mod replay;
