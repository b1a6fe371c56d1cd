//! Everything that knows SOAP: the envelope's parts and the faults we answer with.

pub(crate) mod envelope;
pub(crate) mod fault;
