//! The intake split into stages: offline `validate` derives toets totals per sitting with the gateway's own code, so both give one verdict.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{cli_with_data_dir, fault_of, send_and_check, spawn_default, Expect};
use std::collections::BTreeSet;

/// The rule codes `validate` printed for `file`, and whether it said `valid`.
fn validate_rules(file: &str) -> (bool, BTreeSet<String>, String) {
    let scratch = tempfile::tempdir().unwrap();
    let output = cli_with_data_dir(scratch.path(), &["validate", file]);
    let prefix = format!("{file}:");
    let mut valid = false;
    let mut rules = BTreeSet::new();
    for line in output
        .stdout
        .lines()
        .filter(|line| line.starts_with(&prefix))
    {
        let rest = line[prefix.len()..].trim_start();
        if rest == "valid" {
            valid = true;
        } else if !rest.starts_with("not checked offline") {
            // LINE:COLUMN: RULE message
            let rule = rest.splitn(3, ':').nth(2).unwrap_or("").trim_start();
            rules.insert(rule.split(' ').next().unwrap_or("").to_string());
        }
    }
    (valid, rules, output.stdout)
}

/// A toets of two onderdelen (0..=10 each) whose toetsnormering ends at 15.
fn som() -> Toets {
    Toets::new("SPLIT-SOM")
        .max(Some(15))
        .onderdeel("A", 10)
        .onderdeel("B", 10)
}

/// Before the split, offline `validate` added up every onderdeel score of a toetsafname per
/// toets version, over all its sittings and every result of an onderdeel, and gave a
/// UWLR-SCORE the gateway never gives: the gateway sums per sitting (leerling, toets
/// version, afnamedatum), the latest result of each onderdeel once.
#[test]
fn validate_derives_toets_totals_per_sitting_as_the_gateway_does() {
    let gateway = spawn_default();
    let scratch = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Message, &[&str])> = vec![
        (
            "two sittings in one toetsafname, each within the toetsnormering",
            Message::demo(&aanmaakdatum(101)).toets(som()).afname(
                "LL0001",
                vec![
                    Resultaat::score("SPLIT-1A", "SPLIT-SOM", 7)
                        .onderdeel("A")
                        .afnamedatum("2026-11-02"),
                    Resultaat::score("SPLIT-1B", "SPLIT-SOM", 8)
                        .onderdeel("B")
                        .afnamedatum("2026-11-02"),
                    Resultaat::score("SPLIT-2A", "SPLIT-SOM", 6)
                        .onderdeel("A")
                        .afnamedatum("2026-11-09"),
                    Resultaat::score("SPLIT-2B", "SPLIT-SOM", 9)
                        .onderdeel("B")
                        .afnamedatum("2026-11-09"),
                ],
            ),
            &[],
        ),
        (
            "an onderdeel sent twice in one sitting counts once",
            Message::demo(&aanmaakdatum(102)).toets(som()).afname(
                "LL0002",
                vec![
                    Resultaat::score("SPLIT-3A", "SPLIT-SOM", 9).onderdeel("A"),
                    Resultaat::score("SPLIT-3A2", "SPLIT-SOM", 7).onderdeel("A"),
                    Resultaat::score("SPLIT-3B", "SPLIT-SOM", 8).onderdeel("B"),
                ],
            ),
            &[],
        ),
        (
            "one sitting whose onderdelen add up above the toetsnormering",
            Message::demo(&aanmaakdatum(103)).toets(som()).afname(
                "LL0003",
                vec![
                    Resultaat::score("SPLIT-4A", "SPLIT-SOM", 9).onderdeel("A"),
                    Resultaat::score("SPLIT-4B", "SPLIT-SOM", 9).onderdeel("B"),
                ],
            ),
            &["UWLR-SCORE"],
        ),
    ];
    for (index, (what, message, rules)) in cases.into_iter().enumerate() {
        let expected = match rules {
            [] => Expect::Accepted,
            _ => Expect::fault("Client.ScoreOngeldig", rules),
        };
        send_and_check(&gateway, what, message.envelope(), &expected);
        let file = scratch.path().join(format!("sitting-{index}.xml"));
        std::fs::write(&file, message.envelope()).unwrap();
        let file = file.to_str().unwrap();
        let (valid, found, stdout) = validate_rules(file);
        let expected: BTreeSet<String> = rules.iter().map(|rule| rule.to_string()).collect();
        assert_eq!(found, expected, "{what}\n{stdout}");
        assert_eq!(valid, rules.is_empty(), "{what}\n{stdout}");
    }
}

/// Over 1 MiB the schema verdict arrives during the store pass and replaces the other
/// findings but UWLR-XSDVERSIE. Before the split phase 2 wrote that violation again
/// without its place; the school checks are one function now, and it has a line and column.
#[test]
fn a_late_schema_verdict_keeps_the_place_of_the_xsdversie_violation() {
    let gateway = spawn_default();
    let resultaten: Vec<Resultaat> = (0..8000)
        .map(|index| Resultaat::score(&format!("LAAT-{index:05}"), "LAAT", index % 10))
        .collect();
    let message = Message::demo(&aanmaakdatum(201))
        .xsdversie("2.1")
        .afname("LL0001", resultaten)
        .toets(Toets::new("LAAT"));
    let xml = String::from_utf8(message.envelope()).unwrap();
    // A decimal score: only libxml2's verdict names it.
    let body = xml.replacen("<lr:score>7</lr:score>", "<lr:score>7.5</lr:score>", 1);
    assert_ne!(body, xml);
    assert!(body.len() > 1 << 20, "{} bytes", body.len());
    let reply = send_and_check(
        &gateway,
        "large message with xsdversie 2.1 and a decimal score",
        body.clone(),
        &Expect::fault("Client.OngeldigBericht", &["UWLR-XSD", "UWLR-XSDVERSIE"]),
    );
    let receipt_id = fault_of(&reply).receipt_id.expect("a receipt id");
    let violations: String = gateway
        .db()
        .query_row(
            "SELECT violations FROM receipts WHERE id = ?1",
            [&receipt_id],
            |row| row.get(0),
        )
        .unwrap();
    let violations: Vec<serde_json::Value> = serde_json::from_str(&violations).unwrap();
    let xsdversie = violations
        .iter()
        .find(|violation| violation["rule"] == "UWLR-XSDVERSIE")
        .expect("an xsdversie violation");
    let line = body
        .lines()
        .position(|line| line.contains("<lr:xsdversie>"))
        .unwrap()
        + 1;
    assert_eq!(xsdversie["line"], line as u64, "{xsdversie}");
    assert!(xsdversie["column"].as_u64().is_some(), "{xsdversie}");
}

/// The receipt's counts as (toetsafnames, resultaten, created, updated).
fn receipt_counts(gateway: &crate::harness::Gateway, receipt_id: &str) -> (i64, i64, i64, i64) {
    gateway
        .db()
        .query_row(
            "SELECT toetsafnames, resultaten, created, updated FROM receipts WHERE id = ?1",
            [receipt_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap()
}

/// Issue 19: a batch out of order is refused before the store pass, so the writer is not
/// held while its results are read (before, its 20,000 results were read and written, then
/// rolled back), and what was stored before stays as it was.
#[test]
fn issue_19_a_batch_out_of_order_is_refused_before_its_results_are_read() {
    let gateway = spawn_default();
    let first = Message::demo(&aanmaakdatum(300))
        .afname("LL0001", vec![Resultaat::score("VOOR-00000", "VOOR", 3)])
        .toets(Toets::new("VOOR"));
    send_and_check(
        &gateway,
        "the first message",
        first.envelope(),
        &Expect::Accepted,
    );
    let changes_before =
        crate::harness::count(&gateway.db(), "SELECT count(*) FROM toetsafname_changes");
    let resultaten: Vec<Resultaat> = (0..20_000)
        .map(|index| Resultaat::score(&format!("VOOR-{index:05}"), "VOOR", 7))
        .collect();
    let batch = Message::demo(&aanmaakdatum(200))
        .afname("LL0001", resultaten)
        .toets(Toets::new("VOOR"));
    let body = batch.envelope();
    assert!(body.len() > 1 << 20, "{} bytes", body.len());
    let reply = send_and_check(
        &gateway,
        "a batch older than the first message",
        body,
        &Expect::fault("Client.OngeldigBericht", &["UWLR-VOLGORDE"]),
    );
    let receipt_id = fault_of(&reply).receipt_id.expect("a receipt id");
    assert_eq!(receipt_counts(&gateway, &receipt_id), (0, 0, 0, 0));
    assert_eq!(
        crate::harness::rows(
            &gateway.db(),
            "SELECT afname_key || ' ' || score || ' ' || revision FROM toetsafnames"
        ),
        ["VOOR-00000 3 1"]
    );
    assert_eq!(
        crate::harness::count(&gateway.db(), "SELECT count(*) FROM toetsafname_changes"),
        changes_before
    );
}

/// A wrong xsdversie condemns the whole message: it is refused in phase 1, and a large
/// message never reaches the writer (its schema verdict is still waited for and reported).
#[test]
fn issue_19_a_batch_with_a_wrong_xsdversie_is_refused_before_the_store_pass() {
    let gateway = spawn_default();
    let resultaten: Vec<Resultaat> = (0..8000)
        .map(|index| Resultaat::score(&format!("VERSIE-{index:05}"), "VERSIE", index % 10))
        .collect();
    let message = Message::demo(&aanmaakdatum(201))
        .xsdversie("2.1")
        .afname("LL0001", resultaten)
        .toets(Toets::new("VERSIE"));
    let body = message.envelope();
    assert!(body.len() > 1 << 20, "{} bytes", body.len());
    let reply = send_and_check(
        &gateway,
        "large message with xsdversie 2.1",
        body,
        &Expect::fault("Client.XsdVersieOngeldig", &["UWLR-XSDVERSIE"]),
    );
    let receipt_id = fault_of(&reply).receipt_id.expect("a receipt id");
    assert_eq!(receipt_counts(&gateway, &receipt_id), (0, 0, 0, 0));
}

/// A small message refused before the store pass still names a duplicate result key: no
/// store pass finds it, so the full contract's identity constraints are asked.
#[test]
fn a_small_message_out_of_order_still_names_its_duplicate_result_key() {
    let gateway = spawn_default();
    let first = Message::demo(&aanmaakdatum(300))
        .afname("LL0001", vec![Resultaat::score("DUBBEL-1", "DUBBEL", 3)])
        .toets(Toets::new("DUBBEL"));
    send_and_check(
        &gateway,
        "the first message",
        first.envelope(),
        &Expect::Accepted,
    );
    let twice = Message::demo(&aanmaakdatum(200))
        .afname(
            "LL0001",
            vec![
                Resultaat::score("DUBBEL-2", "DUBBEL", 3),
                Resultaat::score("DUBBEL-2", "DUBBEL", 4),
            ],
        )
        .toets(Toets::new("DUBBEL"));
    send_and_check(
        &gateway,
        "out of order, a key twice",
        twice.envelope(),
        &Expect::fault("Client.OngeldigBericht", &["UWLR-VOLGORDE", "UWLR-XSD"]),
    );
    let wrong_version = Message::demo(&aanmaakdatum(400))
        .xsdversie("2.1")
        .afname(
            "LL0001",
            vec![
                Resultaat::score("DUBBEL-3", "DUBBEL", 3),
                Resultaat::score("DUBBEL-3", "DUBBEL", 4),
            ],
        )
        .toets(Toets::new("DUBBEL"));
    send_and_check(
        &gateway,
        "xsdversie 2.1, a key twice",
        wrong_version.envelope(),
        &Expect::fault("Client.OngeldigBericht", &["UWLR-XSDVERSIE", "UWLR-XSD"]),
    );
}
