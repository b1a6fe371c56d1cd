//! Issue 18: erasure of one learner with a subscribed real LRS: voiding statements arrive, and no row mentions the learner.

use crate::bridge::real_lrs::RealLrs;
use crate::bridge::WAIT;
use crate::harness::personal;
use crate::harness::{accepted_samples, spawn_gateway, Gateway, Options};
use std::collections::BTreeSet;

const LEERLING: &str = "LL0001";
const ECKID: &str = "https://ketenid.nl/201703/demo-LL0001";

fn live_statements_about_the_learner(gateway: &Gateway) -> BTreeSet<String> {
    gateway.wait_published();
    let db = gateway.db();
    let mut statement = db
        .prepare(
            "SELECT id FROM xapi_statements WHERE leerlingid = ?1 AND voided_by IS NULL
               AND verb_id != 'http://adlnet.gov/expapi/verbs/voided'",
        )
        .unwrap();
    let ids = statement
        .query_map([LEERLING], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    ids
}

/// The learner's statements reached the LRS; after `leerlingen erase` each gets a voiding
/// statement there (delivered like any other, once), the command names the LRS, no row of
/// either file names the learner (tombstones aside, which expire by their own retention),
/// the read audit and audit name a keyed hash instead, and other learners keep their data.
#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn erasing_a_learner_voids_their_statements_in_the_lrs_and_leaves_no_row_about_them() {
    let lrs = RealLrs::start();
    let gateway = spawn_gateway(Options::fast_xapi());
    gateway.cli_stdout(&[
        "lrs",
        "add",
        "real",
        "--url",
        &lrs.url(),
        "--username",
        "test",
        "--password",
        "test-lrs-password",
    ]);
    gateway.post_accepted(&accepted_samples());
    gateway.wait_delivered("real", WAIT);
    let live = live_statements_about_the_learner(&gateway);
    assert!(
        live.len() >= 2,
        "samples 01/03/07 have results of {LEERLING}: {live:?}"
    );
    for id in &live {
        assert_eq!(
            lrs.get(&format!("statementId={id}")).unwrap().0,
            200,
            "{id}"
        );
    }
    let db = gateway.db_writable();
    let others_before: i64 = db
        .query_row(
            "SELECT count(*) FROM toetsafnames WHERE leerlingid != ?1",
            [LEERLING],
            |row| row.get(0),
        )
        .unwrap();
    // An earlier audit row that names the learner: a roster import of their row.
    let roster = gateway.scratch().join("roster.csv");
    std::fs::write(
        &roster,
        format!("school,leerlingid,eckid,naam\n99XX01,{LEERLING},{ECKID},Demoleerling 1\n"),
    )
    .unwrap();
    gateway.cli_stdout(&["leerlingen", "import", roster.to_str().unwrap()]);
    db.execute(
        "INSERT INTO audit (at, actor, action, detail) VALUES ('2026-12-01T00:00:00.000Z', 'test', 'note', ?1)",
        [format!("asked about {LEERLING} and {ECKID}")],
    )
    .unwrap();

    let output = gateway.cli_stdout(&[
        "leerlingen",
        "erase",
        "--school",
        "99XX01",
        "--eckid",
        ECKID,
    ]);
    assert!(
        output.contains(&format!("erased leerling {LEERLING} of 99XX01"))
            && output
                .contains("LRSs that held data (ask each to delete it; voiding does not): real"),
        "{output}"
    );
    gateway.wait_delivered("real", WAIT);
    assert_eq!(gateway.outbox("real").1, 0, "no dead letters");
    for id in &live {
        assert_eq!(
            lrs.get(&format!("statementId={id}")).unwrap().0,
            404,
            "{id} is voided in the LRS"
        );
        let (status, body) = lrs.get(&format!("voidedStatementId={id}")).unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let voiding: Vec<serde_json::Value> = lrs
        .all_statements()
        .into_iter()
        .filter(|statement| {
            statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided"
                && live.contains(statement["object"]["id"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        voiding.len(),
        live.len(),
        "one voiding statement per live statement"
    );

    // No row names the learner, apart from tombstones (the sender's keys may hold the id).
    let left: Vec<String> = personal::mentions(&db, &[LEERLING, ECKID, "demo-LL0001"])
        .into_iter()
        .filter(|hit| !hit.starts_with("main.toetsafname_removals.afname_key"))
        .collect();
    assert!(left.is_empty(), "rows about the learner remain: {left:#?}");
    let audit: String = db
        .query_row(
            "SELECT detail FROM audit WHERE action = 'leerlingen.erase'",
            rusqlite::params![],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        audit.starts_with("99XX01 hmac:") && audit.contains("real"),
        "{audit}"
    );
    let rewritten: String = db
        .query_row(
            "SELECT detail FROM audit WHERE action = 'note'",
            rusqlite::params![],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        rewritten.starts_with("asked about hmac:") && rewritten.contains(" and hmac:"),
        "{rewritten}"
    );
    let hash = audit.split_whitespace().nth(1).unwrap();
    assert!(
        rewritten.contains(hash),
        "the same learner, the same hash: {rewritten}"
    );
    let others_after: i64 = db
        .query_row(
            "SELECT count(*) FROM toetsafnames WHERE leerlingid != ?1",
            [LEERLING],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        others_after, others_before,
        "other learners keep their results"
    );
    // The tombstones go after their retention (0 days here); then nothing is left at all.
    let mut purge = gateway.command();
    purge
        .env("UWLR_REMOVAL_RETENTION_DAYS", "0")
        .args(["purge", "--now"]);
    let expired = crate::harness::run(purge);
    assert!(expired.status.success(), "{expired:?}");
    let left = personal::mentions(&db, &[LEERLING, ECKID, "demo-LL0001"]);
    assert!(left.is_empty(), "rows about the learner remain: {left:#?}");
}
