//! The quarantine policy for unknown learners, and releasing them by roster import (CLI and admin API).

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{count, rows, send_and_check, spawn_default, spawn_gateway, Expect, Options};

const ADMIN_TOKEN: &str = "admin-token-voor-de-tests-0123456789";

fn quarantine_rows(connection: &uwlr_gateway::store::db::Db) -> Vec<String> {
    rows(
        connection,
        "SELECT afname_key, leerlingid, quarantined FROM toetsafnames ORDER BY afname_key",
    )
}

#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn unknown_learners_are_quarantined_until_imported() {
    let gateway = spawn_gateway(
        Options::default()
            .env("UWLR_UNKNOWN_LEERLING", "quarantine")
            .env("UWLR_ADMIN_TOKEN", ADMIN_TOKEN),
    );
    let message = Message::demo(&aanmaakdatum(1))
        .afname("LL0001", vec![Resultaat::score("Q-BEKEND", "Q-T", 5)])
        .afname("NIEUW-1", vec![Resultaat::score("Q-NIEUW-1", "Q-T", 6)])
        .afname("NIEUW-2", vec![Resultaat::score("Q-NIEUW-2", "Q-T", 7)])
        .toets(Toets::new("Q-T"));
    let reply = send_and_check(
        &gateway,
        "unknown learners under quarantine",
        message.envelope(),
        &Expect::Accepted,
    );
    let connection = gateway.db();
    assert_eq!(
        quarantine_rows(&connection),
        [
            "Q-BEKEND|LL0001|0",
            "Q-NIEUW-1|NIEUW-1|1",
            "Q-NIEUW-2|NIEUW-2|1"
        ]
    );
    let quarantined: i64 = connection
        .query_row(
            "SELECT quarantined FROM receipts WHERE id = ?1",
            [reply.receipt_id.as_deref().unwrap()],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(quarantined, 2);

    // The CLI import (while the server runs) releases NIEUW-1.
    let roster = gateway.scratch().join("roster.csv");
    std::fs::write(
        &roster,
        "school,leerlingid,eckid,naam\n99XX01,NIEUW-1,,Nieuwe Leerling\n",
    )
    .unwrap();
    let output = gateway
        .cli(&["leerlingen", "import", roster.to_str().unwrap()])
        .success();
    assert!(
        output
            .stdout
            .contains("imported 1 leerlingen; released 1 afnames"),
        "{}",
        output.stdout
    );
    assert_eq!(
        quarantine_rows(&connection),
        [
            "Q-BEKEND|LL0001|0",
            "Q-NIEUW-1|NIEUW-1|0",
            "Q-NIEUW-2|NIEUW-2|1"
        ]
    );

    // The admin API needs its bearer token.
    let admin = format!("{}/api/v1/admin/leerlingen", gateway.base_url);
    let csv = "99XX01,NIEUW-2,,\n";
    let refused = gateway.send(
        gateway
            .http
            .post(&admin)
            .header("content-type", "text/csv")
            .body(csv),
    );
    assert_eq!(refused.status, 401, "{}", refused.body);
    let refused = gateway.send(
        gateway
            .http
            .post(&admin)
            .bearer_auth("admin-token-dat-niet-klopt-00000")
            .body(csv),
    );
    assert_eq!(refused.status, 401, "{}", refused.body);
    let refused = gateway.send(
        gateway
            .http
            .post(&admin)
            .basic_auth("admin", Some(ADMIN_TOKEN))
            .body(csv),
    );
    assert_eq!(
        refused.status, 401,
        "only a Bearer token counts: {}",
        refused.body
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM leerlingen WHERE leerlingid = 'NIEUW-2'"
        ),
        0
    );

    let imported = gateway.send(
        gateway
            .http
            .post(&admin)
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "text/csv")
            .body(csv),
    );
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert_eq!(
        imported.json(),
        serde_json::json!({"imported": 1, "released_from_quarantine": 1})
    );
    assert_eq!(
        quarantine_rows(&connection),
        [
            "Q-BEKEND|LL0001|0",
            "Q-NIEUW-1|NIEUW-1|0",
            "Q-NIEUW-2|NIEUW-2|0"
        ]
    );

    // A known learner's later results are not quarantined.
    let later = Message::demo(&aanmaakdatum(2))
        .afname("NIEUW-2", vec![Resultaat::score("Q-NIEUW-2B", "Q-T", 8)])
        .toets(Toets::new("Q-T"));
    send_and_check(&gateway, "known now", later.envelope(), &Expect::Accepted);
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM toetsafnames WHERE quarantined = 1"
        ),
        0
    );

    // A roster that is not one is refused and changes nothing.
    let bad = gateway.send(
        gateway
            .http
            .post(&admin)
            .bearer_auth(ADMIN_TOKEN)
            .body(",,,\n99XX01,,,\n"),
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
}

#[test]
fn unknown_learners_are_refused_by_default_and_admin_api_is_off() {
    let gateway = spawn_default();
    let message = Message::demo(&aanmaakdatum(1))
        .afname("NIEUW-1", vec![Resultaat::score("R-NIEUW-1", "R-T", 6)])
        .toets(Toets::new("R-T"));
    send_and_check(
        &gateway,
        "reject policy",
        message.envelope(),
        &Expect::fault("Client.LeerlingOngeldig", &["UWLR-LEERLING"]),
    );
    assert_eq!(count(&gateway.db(), "SELECT count(*) FROM toetsafnames"), 0);
    let admin = format!("{}/api/v1/admin/leerlingen", gateway.base_url);
    let reply = gateway.send(
        gateway
            .http
            .post(&admin)
            .bearer_auth(ADMIN_TOKEN)
            .body("99XX01,NIEUW-1,,\n"),
    );
    assert_eq!(
        reply.status, 404,
        "without admin_token the admin API is off: {}",
        reply.body
    );
}
