//! Issue 18: retention when a school's mandates end, the access request export, the register of disclosures.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::personal::{mentions, school_rows};
use crate::harness::DEMO_KLANTCODE;
use crate::harness::{
    count, send_and_check, spawn_gateway, wait_published, Expect, Gateway, Options,
};
use serde_json::Value;

/// Tables that keep rows of a purged school on purpose, and why: none of them holds a
/// learner (`mentions` checks that for every table).
const KEPT_AFTER_PURGE: &[(&str, &str)] = &[
    (
        "main.activations",
        "the mandate record itself: which client, which agreement, until when",
    ),
    (
        "main.reader_schools",
        "the reader grant record (mandate, validity)",
    ),
    (
        "main.sender_state",
        "the ordering rule's last aanmaakdatum, so an old message cannot come back",
    ),
    (
        "main.receipts",
        "message facts without violations; they expire after receipt_retention_days",
    ),
    (
        "xapi.read_audit",
        "who read when, without learners or request; expires after audit_retention_days",
    ),
    (
        "main.toetsafname_removals",
        "the feed's removals (key and sender); they expire after removal_retention_days",
    ),
];

fn add_reader(gateway: &Gateway, name: &str, schools: &[&str]) -> String {
    let mut args = vec!["readers", "add", name];
    for school in schools {
        args.extend(["--school", school]);
    }
    args.extend(["--scope", "las,xapi", "--mandate", "DPA-LAS"]);
    let output = gateway.cli(&args).success();
    output
        .stdout
        .lines()
        .last()
        .expect("the token")
        .trim()
        .to_string()
}

fn feed(gateway: &Gateway, token: &str, school: &str, since: i64) -> Value {
    let reply = gateway.send(
        gateway
            .http
            .get(format!(
                "{}/api/v1/schools/{school}/toetsafnames?since={since}",
                gateway.base_url
            ))
            .bearer_auth(token),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// Runs the CLI on the gateway's data dir and database with extra settings.
fn cli_with_env(gateway: &Gateway, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut command = gateway.command();
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run the CLI");
    assert!(
        output.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The demo school's learners (roster and the quarantined one), as stored: every value that
/// identifies one of them.
fn learner_values(gateway: &Gateway) -> Vec<String> {
    let connection = gateway.db();
    let mut values: Vec<String> = crate::harness::rows(
        &connection,
        "SELECT l.leerlingid FROM leerlingen l JOIN schools s ON s.id = l.school_id WHERE s.code = '99XX01'
         UNION SELECT l.eckid FROM leerlingen l JOIN schools s ON s.id = l.school_id WHERE s.code = '99XX01' AND l.eckid IS NOT NULL
         UNION SELECT l.naam FROM leerlingen l JOIN schools s ON s.id = l.school_id WHERE s.code = '99XX01' AND l.naam IS NOT NULL",
    );
    values.push("NIEUW-1".into());
    values
}

/// A school's mandate ends and retention passes: no row about its learners remains in any
/// table of either file (found through the catalogue, so a new table cannot be forgotten),
/// the rows the school keeps are the listed non-personal ones, the other school is untouched,
/// a LAS following the feed sees every removal, and the audit has the purge with counts only.
/// The tombstones go in turn after their own retention.
#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn a_school_past_its_mandate_and_retention_is_purged_and_only_that_school() {
    let gateway = spawn_gateway(Options::default().env("UWLR_UNKNOWN_LEERLING", "quarantine"));
    gateway
        .cli(&[
            "schools",
            "activate",
            "99YY",
            "--klantcode",
            DEMO_KLANTCODE,
            "--mandate",
            "DPA-YY",
            "--valid-from",
            "2020-01-01",
        ])
        .success();
    let token = add_reader(&gateway, "las-a", &["99XX01", "99YY"]);
    send_and_check(
        &gateway,
        "results, one quarantined",
        Message::demo(&aanmaakdatum(1))
            .afname("LL0001", vec![Resultaat::score("G-1", "G-T", 5)])
            .afname("LL0002", vec![Resultaat::score("G-2", "G-T", 6)])
            .afname("NIEUW-1", vec![Resultaat::score("G-3", "G-T", 7)])
            .toets(Toets::new("G-T"))
            .envelope(),
        &Expect::Accepted,
    );
    send_and_check(
        &gateway,
        "a correction (history)",
        Message::demo(&aanmaakdatum(2))
            .afname("LL0001", vec![Resultaat::score("G-1", "G-T", 8)])
            .toets(Toets::new("G-T"))
            .envelope(),
        &Expect::Accepted,
    );
    send_and_check(
        &gateway,
        "the other school",
        Message::demo(&aanmaakdatum(3))
            .school("99YY")
            .afname("YY0001", vec![Resultaat::score("Y-1", "G-T", 4)])
            .toets(Toets::new("G-T"))
            .envelope(),
        &Expect::Accepted,
    );
    let connection = gateway.db();
    wait_published(&connection);
    let before = feed(&gateway, &token, "99XX01", 0);
    let cursor = before["next_cursor"].as_i64().unwrap();
    assert_eq!(before["items"].as_array().unwrap().len(), 2);
    let other_before = crate::harness::rows(
        &connection,
        "SELECT a.afname_key, a.leerlingid, a.score FROM toetsafnames a JOIN schools s ON s.id = a.school_id WHERE s.code = '99YY'",
    );
    let other_statements = count(
        &connection,
        "SELECT count(*) FROM xapi_statements WHERE school_id = (SELECT id FROM schools WHERE code = '99YY')",
    );
    assert!(other_statements > 0);
    let learners = learner_values(&gateway);
    let needles: Vec<&str> = learners.iter().map(String::as_str).collect();
    assert!(
        !mentions(&connection, &needles).is_empty(),
        "the data is there before"
    );

    // Still within its mandate: nothing to purge.
    let dry = gateway.cli(&["purge", "--dry-run"]).success();
    assert!(!dry.stdout.contains("99XX01"), "{}", dry.stdout);
    // The mandate ended long ago.
    gateway
        .cli(&[
            "schools",
            "activate",
            "99XX01",
            "--klantcode",
            DEMO_KLANTCODE,
            "--mandate",
            "DPA-OLD",
            "--valid-from",
            "2019-01-01",
            "--valid-until",
            "2019-12-31",
        ])
        .success();
    let dry = gateway.cli(&["purge", "--dry-run"]).success();
    assert!(
        dry.stdout
            .contains("would purge school 99XX01 (last mandate ended 2019-12-31)")
            && !dry.stdout.contains("99YY"),
        "{}",
        dry.stdout
    );
    assert!(
        !mentions(&connection, &needles).is_empty(),
        "a dry run removes nothing"
    );

    let output = gateway.cli(&["purge", "--now", "--json"]).success();
    let report: Value = serde_json::from_str(output.stdout.trim()).expect("a JSON report");
    assert_eq!(report["schools"][0]["code"], "99XX01");
    assert_eq!(report["schools"].as_array().unwrap().len(), 1);
    assert_eq!(report["counts"]["toetsafnames"], 3);
    assert_eq!(report["counts"]["toetsafnames_history"], 1);
    assert_eq!(
        report["counts"]["removals_written"], 2,
        "the quarantined one was never in the feed"
    );
    assert_eq!(report["counts"]["leerlingen"], 20);

    // Not one row in any table names a learner of the school.
    let left = mentions(&connection, &needles);
    assert!(left.is_empty(), "rows about learners remain: {left:#?}");
    // Rows of the school remain only in tables kept on purpose.
    let school_id = count(&connection, "SELECT id FROM schools WHERE code = '99XX01'");
    for (table, rows) in school_rows(&connection, school_id, "99XX01") {
        if rows > 0 {
            assert!(
                KEPT_AFTER_PURGE.iter().any(|(kept, _)| *kept == table),
                "{table} still has {rows} rows of the purged school"
            );
        }
    }
    // The other school is untouched.
    assert_eq!(
        crate::harness::rows(
            &connection,
            "SELECT a.afname_key, a.leerlingid, a.score FROM toetsafnames a JOIN schools s ON s.id = a.school_id WHERE s.code = '99YY'",
        ),
        other_before
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM xapi_statements WHERE school_id = (SELECT id FROM schools WHERE code = '99YY')",
        ),
        other_statements
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM leerlingen WHERE leerlingid = 'YY0001'"
        ),
        1
    );
    // The LAS following the feed sees both visible afnames removed, by key, without the learner.
    let after = feed(&gateway, &token, "99XX01", cursor);
    let items = after["items"].as_array().unwrap();
    let mut removed: Vec<&str> = items
        .iter()
        .map(|item| {
            assert_eq!(item["status"], "removed", "{item}");
            assert!(item.get("leerlingid").is_none(), "{item}");
            item["afname_key"].as_str().unwrap()
        })
        .collect();
    removed.sort();
    assert_eq!(removed, ["G-1", "G-2"]);
    // The audit has the purge, with counts only.
    let audit = crate::harness::rows(
        &connection,
        "SELECT detail FROM audit WHERE action = 'retention.purge-school'",
    );
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(
        audit[0].starts_with("99XX01 (mandate ended 2019-12-31"),
        "{}",
        audit[0]
    );
    assert!(audit[0].contains("\"toetsafnames\":3"), "{}", audit[0]);
    assert!(
        audit[0].contains("received by: reader las-a"),
        "{}",
        audit[0]
    );
    // A second purge finds nothing of the school.
    let again = gateway.cli(&["purge", "--dry-run"]).success();
    assert!(!again.stdout.contains("99XX01"), "{}", again.stdout);

    // The removals expire after their own retention (0 days here: at once).
    cli_with_env(
        &gateway,
        &[("UWLR_REMOVAL_RETENTION_DAYS", "0")],
        &["purge", "--now"],
    );
    assert_eq!(
        count(&connection, "SELECT count(*) FROM toetsafname_removals WHERE school_id = (SELECT id FROM schools WHERE code = '99XX01')"),
        0
    );
    assert_eq!(
        feed(&gateway, &token, "99XX01", cursor)["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// Issue 18: an access request's export holds what was sent about the learner: the result
/// with its correction in history, the quarantined one flagged, the toets they refer to, the
/// receipts of those messages, statements, and the reads that returned them; nothing of
/// another learner.
#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn a_learner_export_matches_what_was_sent() {
    let gateway = spawn_gateway(Options::default().env("UWLR_UNKNOWN_LEERLING", "quarantine"));
    let token = add_reader(&gateway, "las-export", &["99XX01"]);
    let first = send_and_check(
        &gateway,
        "a result",
        Message::demo(&aanmaakdatum(1))
            .afname("LL0003", vec![Resultaat::score("E-1", "E-T", 5)])
            .afname("LL0004", vec![Resultaat::score("E-2", "E-T", 6)])
            .toets(Toets::new("E-T"))
            .envelope(),
        &Expect::Accepted,
    );
    let second = send_and_check(
        &gateway,
        "its correction",
        Message::demo(&aanmaakdatum(2))
            .afname("LL0003", vec![Resultaat::score("E-1", "E-T", 9)])
            .toets(Toets::new("E-T"))
            .envelope(),
        &Expect::Accepted,
    );
    wait_published(&gateway.db());
    feed(&gateway, &token, "99XX01", 0);
    let out = gateway.scratch().join("export.json");
    let output = gateway
        .cli(&[
            "leerlingen",
            "export",
            "--school",
            "99XX01",
            "LL0003",
            "--out",
            out.to_str().unwrap(),
        ])
        .success();
    assert!(
        output.stdout.contains("1 toetsafnames"),
        "{}",
        output.stdout
    );
    let export: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(export["format"], "uwlr-gateway/leerling-export/v1");
    assert_eq!(export["leerling"]["leerlingid"], "LL0003");
    assert_eq!(export["leerling"]["naam"], "Demoleerling 3");
    let afnames = export["toetsafnames"].as_array().unwrap();
    assert_eq!(afnames.len(), 1);
    assert_eq!(afnames[0]["afname_key"], "E-1");
    assert_eq!(afnames[0]["score"], 9);
    assert_eq!(afnames[0]["revision"], 2);
    assert_eq!(afnames[0]["quarantined"], false);
    assert_eq!(afnames[0]["history"][0]["state"]["score"], 5);
    assert_eq!(afnames[0]["history"][0]["revision"], 1);
    assert_eq!(export["toetsen"][0]["toetscode"], "E-T");
    let receipts: Vec<&str> = export["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|receipt| receipt["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        receipts,
        [
            first.receipt_id.as_deref().unwrap(),
            second.receipt_id.as_deref().unwrap()
        ]
    );
    let statements = export["statements"].as_array().unwrap();
    assert_eq!(
        statements.len(),
        2,
        "the first statement (voided) and its successor"
    );
    assert_eq!(
        statements
            .iter()
            .filter(|statement| statement["voided_by"].is_null())
            .count(),
        1
    );
    let reads = export["reads"].as_array().unwrap();
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0]["reader"], "las-export");
    assert_eq!(export["disclosures"]["readers"][0]["reader"], "las-export");
    let text = serde_json::to_string(&export).unwrap();
    assert!(
        !text.contains("LL0004") && !text.contains("E-2"),
        "another learner's data leaked"
    );
    assert!(
        !text.contains(crate::harness::DEMO_SLEUTEL),
        "no key in an export"
    );

    // A quarantined learner (not in the roster) is exported as well, flagged.
    send_and_check(
        &gateway,
        "an unknown learner",
        Message::demo(&aanmaakdatum(3))
            .afname("NIEUW-9", vec![Resultaat::score("E-9", "E-T", 3)])
            .toets(Toets::new("E-T"))
            .envelope(),
        &Expect::Accepted,
    );
    let out = gateway.scratch().join("export-q.json");
    gateway
        .cli(&[
            "leerlingen",
            "export",
            "--school",
            "99XX01",
            "NIEUW-9",
            "--out",
            out.to_str().unwrap(),
        ])
        .success();
    let export: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(export["leerling"], Value::Null);
    assert_eq!(export["toetsafnames"][0]["quarantined"], true);
    assert_eq!(export["toetsafnames"][0]["score"], 3);
    assert_eq!(export["statements"].as_array().unwrap().len(), 0);
    // An unknown learner is an error naming the school, not an empty file.
    let missing = gateway.cli(&[
        "leerlingen",
        "export",
        "--school",
        "99XX01",
        "NOBODY",
        "--out",
        gateway.scratch().join("none.json").to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(
        missing.stderr.contains("holds nothing about that leerling"),
        "{}",
        missing.stderr
    );

    let register = gateway
        .cli(&["disclosures", "--school", "99XX01"])
        .success();
    assert!(
        register.stdout.contains("las-export"),
        "{}",
        register.stdout
    );
}

/// The admin API erases like the CLI: only with the admin token, by LAS key or ECK iD, with
/// a report; a learner the school does not hold is a 404, and the feed shows the removal.
#[test]
fn the_admin_api_erases_a_learner_with_the_admin_token() {
    const ADMIN_TOKEN: &str = "admin-token-voor-de-tests-0123456789";
    let gateway = spawn_gateway(Options::default().env("UWLR_ADMIN_TOKEN", ADMIN_TOKEN));
    let token = add_reader(&gateway, "las-erase", &["99XX01"]);
    send_and_check(
        &gateway,
        "two learners",
        Message::demo(&aanmaakdatum(1))
            .afname("LL0005", vec![Resultaat::score("A-1", "A-T", 5)])
            .afname("LL0006", vec![Resultaat::score("A-2", "A-T", 6)])
            .toets(Toets::new("A-T"))
            .envelope(),
        &Expect::Accepted,
    );
    let cursor = feed(&gateway, &token, "99XX01", 0)["next_cursor"]
        .as_i64()
        .unwrap();
    let url = |path: &str| {
        format!(
            "{}/api/v1/admin/schools/99XX01/leerlingen{path}",
            gateway.base_url
        )
    };
    let refused = gateway.send(
        gateway
            .http
            .delete(url("/LL0005"))
            .bearer_auth("wrong-token"),
    );
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(
        count(
            &gateway.db(),
            "SELECT count(*) FROM toetsafnames WHERE leerlingid = 'LL0005'"
        ),
        1,
        "nothing erased without the token"
    );
    // The publisher has written the statements, so the erasure has some to void.
    wait_published(&gateway.db());
    let eckid = "https://ketenid.nl/201703/demo-LL0005";
    let erased = gateway.send(
        gateway
            .http
            .delete(url(""))
            .query(&[("eckid", eckid)])
            .bearer_auth(ADMIN_TOKEN),
    );
    assert_eq!(erased.status, 200, "{}", erased.body);
    let report = erased.json();
    assert_eq!(report["counts"]["toetsafnames"], 1);
    assert_eq!(report["counts"]["leerlingen"], 1);
    assert!(report["learner_hash"]
        .as_str()
        .unwrap()
        .starts_with("hmac:"));
    let connection = gateway.db();
    let left = mentions(&connection, &["LL0005", eckid, "Demoleerling 5"]);
    assert!(left.is_empty(), "{left:#?}");
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM toetsafnames WHERE leerlingid = 'LL0006'"
        ),
        1
    );
    let after = feed(&gateway, &token, "99XX01", cursor);
    assert_eq!(after["items"][0]["status"], "removed");
    assert_eq!(after["items"][0]["afname_key"], "A-1");
    let again = gateway.send(gateway.http.delete(url("/LL0005")).bearer_auth(ADMIN_TOKEN));
    assert_eq!(again.status, 404, "{}", again.body);
    let audit = crate::harness::rows(
        &connection,
        "SELECT actor || ' ' || detail FROM audit WHERE action = 'leerlingen.erase'",
    );
    assert_eq!(audit.len(), 1);
    assert!(
        audit[0].starts_with("admin-api 99XX01 hmac:"),
        "{}",
        audit[0]
    );
}
