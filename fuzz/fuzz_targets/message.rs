//! Fuzzes the message model: every item of a full Scanner pass becomes a wire type, and the store-free rules run on it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwlr_gateway::fuzzing::message(data));
