//! Every sample in samples/ against one gateway, in manifest order, with the documented outcome.

use crate::harness::{self, check, count, manifest, receipt_rules, spawn_default, Expect};
use std::collections::BTreeSet;
use uwlr_gateway::domain::Rule;

#[test]
fn every_sample_gives_its_documented_outcome() {
    let gateway = spawn_default();
    let samples = manifest();
    let mut with_receipt = 0;
    for sample in &samples {
        let reply = gateway.post_sample(&sample.file);
        let expected = sample.expected();
        check(&sample.file, &reply, &expected);
        let connection = gateway.db();
        match (&expected, &reply.receipt_id) {
            (Expect::Accepted, Some(receipt_id)) => {
                let outcome: String = connection
                    .query_row(
                        "SELECT outcome FROM receipts WHERE id = ?1",
                        [receipt_id],
                        |row| row.get(0),
                    )
                    .unwrap_or_else(|error| {
                        panic!("{}: receipt {receipt_id}: {error}", sample.file)
                    });
                assert_eq!(outcome, "accepted", "{}", sample.file);
                with_receipt += 1;
            }
            (Expect::Fault { faultcode, rules }, Some(receipt_id)) => {
                // A sender that was identified gets a receipt naming the same rules.
                let stored_faultcode: Option<String> = connection
                    .query_row(
                        "SELECT faultcode FROM receipts WHERE id = ?1 AND outcome = 'rejected'",
                        [receipt_id],
                        |row| row.get(0),
                    )
                    .unwrap_or_else(|error| {
                        panic!("{}: rejected receipt {receipt_id}: {error}", sample.file)
                    });
                assert_eq!(
                    stored_faultcode.as_deref(),
                    Some(faultcode.as_str()),
                    "{}",
                    sample.file
                );
                assert_eq!(
                    &receipt_rules(&connection, receipt_id),
                    rules,
                    "{}",
                    sample.file
                );
                assert_eq!(
                    harness::fault_of(&reply).receipt_id.as_deref(),
                    Some(receipt_id.as_str()),
                    "{}",
                    sample.file
                );
                with_receipt += 1;
            }
            (Expect::Accepted, None) => panic!("{}: accepted without a receipt id", sample.file),
            (Expect::Fault { .. }, None) => {}
        }
    }
    let connection = gateway.db();
    assert_eq!(
        count(&connection, "SELECT count(*) FROM receipts"),
        with_receipt
    );
    let accepted = samples
        .iter()
        .filter(|sample| sample.outcome == "accepted")
        .count() as i64;
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"
        ),
        accepted
    );
    // Only senders that were identified and authorised leave a receipt: here the
    // accepted samples and the sixteen rejected after authentication.
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome = 'rejected'"
        ),
        16
    );
}

/// The rule table in README.md: (rule code, faultcode, Edu-V code) per row.
fn readme_rules() -> Vec<(String, String, String)> {
    let readme =
        std::fs::read_to_string(harness::repo_root().join("README.md")).expect("README.md");
    readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            (cells.len() >= 3 && cells[0].starts_with("UWLR-")).then(|| {
                (
                    cells[0].to_string(),
                    cells[1].to_string(),
                    cells[2].to_string(),
                )
            })
        })
        .collect()
}

#[test]
fn readme_rule_table_is_the_rule_enum() {
    let table = readme_rules();
    let codes: Vec<&str> = table.iter().map(|(code, _, _)| code.as_str()).collect();
    let expected: Vec<&str> = Rule::ALL.iter().map(|rule| rule.code()).collect();
    assert_eq!(
        codes, expected,
        "README's rule table lists the rules of Rule::ALL in order"
    );
    for (code, faultcode, eduv) in &table {
        let rule = Rule::from_code(code).unwrap();
        assert_eq!(faultcode, rule.faultcode(), "README faultcode of {code}");
        assert_eq!(eduv, rule.eduv_code(), "README Edu-V code of {code}");
    }
}

#[test]
fn every_rule_has_a_failing_sample_and_there_are_passing_samples() {
    let samples = manifest();
    let covered: BTreeSet<String> = samples
        .iter()
        .flat_map(|sample| sample.rules.iter().cloned())
        .collect();
    for (code, _, _) in readme_rules() {
        if code == Rule::Intern.code() || code == Rule::Grootte.code() {
            // Our own failure and the size limit (tests/it/http_edges.rs) have no sample file.
            continue;
        }
        assert!(covered.contains(&code), "no failing sample for {code}");
    }
    for sample in &samples {
        for code in &sample.rules {
            let rule = Rule::from_code(code)
                .unwrap_or_else(|| panic!("{}: unknown rule code {code}", sample.file));
            if sample.rules.len() == 1 {
                assert_eq!(
                    Some(rule.faultcode()),
                    sample.faultcode.as_deref(),
                    "{}: faultcode of {code}",
                    sample.file
                );
            }
        }
        assert!(
            !sample.description.is_empty(),
            "{}: no description",
            sample.file
        );
    }
    let passing = samples
        .iter()
        .filter(|sample| sample.outcome == "accepted")
        .count();
    assert!(passing >= 4, "only {passing} passing samples");
}

#[test]
fn manifest_lists_every_sample_file_once() {
    let listed: Vec<String> = manifest().into_iter().map(|sample| sample.file).collect();
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a sample is listed twice");
    let mut on_disk: Vec<String> = std::fs::read_dir(harness::repo_root().join("samples"))
        .expect("samples/")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".xml"))
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk, "manifest.toml and samples/*.xml differ");
    assert_eq!(
        listed, sorted,
        "the manifest is not in replay (file-name) order"
    );
}

/// Validates an answer body against the SOAP 1.1 envelope schema (xsd/SOAP_Envelope.xsd) with libxml2.
fn soap11_schema_errors(body: &str) -> Vec<String> {
    use libxml::parser::Parser;
    use libxml::schemas::{SchemaParserContext, SchemaValidationContext};
    let schema = harness::repo_root().join("xsd/SOAP_Envelope.xsd");
    let mut parser = SchemaParserContext::from_file(schema.to_str().unwrap());
    let mut validation = SchemaValidationContext::from_parser(&mut parser)
        .unwrap_or_else(|errors| panic!("SOAP_Envelope.xsd does not compile: {errors:?}"));
    let document = Parser::default()
        .parse_string(body)
        .unwrap_or_else(|error| panic!("answer is not XML ({error:?}): {body}"));
    match validation.validate_document(&document) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_iter()
            .map(|error| error.message.unwrap_or_default().trim().to_string())
            .collect(),
    }
}

/// SOAP 1.1 defines faultstring as a plain xs:string: an `xml:lang` on it (as SOAP 1.2's
/// Reason/Text has) makes every fault invalid against the envelope schema.
#[test]
fn faults_and_bevestiging_are_valid_soap_1_1_envelopes() {
    let gateway =
        harness::spawn_gateway(harness::Options::default().env("UWLR_MAX_BODY_BYTES", "200000"));
    let mut answers = Vec::new();
    for file in [
        "01-drip-een-resultaat.xml",
        "30-uwlr-bericht-geen-xml.xml",
        "33-uwlr-xsd-decimal-score.xml",
        "37-uwlr-autorisatie-verkeerde-sleutel.xml",
        "43-uwlr-score-boven-normering.xml",
    ] {
        answers.push((file.to_string(), gateway.post_sample(file)));
    }
    answers.push((
        "unknown SOAPAction".into(),
        gateway.post_with(
            harness::read_sample("01-drip-een-resultaat.xml"),
            "text/xml; charset=utf-8",
            Some("\"Onbekend\""),
        ),
    ));
    answers.push(("too large".into(), gateway.post(vec![b' '; 300_000])));
    let mut faults = 0;
    for (what, reply) in &answers {
        let errors = soap11_schema_errors(&reply.body);
        assert!(
            errors.is_empty(),
            "{what}: HTTP {} answer is not a valid SOAP 1.1 envelope: {errors:?}\n{}",
            reply.status,
            reply.body
        );
        if reply.body.contains(":Fault>") {
            faults += 1;
        }
    }
    assert_eq!(
        faults,
        answers.len() - 1,
        "one bevestiging, the rest faults"
    );
}
