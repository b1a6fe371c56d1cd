//! Moved to `domain::clock`; this re-export keeps `crate::clock::Clock` working until its callers switch.

pub use crate::domain::clock::{today, Clock};
