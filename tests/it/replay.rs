//! Replays and the ordering rule: the same bytes get the same answer; an aanmaakdatum that is not later is refused.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{check, count, read_sample, rows, send_and_check, spawn_default, Expect};

#[test]
fn same_bytes_twice_get_the_same_answer_and_change_nothing() {
    let gateway = spawn_default();
    let bytes = read_sample("03-toets-met-onderdelen.xml");
    let first = send_and_check(&gateway, "first delivery", bytes.clone(), &Expect::Accepted);
    let connection = gateway.db();
    let tables = "SELECT (SELECT count(*) FROM receipts), (SELECT count(*) FROM toetsafnames),
                         (SELECT count(*) FROM toetsafnames_history), (SELECT max(change_seq) FROM toetsafnames)";
    let before = rows(&connection, tables);
    let second = send_and_check(&gateway, "second delivery", bytes, &Expect::Accepted);
    assert_eq!(second.body, first.body);
    assert_eq!(
        second.receipt_id, first.receipt_id,
        "a replay answers with the original receipt"
    );
    assert_eq!(
        rows(&connection, tables),
        before,
        "a replay stores nothing, not even a receipt"
    );
    assert_eq!(count(&connection, "SELECT count(*) FROM receipts"), 1);
}

#[test]
fn a_replayed_sample_after_later_messages_is_still_a_replay() {
    let gateway = spawn_default();
    let first = send_and_check(
        &gateway,
        "01",
        read_sample("01-drip-een-resultaat.xml"),
        &Expect::Accepted,
    );
    send_and_check(
        &gateway,
        "02",
        read_sample("02-batch-vijf-leerlingen.xml"),
        &Expect::Accepted,
    );
    // Its aanmaakdatum is older than the last accepted one, but these bytes were accepted before.
    let again = send_and_check(
        &gateway,
        "01 again",
        read_sample("01-drip-een-resultaat.xml"),
        &Expect::Accepted,
    );
    assert_eq!(again.receipt_id, first.receipt_id);
    assert_eq!(count(&gateway.db(), "SELECT count(*) FROM receipts"), 2);
}

#[test]
fn a_different_message_with_the_same_aanmaakdatum_is_refused() {
    let gateway = spawn_default();
    let message = |key: &str, seconds: u32| {
        Message::demo(&aanmaakdatum(seconds))
            .afname("LL0001", vec![Resultaat::score(key, "VOLG-T", 5)])
            .toets(Toets::new("VOLG-T"))
    };
    let volgorde = Expect::fault("Client.OngeldigBericht", &["UWLR-VOLGORDE"]);
    send_and_check(
        &gateway,
        "first",
        message("VOLG-1", 10).envelope(),
        &Expect::Accepted,
    );
    let refused = send_and_check(
        &gateway,
        "same aanmaakdatum",
        message("VOLG-2", 10).envelope(),
        &volgorde,
    );
    send_and_check(
        &gateway,
        "earlier aanmaakdatum",
        message("VOLG-3", 9).envelope(),
        &volgorde,
    );
    // The same instant written with an explicit offset is still not later (Europe/Amsterdam, CET in January).
    let mut with_offset = message("VOLG-4", 10);
    with_offset.aanmaakdatum = format!("{}+01:00", aanmaakdatum(10));
    send_and_check(
        &gateway,
        "same instant with offset",
        with_offset.envelope(),
        &volgorde,
    );
    send_and_check(
        &gateway,
        "one second later",
        message("VOLG-5", 11).envelope(),
        &Expect::Accepted,
    );

    let connection = gateway.db();
    assert_eq!(
        rows(
            &connection,
            "SELECT afname_key FROM toetsafnames ORDER BY afname_key"
        ),
        ["VOLG-1", "VOLG-5"]
    );
    assert_eq!(
        rows(&connection, "SELECT last_aanmaakdatum FROM sender_state"),
        [aanmaakdatum(11)]
    );
    let receipt = refused.receipt_id.expect("refused message has a receipt");
    let outcome: String = connection
        .query_row(
            "SELECT outcome FROM receipts WHERE id = ?1",
            [&receipt],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(outcome, "rejected");
}

#[test]
fn ordering_is_per_client_and_school() {
    let gateway = spawn_default();
    gateway.add_client_for_demo_school(
        "EA-TWEE",
        "Tweede Uitgever",
        "tweede-sleutel-123",
        "DPA-2",
        &["--valid-from", "2020-01-01"],
    );
    let message = |key: &str| {
        Message::demo(&aanmaakdatum(100))
            .afname("LL0001", vec![Resultaat::score(key, "PER-T", 5)])
            .toets(Toets::new("PER-T"))
    };
    send_and_check(
        &gateway,
        "demo client",
        message("PER-1").envelope(),
        &Expect::Accepted,
    );
    // Another client may send for the same school with the same aanmaakdatum.
    let other = message("PER-2").client("EA-TWEE", "Tweede Uitgever", "tweede-sleutel-123");
    let reply = gateway.post(other.envelope());
    check(
        "second client, same aanmaakdatum",
        &reply,
        &Expect::Accepted,
    );
    assert_eq!(count(&gateway.db(), "SELECT count(*) FROM sender_state"), 2);
}
