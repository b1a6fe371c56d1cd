//! Issue 16: afnames and toetsen belong to the client that sent them, and the ordering state cannot lock a sender out.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::DEMO_KLANTCODE;
use crate::harness::{
    check, count, fault_of, rows, spawn_default, wait_published, Expect, Gateway,
};

const B_KLANTCODE: &str = "EA-B";
const B_KLANTNAAM: &str = "Uitgever B";
const B_SLEUTEL: &str = "sleutel-van-b-2026";

/// A second client (B) activated for the demo school, beside the demo client (C).
fn add_second_client(gateway: &Gateway) {
    gateway.add_client_for_demo_school(B_KLANTCODE, B_KLANTNAAM, B_SLEUTEL, "DPA-B", &[]);
}

/// A reader token for the demo school's feed.
fn reader_token(gateway: &Gateway) -> String {
    let added = gateway
        .cli(&[
            "readers",
            "add",
            "las-eigenaar",
            "--school",
            "99XX01",
            "--scope",
            "las",
            "--mandate",
            "DPA-R",
        ])
        .success();
    added
        .stdout
        .lines()
        .last()
        .expect("the token")
        .trim()
        .to_string()
}

fn read_api(gateway: &Gateway, token: &str, path: &str) -> serde_json::Value {
    let reply = gateway.send(
        gateway
            .http
            .get(format!("{}{path}", gateway.base_url))
            .bearer_auth(token),
    );
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.json()
}

/// Issue 16 finding 5: client B sent the key and toetscode client C uses for the same school
/// and overwrote C's afname (score 9 → 3) and toets (toetsnaam, eindnormwaarde 1000). Now
/// each client has its own keys and toetsen; the feed, the toets resource, the receipts and
/// the xAPI statements keep them apart and name the sender.
#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn issue16_a_client_cannot_change_another_clients_afname_or_toets() {
    let gateway = spawn_default();
    add_second_client(&gateway);
    let from_c = Message::demo(&aanmaakdatum(1))
        .toets(Toets::new("REK").naam("Rekenen van C"))
        .afname("LL0001", vec![Resultaat::score("K-1", "REK", 9)]);
    let reply_c = gateway.post(from_c.envelope());
    check("C sends K-1", &reply_c, &Expect::Accepted);
    let from_b = Message::demo(&aanmaakdatum(2))
        .client(B_KLANTCODE, B_KLANTNAAM, B_SLEUTEL)
        .toets(Toets::new("REK").naam("Rekenen van B").max(Some(1000)))
        .afname("LL0002", vec![Resultaat::score("K-1", "REK", 3)]);
    let reply_b = gateway.post(from_b.envelope());
    check("B sends K-1", &reply_b, &Expect::Accepted);

    let connection = gateway.db();
    assert_eq!(
        rows(
            &connection,
            "SELECT leerlingid, score FROM toetsafnames WHERE afname_key = 'K-1' ORDER BY leerlingid"
        ),
        ["LL0001|9", "LL0002|3"],
        "C's afname K-1 (LL0001, score 9) is still there beside B's"
    );
    assert_eq!(
        rows(
            &connection,
            &format!(
                "SELECT c.klantcode, a.leerlingid, a.score, a.revision, {}
                 FROM toetsafnames a JOIN clients c ON c.id = a.client_id JOIN toetsen t ON t.id = a.toets_id
                 WHERE a.afname_key = 'K-1' ORDER BY c.klantcode",
                crate::harness::json_value(&connection, "t.definition", "$.toetsnaam")
            )
        ),
        [
            "DEMO-EA|LL0001|9|1|Rekenen van C",
            "EA-B|LL0002|3|1|Rekenen van B"
        ],
        "B's message left C's afname and toets as C sent them"
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM toetsen_history UNION ALL SELECT count(*) FROM toetsafnames_history"
        ),
        0,
        "nothing was corrected"
    );

    // The feed and the toets resource name the sender of each afname and toets.
    let token = reader_token(&gateway);
    let feed = read_api(&gateway, &token, "/api/v1/schools/99XX01/toetsafnames");
    let mut items: Vec<(String, String, i64)> = feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            (
                item["klantcode"].as_str().expect("klantcode").to_string(),
                item["afname_key"].as_str().expect("afname_key").to_string(),
                item["score"].as_i64().expect("score"),
            )
        })
        .collect();
    items.sort();
    assert_eq!(
        items,
        [
            (DEMO_KLANTCODE.to_string(), "K-1".to_string(), 9),
            ("EA-B".to_string(), "K-1".to_string(), 3)
        ]
    );
    let toets = read_api(&gateway, &token, "/api/v1/schools/99XX01/toetsen/REK");
    let versions: Vec<(String, String)> = toets["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|version| {
            (
                version["klantcode"]
                    .as_str()
                    .expect("klantcode")
                    .to_string(),
                version["definition"]["toetsnaam"]
                    .as_str()
                    .expect("toetsnaam")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            (DEMO_KLANTCODE.to_string(), "Rekenen van C".to_string()),
            ("EA-B".to_string(), "Rekenen van B".to_string())
        ]
    );

    // Each receipt names its sender.
    for (reply, klantcode) in [(&reply_c, DEMO_KLANTCODE), (&reply_b, B_KLANTCODE)] {
        let receipt_id = reply.receipt_id.as_deref().expect("a receipt id");
        let shown = gateway.cli(&["receipts", "show", receipt_id]).success();
        let receipt: serde_json::Value = serde_json::from_str(&shown.stdout).expect("JSON");
        assert_eq!(receipt["klantcode"], klantcode);
    }

    // Two afnames, two statements with their own ids, each with its sender as platform.
    let connection = gateway.db();
    wait_published(&connection);
    assert_eq!(
        rows(
            &connection,
            &format!(
                "SELECT {}, {} FROM xapi_statements x ORDER BY 1",
                crate::harness::json_value(&connection, "x.statement", "$.context.platform"),
                crate::harness::json_value(&connection, "x.statement", "$.result.score.raw")
            )
        ),
        ["Demo Uitgever|9", "Uitgever B|3"]
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(DISTINCT id) FROM xapi_statements"
        ),
        2
    );
}

/// The same content under the same key from two clients still gives two statements.
#[test]
fn issue16_identical_afnames_of_two_clients_get_two_statement_ids() {
    let gateway = spawn_default();
    add_second_client(&gateway);
    let message = |klantcode: &str, klantnaam: &str, sleutel: &str, seconds: u32| {
        Message::demo(&aanmaakdatum(seconds))
            .client(klantcode, klantnaam, sleutel)
            .toets(Toets::new("REK"))
            .afname("LL0001", vec![Resultaat::score("K-1", "REK", 7)])
            .envelope()
    };
    check(
        "C",
        &gateway.post(message(
            DEMO_KLANTCODE,
            crate::harness::DEMO_KLANTNAAM,
            crate::harness::DEMO_SLEUTEL,
            1,
        )),
        &Expect::Accepted,
    );
    check(
        "B",
        &gateway.post(message(B_KLANTCODE, B_KLANTNAAM, B_SLEUTEL, 2)),
        &Expect::Accepted,
    );
    let connection = gateway.db();
    wait_published(&connection);
    assert_eq!(
        count(
            &connection,
            "SELECT count(DISTINCT id) FROM xapi_statements WHERE voided_by IS NULL"
        ),
        2,
        "the publisher stored one statement per afname (a shared id would have lost one)"
    );
}

/// Issue 16 finding 6: an aanmaakdatum of 9999-12-31T23:59:59.999999 was accepted and every
/// later message of the sender for the school got UWLR-VOLGORDE. Now an aanmaakdatum later
/// than the gateway's time plus the allowed skew is refused under its own rule, and stores
/// nothing: no afname, no ordering state; the sender's next message goes through.
#[test]
fn issue16_a_far_future_aanmaakdatum_is_refused_and_stores_nothing() {
    let gateway = spawn_default();
    let future = Message::demo("9999-12-31T23:59:59.999999")
        .toets(Toets::new("REK"))
        .afname("LL0001", vec![Resultaat::score("TOEKOMST-1", "REK", 5)]);
    let reply = gateway.post(future.envelope());
    check(
        "far future",
        &reply,
        &Expect::fault("Client.OngeldigBericht", &["UWLR-TOEKOMST"]),
    );
    let fault = fault_of(&reply);
    assert!(
        fault
            .faultstring
            .starts_with("Inhoud van het bericht is ongeldig"),
        "{}",
        fault.faultstring
    );
    assert!(
        reply.body.contains("aanmaakdatum lies in the future"),
        "{}",
        reply.body
    );
    let connection = gateway.db();
    assert_eq!(
        count(
            &connection,
            "SELECT (SELECT count(*) FROM toetsafnames) + (SELECT count(*) FROM toetsen)
                  + (SELECT count(*) FROM sender_state)"
        ),
        0,
        "nothing of the message is stored"
    );
    assert_eq!(
        rows(&connection, "SELECT outcome, faultcode FROM receipts"),
        ["rejected|Client.OngeldigBericht"]
    );
    let next = Message::demo(&aanmaakdatum(1))
        .toets(Toets::new("REK"))
        .afname("LL0001", vec![Resultaat::score("TOEKOMST-1", "REK", 5)]);
    check(
        "next message",
        &gateway.post(next.envelope()),
        &Expect::Accepted,
    );
}

/// Issue 16 finding 6: a sender whose ordering state lies in the future (here accepted under
/// a skew of 1000 days, as any message before UWLR-TOEKOMST could be) is held up by
/// UWLR-VOLGORDE until `clients reset-ordering` forgets that state; the reset is audited.
#[test]
fn issue16_reset_ordering_lets_a_locked_out_sender_through_and_is_audited() {
    let gateway = crate::harness::spawn_gateway(
        crate::harness::Options::default().env("UWLR_AANMAAKDATUM_MAX_SKEW_SECS", "86400000"),
    );
    let message = |aanmaakdatum: &str, score: u64| {
        Message::demo(aanmaakdatum)
            .toets(Toets::new("REK"))
            .afname("LL0001", vec![Resultaat::score("RESET-1", "REK", score)])
            .envelope()
    };
    check(
        "within the skew",
        &gateway.post(message("2028-06-01T08:00:00", 1)),
        &Expect::Accepted,
    );
    let volgorde = Expect::fault("Client.OngeldigBericht", &["UWLR-VOLGORDE"]);
    check(
        "held up",
        &gateway.post(message(&aanmaakdatum(1), 2)),
        &volgorde,
    );
    // A reset needs a known client and school; the other client's state is not touched.
    let unknown = gateway.cli(&[
        "clients",
        "reset-ordering",
        "--client",
        "NIEMAND",
        "--school",
        "99XX01",
    ]);
    assert!(!unknown.status.success(), "{unknown:?}");
    let reset = gateway
        .cli(&[
            "clients",
            "reset-ordering",
            "--client",
            DEMO_KLANTCODE,
            "--school",
            "99XX01",
        ])
        .success();
    assert!(
        reset.stdout.contains("2028-06-01T08:00:00"),
        "{}",
        reset.stdout
    );
    check(
        "after the reset",
        &gateway.post(message(&aanmaakdatum(2), 3)),
        &Expect::Accepted,
    );
    // The ordering rule holds again from the new message on.
    check(
        "older again",
        &gateway.post(message(&aanmaakdatum(1), 4)),
        &volgorde,
    );
    let connection = gateway.db();
    assert_eq!(
        rows(
            &connection,
            "SELECT actor, action, detail FROM audit WHERE action = 'clients.reset-ordering'"
        ),
        ["cli|clients.reset-ordering|99XX01 DEMO-EA 2028-06-01T08:00:00"]
    );
    assert_eq!(
        count(
            &connection,
            "SELECT score FROM toetsafnames WHERE afname_key = 'RESET-1'"
        ),
        3
    );
}
