//! Fuzzes the VDEX loader on arbitrary documents.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwlr_gateway::fuzzing::vdex(data));
