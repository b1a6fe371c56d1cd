//! Checked domain types and the UWLR result rules, free of XML and SQL.

pub mod aanmaakdatum;
pub mod clock;
pub mod rules;
pub mod school;
pub mod violation;
pub mod xsd;

pub use clock::{today, Clock};
pub use school::SchoolCode;
pub use violation::{Rule, Violation};

#[cfg(test)]
mod proptests;
