//! Everything that knows SOAP: the envelope's parts and the faults we answer with.

pub mod envelope;
pub mod fault;
