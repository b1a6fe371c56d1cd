//! Issue 13's classes over HTTP: keys compare values in their XSD type, integers and dates are read as XML Schema defines them.
//!
//! Each test is a disagreement with libxml2 (or a lossy store) that the differential
//! test or its review found, kept as a regression.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{
    count, fault_of, rows, send_and_check, spawn_default, wait_published, Expect, Gateway,
};

const SCHEMA_FAULT: &str = "Client.OngeldigBericht";

/// A demo message with text replacements applied to its envelope (`from` must occur).
fn edited(message: &Message, edits: &[(&str, &str)]) -> Vec<u8> {
    let mut xml = String::from_utf8(message.envelope()).unwrap();
    for (from, to) in edits {
        assert!(xml.contains(from), "{from} not in the message");
        xml = xml.replacen(from, to, 1);
    }
    xml.into_bytes()
}

fn one_result(seconds: u32, toetscode: &str, score: u64) -> Message {
    Message::demo(&aanmaakdatum(seconds))
        .afname("LL0001", vec![Resultaat::score("K1", toetscode, score)])
        .toets(Toets::new(toetscode))
}

fn stored(gateway: &Gateway) -> i64 {
    count(&gateway.db(), "SELECT count(*) FROM toetsafnames")
}

#[test]
fn keyref_compares_toetscodes_as_xs_string() {
    let gateway = spawn_default();
    // `HO-C ` (trailing space) refers to no toets: the toets is `HO-C`.
    let message = one_result(1, "HO-C", 5);
    let body = edited(
        &message,
        &[(
            "<lr:toetscode>HO-C</lr:toetscode>",
            "<lr:toetscode>HO-C </lr:toetscode>",
        )],
    );
    let reply = send_and_check(
        &gateway,
        "HO-C with a space",
        body,
        &Expect::fault(SCHEMA_FAULT, &["UWLR-XSD"]),
    );
    assert!(reply.body.contains("krAfnameToets"), "{}", reply.body);
    // A line break in a toets's code is part of it too (written as CR LF, read as LF).
    let body = edited(
        &one_result(2, "HO-C", 5),
        &[(
            "<lr:toets>\n<lr:toetscode>HO-C",
            "<lr:toets>\n<lr:toetscode>\r\nHO-C",
        )],
    );
    send_and_check(
        &gateway,
        "toets code with a line break",
        body,
        &Expect::fault(SCHEMA_FAULT, &["UWLR-XSD"]),
    );
    assert_eq!(stored(&gateway), 0);
}

#[test]
fn toetscodes_that_differ_in_whitespace_are_two_toetsen() {
    let gateway = spawn_default();
    let message = Message::demo(&aanmaakdatum(1))
        .afname(
            "LL0001",
            vec![
                Resultaat::score("K1", "HO-C", 5),
                Resultaat::score("K2", "HO-X", 6),
            ],
        )
        .toets(Toets::new("HO-C"))
        .toets(Toets::new("HO-X"));
    let body = edited(
        &message,
        &[
            (
                "<lr:toetscode>HO-X</lr:toetscode>",
                "<lr:toetscode> HO-C</lr:toetscode>",
            ),
            (
                "<lr:toetscode>HO-X</lr:toetscode>",
                "<lr:toetscode> HO-C</lr:toetscode>",
            ),
        ],
    );
    send_and_check(&gateway, "HO-C and ' HO-C'", body, &Expect::Accepted);
    assert_eq!(
        rows(
            &gateway.db(),
            "SELECT '[' || toetscode || ']' FROM toetsen ORDER BY toetscode"
        ),
        ["[ HO-C]", "[HO-C]"]
    );
    assert_eq!(
        rows(
            &gateway.db(),
            "SELECT afname_key || '=[' || toetscode || ']' FROM toetsafnames ORDER BY afname_key"
        ),
        ["K1=[HO-C]", "K2=[ HO-C]"]
    );
}

#[test]
fn resultaat_keys_compare_as_xml_delivers_the_attribute() {
    let gateway = spawn_default();
    let message = Message::demo(&aanmaakdatum(1))
        .afname(
            "LL0001",
            vec![
                Resultaat::score("K1", "T", 5),
                Resultaat::score("K2", "T", 6),
            ],
        )
        .toets(Toets::new("T"));
    // A literal tab in an attribute reaches the application as a space: one key twice.
    let body = edited(
        &message,
        &[("key=\"K1\"", "key=\"K \""), ("key=\"K2\"", "key=\"K\t\"")],
    );
    let reply = send_and_check(
        &gateway,
        "'K ' and 'K<tab>'",
        body,
        &Expect::fault(SCHEMA_FAULT, &["UWLR-XSD"]),
    );
    assert!(reply.body.contains("kResultaat"), "{}", reply.body);
    // A tab written as a reference stays a tab: two keys.
    let message = Message {
        aanmaakdatum: aanmaakdatum(2),
        ..message
    };
    let body = edited(
        &message,
        &[
            ("key=\"K1\"", "key=\"K \""),
            ("key=\"K2\"", "key=\"K&#9;\""),
        ],
    );
    send_and_check(&gateway, "'K ' and 'K&#9;'", body, &Expect::Accepted);
    assert_eq!(stored(&gateway), 2);
}

#[test]
fn onderdeel_volgnummers_compare_by_value() {
    let gateway = spawn_default();
    let message = Message::demo(&aanmaakdatum(1))
        .afname(
            "LL0001",
            vec![Resultaat::score("K1", "T", 5).onderdeel("A")],
        )
        .toets(Toets::new("T").onderdeel("A", 10).onderdeel("B", 10));
    let body = edited(
        &message,
        &[(
            "<lr:toetsonderdeelvolgnummer>2</lr:toetsonderdeelvolgnummer>",
            "<lr:toetsonderdeelvolgnummer>01</lr:toetsonderdeelvolgnummer>",
        )],
    );
    let reply = send_and_check(
        &gateway,
        "volgnummers 1 and 01",
        body,
        &Expect::fault(SCHEMA_FAULT, &["UWLR-XSD"]),
    );
    assert!(
        reply.body.contains("uOnderdeelVolgnummer"),
        "{}",
        reply.body
    );
    let body = edited(
        &Message {
            aanmaakdatum: aanmaakdatum(2),
            ..message
        },
        &[(
            "<lr:toetsonderdeelvolgnummer>2</lr:toetsonderdeelvolgnummer>",
            "<lr:toetsonderdeelvolgnummer>+02</lr:toetsonderdeelvolgnummer>",
        )],
    );
    send_and_check(&gateway, "volgnummers 1 and +02", body, &Expect::Accepted);
}

#[test]
fn integer_forms_are_read_by_value_stored_and_published_without_loss() {
    let gateway = spawn_default();
    let message = Message::demo(&aanmaakdatum(1))
        .afname(
            "LL0001",
            vec![
                Resultaat::score("PLUS", "T", 7),
                Resultaat::score("NUL", "T", 0),
                Resultaat::score("MAX", "GROOT", 1),
            ],
        )
        .toets(Toets::new("T").max(Some(10)))
        .toets(Toets::new("GROOT"));
    let body = edited(
        &message,
        &[
            ("<lr:score>7</lr:score>", "<lr:score>+007</lr:score>"),
            ("<lr:score>0</lr:score>", "<lr:score>-0</lr:score>"),
            ("<lr:score>1</lr:score>", "<lr:score>9223372036854775807</lr:score>"),
            // The normering of T is 0..+0010: 7 lies within it by value.
            ("<lr:eindnormwaarde>10</lr:eindnormwaarde>", "<lr:eindnormwaarde>+0010</lr:eindnormwaarde>"),
            // GROOT's normering reaches the largest value the store holds.
            (
                "<lr:toetscode>GROOT</lr:toetscode>\n<lr:toetsnaam>GROOT</lr:toetsnaam>\n<lr:toetsnormering><lr:norm><lr:term>schaal</lr:term><lr:beginnormwaarde>0</lr:beginnormwaarde><lr:eindnormwaarde>10</lr:eindnormwaarde>",
                "<lr:toetscode>GROOT</lr:toetscode>\n<lr:toetsnaam>GROOT</lr:toetsnaam>\n<lr:toetsnormering><lr:norm><lr:term>schaal</lr:term><lr:beginnormwaarde>0</lr:beginnormwaarde><lr:eindnormwaarde>9223372036854775807</lr:eindnormwaarde>",
            ),
        ],
    );
    send_and_check(&gateway, "+007, -0 and i64::MAX", body, &Expect::Accepted);
    let connection = gateway.db();
    assert_eq!(
        rows(
            &connection,
            "SELECT afname_key || '=' || score FROM toetsafnames ORDER BY afname_key"
        ),
        ["MAX=9223372036854775807", "NUL=0", "PLUS=7"]
    );
    wait_published(&connection);
    let raw = rows(
        &connection,
        &format!(
            "SELECT a.afname_key || '=' || {}
               FROM xapi_statements s JOIN toetsafnames a ON a.id = s.afname_id ORDER BY a.afname_key",
            crate::harness::json_value(&connection, "s.statement", "$.result.score.raw")
        ),
    );
    assert_eq!(raw, ["MAX=9223372036854775807", "NUL=0", "PLUS=7"]);
}

#[test]
fn integers_beyond_the_store_get_a_rule_of_their_own() {
    let gateway = spawn_default();
    let message = one_result(1, "T", 1);
    let body = edited(
        &message,
        &[
            (
                "<lr:score>1</lr:score>",
                "<lr:score>9223372036854775808</lr:score>",
            ),
            (
                "<lr:eindnormwaarde>10</lr:eindnormwaarde>",
                "<lr:eindnormwaarde>99999999999999999999999</lr:eindnormwaarde>",
            ),
        ],
    );
    let reply = send_and_check(
        &gateway,
        "score and norm beyond i64",
        body,
        &Expect::fault(SCHEMA_FAULT, &["UWLR-BEREIK"]),
    );
    let fault = fault_of(&reply);
    assert_eq!(
        fault.rules,
        ["UWLR-BEREIK", "UWLR-BEREIK"],
        "{}",
        reply.body
    );
    assert!(reply.body.contains("9223372036854775808"), "{}", reply.body);
    assert!(
        !reply.body.contains("18446744073709551615"),
        "{}",
        reply.body
    );
    assert_eq!(stored(&gateway), 0);
}

#[test]
fn dates_follow_xml_schema_and_the_ordering_rule_keeps_its_code() {
    let gateway = spawn_default();
    // 24:00:00 is 00:00:00 of the next day; long fractions and ±14:00 are valid.
    let message = one_result(0, "T", 5);
    let at = |aanmaakdatum: &str, afnamedatum: &str| {
        edited(
            &message,
            &[
                (
                    "<lr:aanmaakdatum>2026-11-20T00:00:00</lr:aanmaakdatum>",
                    &format!("<lr:aanmaakdatum>{aanmaakdatum}</lr:aanmaakdatum>"),
                ),
                (
                    "<lr:afnamedatum>2026-12-01</lr:afnamedatum>",
                    &format!("<lr:afnamedatum>{afnamedatum}</lr:afnamedatum>"),
                ),
            ],
        )
    };
    send_and_check(
        &gateway,
        "24:00:00",
        at("2026-11-20T24:00:00", "2026-12-01+14:00"),
        &Expect::Accepted,
    );
    send_and_check(
        &gateway,
        "the same instant written as the next day",
        at("2026-11-21T00:00:00", "2026-12-01"),
        &Expect::fault(SCHEMA_FAULT, &["UWLR-VOLGORDE"]),
    );
    send_and_check(
        &gateway,
        "a long fraction and +14:00",
        at(
            "2026-11-21T14:00:00.1234567890123456789012345678901234567890+14:00",
            "-0044-03-15",
        ),
        &Expect::Accepted,
    );
    // A valid year 10000 is no schema fault either; it lies in the future, which has its own rule.
    send_and_check(
        &gateway,
        "year 10000",
        at("10000-01-01T00:00:00Z", "12026-10-01"),
        &Expect::fault(SCHEMA_FAULT, &["UWLR-TOEKOMST"]),
    );
    assert_eq!(
        rows(&gateway.db(), "SELECT afnamedatum FROM toetsafnames"),
        ["2026-12-01+14:00"]
    );
    // Valid XSD, but no instant the gateway can hold: its own rule, not UWLR-XSD.
    send_and_check(
        &gateway,
        "year 999999",
        at("999999-01-01T00:00:00Z", "2026-12-01"),
        &Expect::fault(SCHEMA_FAULT, &["UWLR-BEREIK"]),
    );
}

#[test]
fn business_rules_hide_no_identity_constraint() {
    let gateway = spawn_default();
    // The first K1 breaks the normering, so it is never written: kResultaat must still see it.
    let message = Message::demo(&aanmaakdatum(1))
        .afname(
            "LL0001",
            vec![
                Resultaat::score("K1", "T", 50),
                Resultaat::score("K1", "T", 5),
            ],
        )
        .toets(Toets::new("T"));
    send_and_check(
        &gateway,
        "score out of range and a duplicate key",
        message.envelope(),
        &Expect::fault(SCHEMA_FAULT, &["UWLR-XSD", "UWLR-SCORE"]),
    );
    // A wrong xsdversie no longer ends the checks before the keys are compared.
    let message = Message::demo(&aanmaakdatum(2))
        .xsdversie("2.1")
        .afname(
            "LL0001",
            vec![
                Resultaat::score("K2", "T", 5),
                Resultaat::score("K2", "T", 6),
            ],
        )
        .toets(Toets::new("T"));
    send_and_check(
        &gateway,
        "xsdversie 2.1 and a duplicate key",
        message.envelope(),
        &Expect::fault(SCHEMA_FAULT, &["UWLR-XSD", "UWLR-XSDVERSIE"]),
    );
    assert_eq!(stored(&gateway), 0);
}

/// Over 1 MiB the schema check runs beside the store pass and results are parsed on a thread of their own: the same comparisons.
#[test]
fn large_messages_compare_values_the_same_way() {
    let gateway = spawn_default();
    let resultaten: Vec<Resultaat> = (0..8000)
        .map(|index| Resultaat::score(&format!("GROOT-{index:05}"), "T", index % 10))
        .collect();
    let message = Message::demo(&aanmaakdatum(1))
        .afname("LL0001", resultaten)
        .toets(Toets::new("T"));
    let body = edited(
        &message,
        &[
            // The last result refers to `T ` and one key occurs twice, the first time with a score above the normering.
            ("<lr:toetscode>T</lr:toetscode>\n<lr:score>9</lr:score>\n</lr:resultaat>\n</lr:resultaten>", "<lr:toetscode>T </lr:toetscode>\n<lr:score>9</lr:score>\n</lr:resultaat>\n</lr:resultaten>"),
            ("key=\"GROOT-00007\">\n<lr:afnamedatum>2026-12-01</lr:afnamedatum>\n<lr:toetscode>T</lr:toetscode>\n<lr:score>7</lr:score>", "key=\"GROOT-00008\">\n<lr:afnamedatum>2026-12-01</lr:afnamedatum>\n<lr:toetscode>T</lr:toetscode>\n<lr:score>70</lr:score>"),
        ],
    );
    assert!(body.len() > 1 << 20, "{} bytes", body.len());
    let reply = send_and_check(
        &gateway,
        "large message",
        body,
        &Expect::fault(SCHEMA_FAULT, &["UWLR-XSD", "UWLR-SCORE"]),
    );
    assert!(reply.body.contains("krAfnameToets"), "{}", reply.body);
    assert!(reply.body.contains("kResultaat"), "{}", reply.body);
    assert_eq!(stored(&gateway), 0);
}
