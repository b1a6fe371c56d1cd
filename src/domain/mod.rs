//! Checked domain types and the UWLR result rules, free of XML and SQL.

pub(crate) mod aanmaakdatum;
pub(crate) mod clock;
pub(crate) mod rules;
pub(crate) mod school;
pub(crate) mod violation;
pub(crate) mod xsd;

pub(crate) use clock::{today, Clock};
pub(crate) use school::SchoolCode;
pub use violation::Rule;
pub(crate) use violation::Violation;

#[cfg(test)]
mod proptests;
