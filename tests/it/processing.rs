//! What a message leaves in the store: toets versions and corrections, afname upserts with history, derived sums, atomic rejection.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{
    count, manifest, receipt_rules, rows, send_and_check, spawn_default, Expect, Gateway,
};
use uwlr_gateway::store::db::Db;

/// Sends the accepted samples (01-10) in order.
fn send_valid_samples(gateway: &Gateway) {
    for sample in manifest()
        .iter()
        .filter(|sample| sample.outcome == "accepted")
    {
        send_and_check(
            gateway,
            &sample.file,
            crate::harness::read_sample(&sample.file),
            &Expect::Accepted,
        );
    }
}

/// The highest eindnormwaarde of a stored definition's toetsnormering.
fn toets_max(definition: &str) -> u64 {
    let json: serde_json::Value = serde_json::from_str(definition).expect("definition JSON");
    json["toetsnormering"]["norms"]
        .as_array()
        .expect("norms")
        .iter()
        .map(|norm| norm["eindnormwaarde"].as_u64().expect("eindnormwaarde"))
        .max()
        .expect("a norm")
}

fn onderdeel_codes(definition: &str) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(definition).expect("definition JSON");
    json["toetsonderdelen"]
        .as_array()
        .map(|onderdelen| {
            onderdelen
                .iter()
                .map(|onderdeel| {
                    onderdeel["toetsonderdeelcode"]["waarde"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// (id, revision, definition) of one stored toets version.
fn toets_row(connection: &Db, toetscode: &str, versie: &str) -> (i64, i64, String) {
    connection
        .query_row(
            "SELECT t.id, t.revision, t.definition FROM toetsen t JOIN schools s ON s.id = t.school_id
             WHERE s.code = '99XX01' AND t.toetscode = ?1 AND t.versie = ?2",
            [toetscode, versie],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap_or_else(|error| panic!("toets {toetscode} versie '{versie}': {error}"))
}

/// (toets_id, versie, score, revision) of one afname.
fn afname_row(connection: &Db, key: &str) -> (i64, String, Option<i64>, i64) {
    connection
        .query_row(
            "SELECT toets_id, versie, score, revision FROM toetsafnames WHERE afname_key = ?1",
            [key],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap_or_else(|error| panic!("afname {key}: {error}"))
}

#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn valid_samples_are_stored_as_the_standard_describes() {
    let gateway = spawn_default();
    send_valid_samples(&gateway);
    let connection = gateway.db();

    // Sample 03 created DEMO-REK-M4 versie 1; 05 added versie 2; 06 corrected versie 2.
    let (v1_id, v1_revision, v1_definition) = toets_row(&connection, "DEMO-REK-M4", "1");
    let (v2_id, v2_revision, v2_definition) = toets_row(&connection, "DEMO-REK-M4", "2");
    assert_ne!(v1_id, v2_id);
    assert_eq!(v1_revision, 1, "versie 1 was never corrected");
    assert_eq!(onderdeel_codes(&v1_definition), ["GET", "VERH", "MEET"]);
    assert_eq!(toets_max(&v1_definition), 30);
    assert_eq!(v2_revision, 2, "sample 06 corrected versie 2");
    assert_eq!(
        onderdeel_codes(&v2_definition),
        ["GET", "VERH", "MEET", "BEW"]
    );
    assert_eq!(
        toets_max(&v2_definition),
        44,
        "the correction's toetsnormering"
    );
    let history = rows(
        &connection,
        &format!("SELECT revision, definition FROM toetsen_history WHERE toets_id = {v2_id}"),
    );
    assert_eq!(history.len(), 1, "one replaced definition of versie 2");
    let (revision, old_definition) = history[0].split_once('|').unwrap();
    assert_eq!(revision, "1");
    assert_eq!(
        toets_max(old_definition),
        40,
        "the history keeps sample 05's definition"
    );
    assert_eq!(
        count(&connection, "SELECT count(*) FROM toetsen_history"),
        1,
        "only versie 2 was corrected"
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM toetsen WHERE toetscode = 'DEMO-REK-M4'"
        ),
        2
    );

    // Older results stay pinned to the version they were sent with.
    for key in ["M4-LL0001-GET", "M4-LL0002-VERH", "M4-LL0003-TOTAAL"] {
        let (toets_id, versie, _, _) = afname_row(&connection, key);
        assert_eq!((toets_id, versie.as_str()), (v1_id, "1"), "{key}");
    }
    for key in ["M4V2-LL0001-BEW", "M4V2-LL0004-TOTAAL"] {
        let (toets_id, versie, _, _) = afname_row(&connection, key);
        assert_eq!((toets_id, versie.as_str()), (v2_id, "2"), "{key}");
    }

    // Sample 07 updated R-DRIP-0001 of sample 01: score 7 -> 9, revision 2, history, mutatiedatum.
    let (afname_id, score, revision, afnamedatum, mutatiedatum, stored_aanmaakdatum): (i64, i64, i64, String, Option<String>, String) =
        connection
            .query_row(
                "SELECT id, score, revision, afnamedatum, mutatiedatum, aanmaakdatum FROM toetsafnames WHERE afname_key = 'R-DRIP-0001'",
                rusqlite::params![],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)),
            )
            .expect("R-DRIP-0001");
    assert_eq!((score, revision), (9, 2));
    assert_eq!(
        mutatiedatum.as_deref(),
        Some("2026-09-30"),
        "the afnamedatum of the update"
    );
    assert_eq!(afnamedatum, "2026-09-30");

    // Samples 11 and 12: XSD forms read by value, keys that differ in whitespace only.
    assert_eq!(
        rows(
            &connection,
            "SELECT afname_key || '=' || score || ' ' || afnamedatum || ' [' || toetscode || ']' FROM toetsafnames
             WHERE afname_key LIKE 'XSD-%' ORDER BY afname_key"
        ),
        [
            "XSD-11-A=0 2026-10-09 [DEMO-XSD-GETAL]",
            "XSD-11-B=10 2026-10-09 [DEMO-XSD-GETAL]",
            "XSD-11-TOTAAL=7 2026-10-09 [DEMO-XSD-GETAL]",
            "XSD-12-HO-C=3 2026-10-11-14:00 [HO-C]",
            "XSD-12-SPATIE-HO-C=4 12026-10-11 [ HO-C]",
        ]
    );
    // Volgnummers `01` and `+2` are stored by value.
    let (_, _, getal) = toets_row(&connection, "DEMO-XSD-GETAL", "");
    let definition: serde_json::Value = serde_json::from_str(&getal).unwrap();
    let volgnummers: Vec<&str> = definition["toetsonderdelen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|onderdeel| onderdeel["toetsonderdeelvolgnummer"].as_str().unwrap())
        .collect();
    assert_eq!(volgnummers, ["1", "2"]);
    assert_eq!(
        stored_aanmaakdatum, "2026-10-07T08:00:00",
        "the aanmaakdatum of the message that last wrote it"
    );
    let states = rows(
        &connection,
        &format!("SELECT revision, state FROM toetsafnames_history WHERE afname_id = {afname_id}"),
    );
    assert_eq!(states.len(), 1);
    let (revision, state) = states[0].split_once('|').unwrap();
    assert_eq!(revision, "1");
    let state: serde_json::Value = serde_json::from_str(state).expect("history state JSON");
    assert_eq!(state["score"], 7);
    assert_eq!(state["aanmaakdatum"], "2026-10-01T08:00:00");
    assert_eq!(
        count(&connection, "SELECT count(*) FROM toetsafnames_history"),
        1,
        "only sample 07 updated an afname"
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM toetsafnames WHERE revision = 1 AND mutatiedatum IS NULL"
        ),
        count(&connection, "SELECT count(*) FROM toetsafnames") - 1,
        "new afnames have no mutatiedatum"
    );

    // Sample 09: only onderdeel scores under a toetsnormering, so the toets score is their sum.
    let derived = rows(
        &connection,
        "SELECT leerlingid, toetscode, versie, score, toetsonderdeelcode IS NULL, substr(afname_key, 1, 5)
         FROM toetsafnames WHERE derived = 1 ORDER BY leerlingid",
    );
    assert_eq!(
        derived,
        [
            "LL0014|DEMO-TAAL-SOM|1|24|1|~som:",
            "LL0015|DEMO-TAAL-SOM|1|30|1|~som:"
        ]
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM toetsafnames WHERE afname_key LIKE '~som:%' AND derived = 0"
        ),
        0
    );

    // Receipts: one per message, with its counts.
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"
        ),
        manifest()
            .iter()
            .filter(|sample| sample.outcome == "accepted")
            .count() as i64
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome <> 'accepted'"
        ),
        0
    );
    let receipt = |sample_aanmaakdatum: &str| -> String {
        rows(
            &connection,
            &format!(
                "SELECT toetsen, toetsafnames, resultaten, created, updated, unchanged, quarantined FROM receipts
                 WHERE aanmaakdatum = '{sample_aanmaakdatum}'"
            ),
        )
        .join(";")
    };
    assert_eq!(receipt("2026-10-01T08:00:00"), "1|1|1|1|0|0|0", "sample 01");
    assert_eq!(
        receipt("2026-10-03T08:00:00"),
        "1|3|12|12|0|0|0",
        "sample 03"
    );
    assert_eq!(receipt("2026-10-07T08:00:00"), "1|1|1|0|1|0|0", "sample 07");
    assert_eq!(
        receipt("2026-10-09T08:00:00"),
        "1|2|6|8|0|0|0",
        "sample 09: 6 sent + 2 derived"
    );
    let total_created = count(&connection, "SELECT sum(created) FROM receipts");
    assert_eq!(
        total_created,
        count(&connection, "SELECT count(*) FROM toetsafnames"),
        "every stored afname was created by one receipt"
    );

    // The ordering state remembers the last accepted message.
    assert_eq!(
        rows(&connection, "SELECT last_aanmaakdatum FROM sender_state"),
        ["2026-10-12T00:00:00"]
    );
}

#[test]
fn toets_without_normering_gets_no_derived_score() {
    let gateway = spawn_default();
    let onderdelen = |prefix: &str, toetscode: &str| {
        vec![
            Resultaat::score(&format!("{prefix}-A"), toetscode, 4)
                .versie("1")
                .onderdeel("A"),
            Resultaat::score(&format!("{prefix}-B"), toetscode, 5)
                .versie("1")
                .onderdeel("B"),
        ]
    };
    let message = Message::demo(&aanmaakdatum(1))
        .afname("LL0001", onderdelen("ZONDER", "ZONDER-NORM"))
        .afname("LL0002", onderdelen("MET", "MET-NORM"))
        .toets(
            Toets::new("ZONDER-NORM")
                .versie("1")
                .max(None)
                .onderdeel("A", 5)
                .onderdeel("B", 5),
        )
        .toets(
            Toets::new("MET-NORM")
                .versie("1")
                .max(Some(10))
                .onderdeel("A", 5)
                .onderdeel("B", 5),
        );
    send_and_check(
        &gateway,
        "onderdelen only",
        message.envelope(),
        &Expect::Accepted,
    );
    let connection = gateway.db();
    assert_eq!(
        rows(
            &connection,
            "SELECT toetscode, leerlingid, score FROM toetsafnames WHERE derived = 1"
        ),
        ["MET-NORM|LL0002|9"],
        "only the toets with a toetsnormering gets a summed score"
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM toetsafnames WHERE toetscode = 'ZONDER-NORM'"
        ),
        2
    );
}

#[test]
fn a_sum_above_the_toetsnormering_is_refused() {
    let gateway = spawn_default();
    let message = Message::demo(&aanmaakdatum(1))
        .afname(
            "LL0001",
            vec![
                Resultaat::score("SOM-A", "KLEIN", 5).onderdeel("A"),
                Resultaat::score("SOM-B", "KLEIN", 5).onderdeel("B"),
            ],
        )
        .toets(
            Toets::new("KLEIN")
                .max(Some(8))
                .onderdeel("A", 5)
                .onderdeel("B", 5),
        );
    send_and_check(
        &gateway,
        "sum 10 > 8",
        message.envelope(),
        &Expect::fault("Client.ScoreOngeldig", &["UWLR-SCORE"]),
    );
    assert_eq!(count(&gateway.db(), "SELECT count(*) FROM toetsafnames"), 0);
}

/// Sends definition `first`, then `second` of the same toetscode and versie: a correction.
fn check_correction(versie: Option<&str>) {
    let gateway = spawn_default();
    let toets = |naam: &str, max: u64| {
        let toets = Toets::new("CORR-T").naam(naam).max(Some(max));
        match versie {
            Some(versie) => toets.versie(versie),
            None => toets,
        }
    };
    let resultaat = |key: &str, score: u64| {
        let resultaat = Resultaat::score(key, "CORR-T", score);
        match versie {
            Some(versie) => resultaat.versie(versie),
            None => resultaat,
        }
    };
    let first = Message::demo(&aanmaakdatum(1))
        .afname("LL0001", vec![resultaat("CORR-1", 5)])
        .toets(toets("Eerste", 10));
    send_and_check(
        &gateway,
        "first definition",
        first.envelope(),
        &Expect::Accepted,
    );
    // The same definition again changes nothing.
    let same = Message::demo(&aanmaakdatum(2))
        .afname("LL0002", vec![resultaat("CORR-2", 6)])
        .toets(toets("Eerste", 10));
    send_and_check(
        &gateway,
        "same definition",
        same.envelope(),
        &Expect::Accepted,
    );
    let stored = versie.unwrap_or("");
    let (id, revision, _) = toets_row(&gateway.db(), "CORR-T", stored);
    assert_eq!(revision, 1, "an identical definition is no correction");
    // A changed definition overwrites the whole definition; score 15 is valid only under it.
    let second = Message::demo(&aanmaakdatum(3))
        .afname("LL0003", vec![resultaat("CORR-3", 15)])
        .toets(toets("Tweede", 20));
    send_and_check(
        &gateway,
        "corrected definition",
        second.envelope(),
        &Expect::Accepted,
    );
    let connection = gateway.db();
    let (corrected_id, revision, definition) = toets_row(&connection, "CORR-T", stored);
    assert_eq!(
        corrected_id, id,
        "a correction keeps the version's identity"
    );
    assert_eq!(revision, 2);
    assert_eq!(toets_max(&definition), 20);
    assert!(definition.contains("Tweede"), "{definition}");
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM toetsen WHERE toetscode = 'CORR-T'"
        ),
        1,
        "no new version"
    );
    let history = rows(
        &connection,
        &format!("SELECT revision, definition FROM toetsen_history WHERE toets_id = {id}"),
    );
    assert_eq!(history.len(), 1);
    assert!(
        history[0].starts_with("1|") && history[0].contains("Eerste"),
        "{}",
        history[0]
    );
    for key in ["CORR-1", "CORR-2", "CORR-3"] {
        let (toets_id, stored_versie, _, _) = afname_row(&connection, key);
        assert_eq!((toets_id, stored_versie.as_str()), (id, stored), "{key}");
    }
}

#[test]
fn versie_again_missing_is_a_correction() {
    check_correction(None);
}

#[test]
fn known_toetscode_and_versie_is_a_correction() {
    check_correction(Some("2026.1"));
}

#[test]
fn new_versie_of_a_known_toets_is_a_new_version() {
    let gateway = spawn_default();
    let first = Message::demo(&aanmaakdatum(1))
        .afname("LL0001", vec![Resultaat::score("VER-1", "VER-T", 10)])
        .toets(Toets::new("VER-T").max(Some(10)));
    send_and_check(
        &gateway,
        "toets without versie",
        first.envelope(),
        &Expect::Accepted,
    );
    let second = Message::demo(&aanmaakdatum(2))
        .afname(
            "LL0002",
            vec![Resultaat::score("VER-2", "VER-T", 50).versie("2")],
        )
        .toets(Toets::new("VER-T").versie("2").max(Some(50)));
    send_and_check(&gateway, "versie 2", second.envelope(), &Expect::Accepted);
    let connection = gateway.db();
    let (unversioned, revision, definition) = toets_row(&connection, "VER-T", "");
    assert_eq!(
        (revision, toets_max(&definition)),
        (1, 10),
        "the first version is untouched"
    );
    let (versie_2, _, _) = toets_row(&connection, "VER-T", "2");
    assert_eq!(afname_row(&connection, "VER-1").0, unversioned);
    assert_eq!(afname_row(&connection, "VER-2").0, versie_2);
    assert_eq!(
        count(&connection, "SELECT count(*) FROM toetsen_history"),
        0
    );
    // A result without versie is read against the version its message defines (versie 2 here).
    let third = Message::demo(&aanmaakdatum(3))
        .afname("LL0003", vec![Resultaat::score("VER-3", "VER-T", 50)])
        .toets(Toets::new("VER-T").versie("2").max(Some(50)));
    send_and_check(
        &gateway,
        "result without versie, message defines versie 2",
        third.envelope(),
        &Expect::Accepted,
    );
    let connection = gateway.db();
    let (toets_id, versie, _, _) = afname_row(&connection, "VER-3");
    assert_eq!((toets_id, versie.as_str()), (versie_2, "2"));
    // A result naming a versie that exists only in the store is read against the stored one: 11 > 10.
    let fourth = Message::demo(&aanmaakdatum(4))
        .afname(
            "LL0004",
            vec![Resultaat::score("VER-4", "VER-T", 20).versie("3")],
        )
        .toets(Toets::new("VER-T").versie("3").max(Some(10)));
    send_and_check(
        &gateway,
        "score above versie 3",
        fourth.envelope(),
        &Expect::fault("Client.ScoreOngeldig", &["UWLR-SCORE"]),
    );
    let fifth = Message::demo(&aanmaakdatum(5))
        .afname(
            "LL0005",
            vec![Resultaat::score("VER-5", "VER-T", 40).versie("2")],
        )
        .toets(Toets::new("VER-T").versie("3").max(Some(10)));
    send_and_check(
        &gateway,
        "stored versie 2 from a message defining versie 3",
        fifth.envelope(),
        &Expect::Accepted,
    );
    assert_eq!(afname_row(&gateway.db(), "VER-5").0, versie_2);
}

/// Everything but the receipts, for comparing the store before and after a rejected message.
fn snapshot(connection: &Db) -> Vec<String> {
    let mut all = Vec::new();
    for table in [
        "toetsen",
        "toetsen_history",
        "toetsafnames",
        "toetsafnames_history",
        "sender_state",
        "change_counter",
        "leerlingen",
    ] {
        // PostgreSQL has no rowid: its rows are compared sorted.
        let order = connection.pick("ORDER BY rowid", "");
        let mut table_rows = rows(connection, &format!("SELECT * FROM {table} {order}"));
        if connection.is_postgres() {
            table_rows.sort();
        }
        for row in table_rows {
            all.push(format!("{table}: {row}"));
        }
    }
    all
}

#[test]
fn rejected_batch_leaves_only_its_receipt() {
    let gateway = spawn_default();
    let first = Message::demo(&aanmaakdatum(1))
        .afname(
            "LL0001",
            vec![Resultaat::score("ATOM-1", "ATOM-T", 5).versie("1")],
        )
        .toets(Toets::new("ATOM-T").versie("1").naam("Origineel"));
    send_and_check(&gateway, "first", first.envelope(), &Expect::Accepted);
    let before = snapshot(&gateway.db());

    // A batch that would correct the toets, update ATOM-1, add a new toets and new
    // afnames, and ends with one unknown learner.
    let mut batch = Message::demo(&aanmaakdatum(2))
        .afname(
            "LL0001",
            vec![Resultaat::score("ATOM-1", "ATOM-T", 9).versie("1")],
        )
        .toets(Toets::new("ATOM-T").versie("1").naam("Gecorrigeerd"))
        .toets(Toets::new("ATOM-NIEUW"));
    for number in 2..=12 {
        batch = batch.afname(
            &format!("LL{number:04}"),
            vec![Resultaat::score(
                &format!("ATOM-N{number}"),
                "ATOM-NIEUW",
                3,
            )],
        );
    }
    batch = batch.afname(
        "ONBEKEND-1",
        vec![Resultaat::score("ATOM-X", "ATOM-NIEUW", 3)],
    );
    let reply = send_and_check(
        &gateway,
        "batch with an unknown learner",
        batch.envelope(),
        &Expect::fault("Client.LeerlingOngeldig", &["UWLR-LEERLING"]),
    );

    let connection = gateway.db();
    assert_eq!(
        snapshot(&connection),
        before,
        "a rejected message changes nothing but the receipts"
    );
    let receipt_id = reply.receipt_id.expect("the rejection has a receipt");
    let (outcome, faultcode, created, updated): (String, String, i64, i64) = connection
        .query_row(
            "SELECT outcome, faultcode, created, updated FROM receipts WHERE id = ?1",
            [&receipt_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .expect("receipt");
    assert_eq!(
        (outcome.as_str(), faultcode.as_str()),
        ("rejected", "Client.LeerlingOngeldig")
    );
    assert_eq!(
        receipt_rules(&connection, &receipt_id),
        ["UWLR-LEERLING".to_string()].into()
    );
    let violations: String = connection
        .query_row(
            "SELECT violations FROM receipts WHERE id = ?1",
            [&receipt_id],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        violations.contains("ONBEKEND-1"),
        "the violation names the learner: {violations}"
    );
    // The counts say what the message held; nothing was written.
    assert_eq!(
        (created, updated),
        (0, 0),
        "a rejected message created and updated nothing"
    );
    assert_eq!(count(&connection, "SELECT count(*) FROM receipts"), 2);

    // The same batch without the unknown learner is accepted afterwards (same aanmaakdatum: nothing was remembered).
    batch.toetsafnames.pop();
    send_and_check(
        &gateway,
        "batch without the unknown learner",
        batch.envelope(),
        &Expect::Accepted,
    );
    let connection = gateway.db();
    assert_eq!(afname_row(&connection, "ATOM-1").2, Some(9));
    assert_eq!(toets_row(&connection, "ATOM-T", "1").1, 2);
}

#[test]
fn known_afname_key_is_updated_with_history_and_an_identical_resend_is_unchanged() {
    let gateway = spawn_default();
    let message = |seconds: u32, afnamedatum: &str, score: u64| {
        Message::demo(&aanmaakdatum(seconds))
            .afname(
                "LL0001",
                vec![Resultaat::score("UPD-1", "UPD-T", score).afnamedatum(afnamedatum)],
            )
            .toets(Toets::new("UPD-T"))
    };
    send_and_check(
        &gateway,
        "new afname",
        message(1, "2026-12-01", 5).envelope(),
        &Expect::Accepted,
    );
    send_and_check(
        &gateway,
        "update",
        message(2, "2026-12-05", 6).envelope(),
        &Expect::Accepted,
    );
    let unchanged = send_and_check(
        &gateway,
        "identical resend",
        message(3, "2026-12-05", 6).envelope(),
        &Expect::Accepted,
    );
    let connection = gateway.db();
    assert_eq!(
        rows(&connection, "SELECT score, revision, afnamedatum, mutatiedatum, aanmaakdatum FROM toetsafnames"),
        [format!("6|2|2026-12-01|2026-12-05|{}", aanmaakdatum(3))],
        "the update's afnamedatum is the mutation date; the last message's aanmaakdatum is remembered"
    );
    let history = rows(
        &connection,
        &format!(
            "SELECT revision, {}, {} FROM toetsafnames_history",
            crate::harness::json_value(&connection, "state", "$.score"),
            crate::harness::json_value(&connection, "state", "$.afnamedatum")
        ),
    );
    assert_eq!(
        history,
        ["1|5|2026-12-01"],
        "only the real change left history"
    );
    let counts = rows(
        &connection,
        &format!(
            "SELECT created, updated, unchanged FROM receipts WHERE id = '{}'",
            unchanged.receipt_id.unwrap()
        ),
    );
    assert_eq!(counts, ["0|0|1"]);
}
