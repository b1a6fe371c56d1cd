//! Concurrent senders for one school: the ordering rule and the upserts cannot race.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{arrival_order, count, outcome, rows, spawn_default, wait_published, Expect};
use std::collections::BTreeSet;

const THREADS: u32 = 16;
const PER_THREAD: u32 = 20;

#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn concurrent_messages_for_one_school_are_serialised() {
    let gateway = spawn_default();
    // Message i of thread t has aanmaakdatum base + i*THREADS + t seconds: distinct across
    // all threads and increasing within each, and one unique afname key. Which messages
    // win depends on timing; what must hold exactly is checked below.
    let volgorde = Expect::fault("Client.OngeldigBericht", &["UWLR-VOLGORDE"]);
    let results: Vec<(u32, String, String, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let gateway = &gateway;
                let volgorde = &volgorde;
                scope.spawn(move || {
                    let mut sent = Vec::new();
                    for index in 0..PER_THREAD {
                        let sequence = index * THREADS + thread;
                        let key = format!("CONC-{thread:02}-{index:02}");
                        let leerling = format!("LL{:04}", thread % 20 + 1);
                        let message = Message::demo(&aanmaakdatum(sequence))
                            .afname(
                                &leerling,
                                vec![Resultaat::score(&key, "CONC-T", u64::from(index % 11))],
                            )
                            .toets(Toets::new("CONC-T"));
                        let reply = gateway.post(message.envelope());
                        let accepted = match outcome(&reply) {
                            Expect::Accepted => true,
                            other => {
                                assert_eq!(
                                    &other, volgorde,
                                    "{key}: the only possible fault is the ordering rule"
                                );
                                false
                            }
                        };
                        sent.push((sequence, key, aanmaakdatum(sequence), accepted));
                    }
                    sent
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("sender thread"))
            .collect()
    });
    assert_eq!(results.len(), (THREADS * PER_THREAD) as usize);

    let connection = gateway.db();
    let accepted_keys: BTreeSet<String> = results
        .iter()
        .filter(|(_, _, _, accepted)| *accepted)
        .map(|(_, key, _, _)| key.clone())
        .collect();
    let stored_keys: BTreeSet<String> = rows(&connection, "SELECT afname_key FROM toetsafnames")
        .into_iter()
        .collect();
    assert_eq!(
        stored_keys, accepted_keys,
        "exactly the accepted messages are stored"
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"
        ),
        accepted_keys.len() as i64
    );
    let rejected = results.len() - accepted_keys.len();
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome = 'rejected'"
        ),
        rejected as i64
    );
    assert_eq!(
        count(&connection, "SELECT count(*) FROM receipts WHERE outcome = 'rejected' AND violations NOT LIKE '%UWLR-VOLGORDE%'"),
        0
    );

    // The message with the highest aanmaakdatum can never lose, and it is the one remembered.
    let last = aanmaakdatum(THREADS * PER_THREAD - 1);
    let max_accepted = results
        .iter()
        .filter(|(_, _, _, accepted)| *accepted)
        .map(|(sequence, ..)| *sequence)
        .max()
        .unwrap();
    assert_eq!(aanmaakdatum(max_accepted), last);
    assert_eq!(
        rows(&connection, "SELECT last_aanmaakdatum FROM sender_state"),
        [last]
    );

    // In the order the writer thread handled them, accepted aanmaakdatums strictly increase,
    // and every refused one was not later than the last accepted before it.
    let mut last_accepted: Option<String> = None;
    for row in rows(
        &connection,
        &format!(
            "SELECT outcome, aanmaakdatum FROM receipts ORDER BY {}",
            arrival_order(&connection)
        ),
    ) {
        let (receipt_outcome, stamp) = row.split_once('|').unwrap();
        match receipt_outcome {
            "accepted" => {
                if let Some(previous) = &last_accepted {
                    assert!(
                        stamp > previous.as_str(),
                        "accepted {stamp} after {previous}"
                    );
                }
                last_accepted = Some(stamp.to_string());
            }
            _ => {
                let previous = last_accepted
                    .as_deref()
                    .expect("a refusal follows an acceptance");
                assert!(
                    stamp <= previous,
                    "refused {stamp} although the last accepted was {previous}"
                );
            }
        }
    }
}

/// Two senders race over many rounds with messages for the same school that write
/// the same afname keys. Whatever the interleaving, each key ends as the accepted
/// message with the latest aanmaakdatum wrote it, refusals are UWLR-VOLGORDE only,
/// and each key has exactly one live statement, carrying that score.
#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn two_senders_racing_on_the_same_keys_leave_the_latest_accepted_version() {
    const ROUNDS: u32 = 100;
    const KEYS: u32 = 5;
    let gateway = spawn_default();
    let volgorde = Expect::fault("Client.OngeldigBericht", &["UWLR-VOLGORDE"]);
    let score = |sequence: u32, key: u32| u64::from((sequence * 7 + key * 3) % 11);
    let barrier = std::sync::Barrier::new(2);
    let results: Vec<(u32, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2u32)
            .map(|sender| {
                let (gateway, volgorde, barrier) = (&gateway, &volgorde, &barrier);
                scope.spawn(move || {
                    let mut sent = Vec::new();
                    for round in 0..ROUNDS {
                        // Sender 0 has the even aanmaakdatums, sender 1 the odd ones;
                        // both start each round together, so they collide on every key.
                        let sequence = 1000 + round * 2 + sender;
                        let mut message = Message::demo(&aanmaakdatum(sequence));
                        for key in 0..KEYS {
                            message = message.afname(
                                &format!("LL{:04}", key + 1),
                                vec![Resultaat::score(
                                    &format!("RACE-{key}"),
                                    "RACE-T",
                                    score(sequence, key),
                                )],
                            );
                        }
                        let body = message.toets(Toets::new("RACE-T")).envelope();
                        barrier.wait();
                        let reply = gateway.post(body);
                        let accepted = match outcome(&reply) {
                            Expect::Accepted => true,
                            other => {
                                assert_eq!(
                                    &other, volgorde,
                                    "round {round}: only the ordering rule may refuse"
                                );
                                false
                            }
                        };
                        sent.push((sequence, accepted));
                    }
                    sent
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("sender thread"))
            .collect()
    });
    let latest = results
        .iter()
        .filter(|(_, accepted)| *accepted)
        .map(|(sequence, _)| *sequence)
        .max()
        .expect("some message was accepted");
    assert_eq!(
        latest,
        1000 + ROUNDS * 2 - 1,
        "the last message sent can never lose"
    );
    let refused = results.iter().filter(|(_, accepted)| !*accepted).count();
    eprintln!(
        "{refused} of {} racing messages refused by the ordering rule",
        results.len()
    );
    let connection = gateway.db();
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome = 'rejected'"
        ),
        refused as i64
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome = 'rejected' AND violations NOT LIKE '%UWLR-VOLGORDE%'"
        ),
        0
    );
    wait_published(&connection);
    for key in 0..KEYS {
        let stored = rows(
            &connection,
            &format!(
                "SELECT score, aanmaakdatum FROM toetsafnames WHERE afname_key = 'RACE-{key}'"
            ),
        );
        assert_eq!(
            stored,
            [format!("{}|{}", score(latest, key), aanmaakdatum(latest))],
            "RACE-{key} holds the latest accepted version"
        );
        let live = rows(
            &connection,
            &format!(
                "SELECT s.statement FROM xapi_statements s JOIN toetsafnames a ON a.id = s.afname_id
                 WHERE a.afname_key = 'RACE-{key}' AND s.voided_by IS NULL
                   AND s.verb_id <> 'http://adlnet.gov/expapi/verbs/voided'"
            ),
        );
        assert_eq!(live.len(), 1, "RACE-{key}: one live statement");
        let statement: serde_json::Value = serde_json::from_str(&live[0]).expect("statement JSON");
        assert_eq!(
            statement["result"]["score"]["raw"].as_f64(),
            Some(score(latest, key) as f64),
            "RACE-{key}: the live statement carries the latest score: {statement}"
        );
    }
    // In the writer's order, accepted aanmaakdatums strictly increase.
    let accepted = rows(
        &connection,
        &format!(
            "SELECT aanmaakdatum FROM receipts WHERE outcome = 'accepted' ORDER BY {}",
            arrival_order(&connection)
        ),
    );
    assert!(
        accepted.windows(2).all(|pair| pair[0] < pair[1]),
        "{accepted:?}"
    );
    assert_eq!(
        accepted.len(),
        results.iter().filter(|(_, accepted)| *accepted).count()
    );
}
