//! Fuzzes the schema verdict: generated XSD edge-case messages must get the same verdict from the gateway's intake as from libxml2 with the full contract.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwlr_gateway::fuzzing::differential(data));
