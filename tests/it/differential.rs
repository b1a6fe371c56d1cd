//! The differential test: seeded XSD edge-case messages get the same schema verdict from the gateway over HTTP as from libxml2 with the full contract.
//!
//! `uwlr_gateway::tools::differential` generates the cases and defines the verdicts.
//! `DIFFERENTIAL_CASES` and `DIFFERENTIAL_SEED` override the count and the seed
//! (for a longer search); CI runs the fixed seed with 2,000 cases.

use crate::harness::{spawn_default, Gateway, NS_DETAIL};
use rand::SeedableRng;
use uwlr_gateway::domain::Rule;
use uwlr_gateway::tools::differential::{self, Verdict};

const DEFAULT_SEED: u64 = 13;
const DEFAULT_CASES: u64 = 2_000;

/// The rules a gateway answer names: none for a bevestiging.
fn rules_of(status: u16, body: &str) -> Vec<Rule> {
    if status == 200 {
        return Vec::new();
    }
    assert!(
        body.contains(NS_DETAIL),
        "a fault without our detail: {body}"
    );
    let mut rules: Vec<Rule> = body
        .split("<gw:rule>")
        .skip(1)
        .filter_map(|rest| rest.split("</gw:rule>").next())
        .filter_map(Rule::from_code)
        .collect();
    if rules.is_empty() {
        rules.push(Rule::Intern);
    }
    rules
}

/// Posts one body and compares the verdicts; a disagreement is described, agreement is `None`.
fn compare(gateway: &Gateway, full_driver: &std::path::Path, body: &[u8]) -> Option<String> {
    let reply = gateway.post(body.to_vec());
    let rules = rules_of(reply.status, &reply.body);
    let (expected, libxml2_messages) =
        differential::libxml2_verdict(full_driver, body).expect("libxml2 validates");
    match differential::gateway_verdict(&rules) {
        Some(verdict) if verdict == expected => None,
        verdict => Some(format!(
            "gateway {verdict:?} ({rules:?}), libxml2 {expected:?} {libxml2_messages:?}\n{}\n{}",
            String::from_utf8_lossy(body),
            reply.body
        )),
    }
}

fn contract() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let set = uwlr_gateway::schema::prepare(dir.path(), None).unwrap();
    (dir, set.full)
}

#[test]
fn gateway_and_libxml2_agree_on_every_generated_message() {
    let seed = std::env::var("DIFFERENTIAL_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let cases = std::env::var("DIFFERENTIAL_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let gateway = spawn_default();
    let (_dir, full) = contract();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let started = std::time::Instant::now();
    let mut disagreements = Vec::new();
    let mut invalid = 0;
    for index in 0..cases {
        let case = differential::case(&mut rng, index);
        if differential::libxml2_verdict(&full, &case.body).unwrap().0 == Verdict::Invalid {
            invalid += 1;
        }
        if let Some(report) = compare(&gateway, &full, &case.body) {
            disagreements.push(format!("case {index} {:?}: {report}", case.mutations));
        }
    }
    eprintln!(
        "differential: {cases} cases (seed {seed}, {invalid} schema-invalid) in {:?}, {} disagreements",
        started.elapsed(),
        disagreements.len()
    );
    // Both verdicts must occur often, or the test proves little.
    assert!(
        invalid > cases / 5 && invalid < cases * 4 / 5,
        "{invalid} of {cases} invalid"
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements, the first:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// The fuzz target's body (in-process intake, the fuzzer's bytes steering the generator) on seeded random inputs.
#[test]
fn the_fuzz_target_agrees_on_random_inputs() {
    use rand::RngCore;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(DEFAULT_SEED);
    for _ in 0..300 {
        let mut data = vec![0u8; 256];
        rng.fill_bytes(&mut data);
        uwlr_gateway::fuzzing::differential(&data);
    }
}
