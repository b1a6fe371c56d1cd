//! Crash consistency: SIGKILL the real gateway in the middle of a large batch, between commit and answer, and during delivery; after each restart the store and the outbox must be exact.
//!
//! Uses the harness's restart on the same data dir, the bridge tests' stand-in LRS and
//! the message builder.

use crate::bridge::assert_one_live_statement_per_result;
use crate::bridge::standin::StandIn;
use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{count, spawn_gateway, Gateway, Options};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);

/// Everything that must hold after any crash and restart.
fn assert_store_consistent(gateway: &Gateway, context: &str) {
    let db = gateway.db();
    // SQLite checks its own file; PostgreSQL's crash recovery is the server's, not ours.
    if !db.is_postgres() {
        let integrity: String = db
            .query_row("PRAGMA integrity_check", rusqlite::params![], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(integrity, "ok", "{context}");
    }
    // Every accepted receipt owns exactly the rows it says it wrote (no test message
    // here touches another's keys), a rejected one owns none, and no row is orphaned.
    let mut statement = db
        .prepare(
            "SELECT r.id, r.outcome, r.created + r.updated,
                    (SELECT count(*) FROM toetsafnames a WHERE a.receipt_id = r.id)
             FROM receipts r",
        )
        .unwrap();
    let receipts: Vec<(String, String, i64, i64)> = statement
        .query_map(rusqlite::params![], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, outcome, written, rows) in &receipts {
        match outcome.as_str() {
            "accepted" => assert_eq!(
                rows, written,
                "{context}: receipt {id} says {written} rows, the store has {rows}"
            ),
            _ => assert_eq!(*rows, 0, "{context}: rejected receipt {id} left rows"),
        }
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM toetsafnames WHERE receipt_id NOT IN (SELECT id FROM receipts WHERE outcome = 'accepted')"
        ),
        0,
        "{context}: rows without an accepted receipt"
    );
    // The change log is in step with the afnames: every change of an accepted afname is
    // logged in the transaction that made it, up to the change counter.
    assert_eq!(
        count(&db, "SELECT count(*) FROM toetsafnames a WHERE NOT EXISTS (SELECT 1 FROM toetsafname_changes g WHERE g.change_seq = a.change_seq AND g.afname_id = a.id)"),
        0,
        "{context}: an afname whose last change is not in the change log"
    );
    // The publisher (which runs after the commit, from its cursor) catches up after a
    // restart, and then every published afname has exactly one live statement.
    crate::harness::wait_published(&db);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM toetsafnames a WHERE a.quarantined = 0 AND (SELECT count(*) FROM xapi_statements s
               WHERE s.afname_id = a.id AND s.voided_by IS NULL AND s.verb_id <> 'http://adlnet.gov/expapi/verbs/voided') <> 1"
        ),
        0,
        "{context}: an afname without exactly one live statement"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM xapi_statements WHERE afname_id IS NOT NULL AND afname_id NOT IN (SELECT id FROM toetsafnames)"
        ),
        0,
        "{context}: a statement for an afname that is not there"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sender_state WHERE last_receipt_id NOT IN (SELECT id FROM receipts WHERE outcome = 'accepted')"
        ),
        0,
        "{context}: the ordering state names a receipt that is not there"
    );
    let spooled = std::fs::read_dir(gateway.data_dir.join("spool"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(
        spooled, 0,
        "{context}: spooled bodies left after the restart"
    );
}

/// A snapshot of the stored results, to show a killed message left nothing behind.
fn afnames(gateway: &Gateway) -> Vec<(String, String, i64)> {
    let db = gateway.db();
    let mut statement = db
        .prepare(db.pick(
            "SELECT afname_key, hex(content_sha256), revision FROM toetsafnames ORDER BY afname_key",
            "SELECT afname_key, upper(encode(content_sha256, 'hex')), revision FROM toetsafnames ORDER BY afname_key",
        ))
        .unwrap();
    let rows = statement
        .query_map(rusqlite::params![], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn receipts_for(gateway: &Gateway, body: &[u8]) -> Vec<(String, String)> {
    let db = gateway.db();
    let mut statement = db
        .prepare("SELECT id, outcome FROM receipts WHERE sha256 = ?1")
        .unwrap();
    let rows = statement
        .query_map([sha256_hex(body)], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

/// Sends a SOAP call over a raw connection and reads the answer on a thread, so
/// whatever the server sent before it died is kept.
fn send_raw(gateway: &Gateway, body: &[u8]) -> std::thread::JoinHandle<Vec<u8>> {
    let mut stream = TcpStream::connect(gateway.address()).expect("connect");
    let head = format!(
        "POST /uwlr/leerresultaten HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"BrengLeerresultaten\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut reader = stream.try_clone().expect("clone");
    let reading = std::thread::spawn(move || {
        let mut received = Vec::new();
        let _ = reader.read_to_end(&mut received);
        received
    });
    let body = body.to_vec();
    std::thread::spawn(move || {
        let _ = stream.write_all(head.as_bytes());
        for piece in body.chunks(1 << 20) {
            if stream.write_all(piece).is_err() {
                break;
            }
        }
        // Dropping this clone leaves the reader's open: the socket stays up.
    });
    reading
}

fn generate(out: &Path, afnames: u32, seed: u32) -> (Vec<u8>, std::path::PathBuf) {
    let output = std::process::Command::new(crate::harness::binary())
        .args([
            "generate",
            "--learners",
            "300",
            "--toetsen",
            "10",
            "--afnames",
        ])
        .arg(afnames.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--out")
        .arg(out)
        .output()
        .expect("run generate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let batch = std::fs::read(out.join("99XX01-batch.xml")).expect("generated batch");
    (batch, out.join("roster.csv"))
}

#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn sigkill_at_any_point_leaves_every_message_whole_or_absent() {
    let scratch = tempfile::tempdir().unwrap();
    let (big, roster) = generate(&scratch.path().join("big"), 60_000, 3);
    let (small, _) = generate(&scratch.path().join("small"), 4_000, 4);
    // The small batch comes after the large one, also when the large one was stored. Its
    // results are dated a century earlier, so no sitting (leerling, toets version and
    // afnamedatum) of the two is the same and neither changes the other's derived totals.
    let small = String::from_utf8(small)
        .unwrap()
        .replacen("2026-11-02T00:00:01", "2026-11-02T00:00:02", 1)
        .replace("<lr:afnamedatum>20", "<lr:afnamedatum>19")
        .into_bytes();
    assert!(
        big.len() > 15 << 20,
        "the large batch is {} bytes",
        big.len()
    );

    // How long the large batch takes here, on a gateway of its own: the kills below
    // fall at fractions of it (receiving, schema check, writing, near the commit).
    let reference = spawn_gateway(Options::fast_xapi().envs(&[("UWLR_DURABILITY", "full")]));
    reference.cli_stdout(&["leerlingen", "import", roster.to_str().unwrap()]);
    let started = Instant::now();
    let answer = String::from_utf8_lossy(&send_raw(&reference, &big).join().unwrap()).into_owned();
    let whole = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let db = reference.db();
    assert_eq!(
        count(&db, "SELECT count(*) FROM toetsafnames"),
        count(&db, "SELECT created FROM receipts"),
        "the whole batch is stored"
    );
    drop(db);
    drop(reference);
    eprintln!("the large batch takes {whole:?}");

    let standin = StandIn::start();
    standin.with(|state| state.every_delay = Duration::from_millis(20));
    let mut gateway = spawn_gateway(
        Options::fast_xapi().envs(&[("UWLR_DURABILITY", "full"), ("UWLR_XAPI_BATCH_SIZE", "50")]),
    );
    gateway.cli_stdout(&["leerlingen", "import", roster.to_str().unwrap()]);
    gateway.cli_stdout(&["lrs", "add", "crash", "--url", &standin.url()]);

    // 1. The 16 MB batch killed while it is received, schema-checked and written. A kill
    // that comes after the commit (timing varies) must find it whole, and ends the rounds.
    for percent in [2u32, 30, 60, 90] {
        let kill_after = whole * percent / 100;
        let before = afnames(&gateway);
        let reading = send_raw(&gateway, &big);
        std::thread::sleep(kill_after);
        gateway.kill();
        let answer = String::from_utf8_lossy(&reading.join().unwrap()).into_owned();
        gateway.start();
        let context = format!("large batch killed after {kill_after:?} ({percent}%)");
        assert_store_consistent(&gateway, &context);
        let receipts = receipts_for(&gateway, &big);
        if receipts.iter().any(|(_, outcome)| outcome == "accepted") {
            eprintln!("{context}: it had committed");
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 200"),
                "{context}: {answer}"
            );
            break;
        }
        assert!(
            answer.is_empty(),
            "{context}: answered without a receipt: {answer}"
        );
        assert!(receipts.is_empty(), "{context}: {receipts:?}");
        assert_eq!(
            afnames(&gateway),
            before,
            "{context}: part of the batch was stored"
        );
    }

    // 2. A smaller batch goes through whole, and its statements start flowing.
    let reading = send_raw(&gateway, &small);
    let answer = String::from_utf8_lossy(&reading.join().unwrap()).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (stored_batch, _) = receipts_for(&gateway, &small).pop().expect("a receipt");
    assert_store_consistent(&gateway, "after the batch");

    // 3. Drip messages killed between receipt, commit and answer, during delivery. The kills
    // fall at 0 to 4 times what one drip message takes here (timed first; on PostgreSQL
    // a message makes round trips to the server and takes longer than on SQLite).
    let timed = Message::demo(&aanmaakdatum(99))
        .afname(
            "LL0001",
            vec![Resultaat::score("CRASH-TIMED", "CRASH-T", 1)],
        )
        .toets(Toets::new("CRASH-T"))
        .envelope();
    let started = Instant::now();
    let answer = String::from_utf8_lossy(&send_raw(&gateway, &timed).join().unwrap()).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let drip = started.elapsed().max(Duration::from_millis(12));
    eprintln!("a drip message takes {drip:?}");
    let mut acknowledged = Vec::new();
    let mut committed_unanswered = Vec::new();
    for round in 0..24u32 {
        let mut message = Message::demo(&aanmaakdatum(100 + round));
        for leerling in 0..3u32 {
            message = message.afname(
                &format!("LL{:04}", leerling + 1),
                vec![Resultaat::score(
                    &format!("CRASH-{round}-{leerling}"),
                    "CRASH-T",
                    u64::from(round % 10),
                )],
            );
        }
        let body = message.toets(Toets::new("CRASH-T")).envelope();
        let reading = send_raw(&gateway, &body);
        std::thread::sleep(drip * (round * 3 % 25) / 6);
        gateway.kill();
        let answer = String::from_utf8_lossy(&reading.join().unwrap()).into_owned();
        gateway.start();
        let context = format!("drip round {round}");
        assert_store_consistent(&gateway, &context);
        let receipts = receipts_for(&gateway, &body);
        let stored = afnames(&gateway)
            .iter()
            .filter(|(key, ..)| key.starts_with(&format!("CRASH-{round}-")))
            .count();
        if answer.starts_with("HTTP/1.1 200") {
            acknowledged.push(round);
            assert_eq!(receipts.len(), 1, "{context}: acknowledged but not stored");
            assert_eq!(stored, 3, "{context}: acknowledged but not whole");
        } else {
            assert!(
                stored == 0 || stored == 3,
                "{context}: {stored} of 3 results stored"
            );
            if stored == 3 {
                committed_unanswered.push(round);
            }
            assert_eq!(
                stored == 3,
                receipts.iter().any(|(_, outcome)| outcome == "accepted"),
                "{context}"
            );
        }
        // The sender retries what it did not see acknowledged; a stored message is a replay.
        if !answer.starts_with("HTTP/1.1 200") {
            let retry =
                String::from_utf8_lossy(&send_raw(&gateway, &body).join().unwrap()).into_owned();
            assert!(
                retry.starts_with("HTTP/1.1 200"),
                "{context}: retry got {retry}"
            );
            let receipts = receipts_for(&gateway, &body);
            assert_eq!(
                receipts.len(),
                1,
                "{context}: the retry stored the message a second time: {receipts:?}"
            );
        }
    }
    assert_store_consistent(&gateway, "after the drip rounds");
    eprintln!("rounds answered before their kill: {acknowledged:?}; committed but killed before the answer: {committed_unanswered:?}");
    assert!(
        !acknowledged.is_empty(),
        "no round was answered before its kill"
    );
    assert!(
        acknowledged.len() < 24,
        "every round was answered before its kill: the kills came too late"
    );

    // 4. After the last restart the outbox delivers everything, once per id.
    let started = Instant::now();
    gateway.wait_delivered("crash", WAIT * 3);
    let generated = gateway.statement_ids();
    assert_eq!(
        standin.stored_ids(),
        generated,
        "the LRS holds exactly the generated ids"
    );
    let stored: Vec<Value> = standin.with(|state| state.stored.values().cloned().collect());
    let db = gateway.db();
    let mut statement = db
        .prepare("SELECT id FROM xapi_statements WHERE voided_by IS NOT NULL")
        .unwrap();
    let voided: BTreeSet<String> = statement
        .query_map(rusqlite::params![], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_one_live_statement_per_result(&stored, &voided, "the LRS");
    assert!(stored_batch.len() > 10);
    eprintln!(
        "delivered {} statements in {:?} after the last restart",
        generated.len(),
        started.elapsed()
    );
}
