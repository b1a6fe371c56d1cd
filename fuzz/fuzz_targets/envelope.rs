//! Fuzzes the envelope and header pass: the intake's own head scan up to the school block (both framings), the root and Body checks, the autorisatie header and SOAPAction parsing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwlr_gateway::fuzzing::envelope(data));
