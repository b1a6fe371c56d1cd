//! Operations: an online backup taken under load restores into a fresh data dir that serves.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{
    count, outcome, spawn_default, spawn_gateway, wait_published, Expect, Options,
};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

fn drip(sequence: u32) -> Vec<u8> {
    Message::demo(&aanmaakdatum(sequence))
        .afname(
            &format!("LL{:04}", sequence % 20 + 1),
            vec![Resultaat::score(
                &format!("BACKUP-{sequence}"),
                "BACKUP-T",
                u64::from(sequence % 11),
            )],
        )
        .toets(Toets::new("BACKUP-T"))
        .envelope()
}

#[test]
fn backup_under_load_restores_into_a_fresh_data_dir_that_serves() {
    if crate::harness::sqlite_only("backup copies the SQLite files (PostgreSQL has pg_dump)") {
        return;
    }
    let gateway = spawn_default();
    let sent = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let backups: Vec<std::path::PathBuf> = (0..3)
        .map(|index| gateway.scratch().join(format!("backup-{index}")))
        .collect();
    std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let mut sequence = 0;
            while !stop.load(Ordering::Relaxed) && sequence < 2000 {
                sequence += 1;
                assert_eq!(
                    outcome(&gateway.post(drip(sequence))),
                    Expect::Accepted,
                    "message {sequence}"
                );
                sent.store(sequence, Ordering::Relaxed);
            }
        });
        for backup in &backups {
            while sent.load(Ordering::Relaxed) < 10 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let output = gateway.cli(&["backup", backup.to_str().unwrap()]).success();
            assert!(output.stdout.contains("backed up"), "{}", output.stdout);
        }
        stop.store(true, Ordering::Relaxed);
        load.join().expect("load thread");
    });
    let total = sent.load(Ordering::Relaxed);

    // Each copy is a consistent database of its own, holding a prefix of the load.
    let mut previous = 0;
    for backup in &backups {
        assert!(!backup.with_extension("partial").exists());
        let connection = rusqlite::Connection::open(backup.join("gateway.sqlite")).unwrap();
        crate::harness::attach_xapi(&connection, backup);
        let connection = uwlr_gateway::store::db::Db::owned_sqlite(connection);
        let check: String = connection
            .query_row("PRAGMA integrity_check", rusqlite::params![], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(check, "ok");
        let receipts = count(&connection, "SELECT count(*) FROM receipts");
        assert_eq!(
            count(
                &connection,
                "SELECT count(*) FROM toetsafnames WHERE afname_key LIKE 'BACKUP-%'"
            ),
            receipts
        );
        // Each accepted change is in the change log with its afname; statements follow
        // after the commit, and exist exactly for the changes up to the publisher's cursor.
        assert_eq!(
            count(&connection, "SELECT count(*) FROM toetsafname_changes"),
            receipts,
            "changes logged with their afnames"
        );
        assert_eq!(
            count(&connection, "SELECT count(*) FROM xapi_statements"),
            count(
                &connection,
                "SELECT count(*) FROM toetsafname_changes
                 WHERE change_seq <= (SELECT cursor_seq FROM xapi_publisher)"
            ),
            "statements in step with the publisher's cursor"
        );
        assert!(
            receipts >= previous && receipts <= i64::from(total),
            "{receipts} of {total}"
        );
        eprintln!(
            "{} holds {receipts} of the {total} messages sent",
            backup.display()
        );
        previous = receipts;
    }

    // Restore: stop, copy the backup directory's files into a data dir, start.
    let last = backups.last().unwrap();
    let restored_root = tempfile::tempdir().unwrap();
    let data_dir = restored_root.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    for file in ["gateway.sqlite", "xapi.sqlite"] {
        std::fs::copy(last.join(file), data_dir.join(file)).unwrap();
    }
    // The secrets key, kept apart from the backups (README): it opens the gateway's xAPI id
    // key, without which the restored publisher holds statements back (issue 17).
    std::fs::copy(
        gateway.data_dir.join("secrets.key"),
        data_dir.join("secrets.key"),
    )
    .unwrap();
    drop(gateway);
    let restored = spawn_gateway(Options::default().data_dir(&data_dir));
    let connection = restored.db();
    let stored = count(&connection, "SELECT count(*) FROM receipts") as u32;
    assert_eq!(stored, previous as u32);
    // The restored gateway's publisher finishes what the copy had not published yet.
    wait_published(&connection);
    assert_eq!(
        count(&connection, "SELECT count(*) FROM xapi_statements"),
        i64::from(stored)
    );
    // A message from the backup is a replay; the next one continues the ordering.
    let replay = restored.post(drip(stored));
    assert_eq!(outcome(&replay), Expect::Accepted);
    assert_eq!(
        count(&connection, "SELECT count(*) FROM receipts"),
        i64::from(stored),
        "a replay writes nothing"
    );
    assert_eq!(outcome(&restored.post(drip(total + 1))), Expect::Accepted);
    assert_eq!(
        count(&connection, "SELECT count(*) FROM receipts"),
        i64::from(stored) + 1
    );
}

#[test]
fn tls_serves_soap_calls_and_the_wsdl_over_https() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let gateway = spawn_gateway(
        Options::default()
            .env("UWLR_TLS_CERT", cert.to_str().unwrap())
            .env("UWLR_TLS_KEY", key.to_str().unwrap()),
    );
    assert!(
        gateway.base_url.starts_with("https://127.0.0.1:"),
        "{}",
        gateway.base_url
    );
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
        )
        .https_only(true)
        .build()
        .unwrap();
    let reply = gateway.send(
        client
            .post(&gateway.endpoint)
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "\"BrengLeerresultaten\"")
            .body(drip(1)),
    );
    assert_eq!(outcome(&reply), Expect::Accepted, "{}", reply.body);
    let wsdl = gateway.send(client.get(format!("{}?wsdl", gateway.endpoint)));
    assert!(
        wsdl.body
            .contains(&format!("location=\"{}\"", gateway.endpoint)),
        "{}",
        wsdl.body
    );

    // Plain HTTP on the TLS port gets no answer, and a client that never finishes the
    // handshake is dropped; neither stops the service.
    use std::io::{Read, Write};
    let mut plain = std::net::TcpStream::connect(gateway.address()).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let _ = plain.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
    let _silent = std::net::TcpStream::connect(gateway.address()).unwrap();
    let reply = gateway.send(
        client
            .post(&gateway.endpoint)
            .header("content-type", "text/xml; charset=utf-8")
            .body(drip(2)),
    );
    assert_eq!(outcome(&reply), Expect::Accepted, "{}", reply.body);
}

/// `xapi.sqlite` holds what the publisher derives from the change log (plus the LRS
/// subscriptions): lost, it is rebuilt with the same statement ids, corrections included.
#[test]
fn a_lost_xapi_database_is_rebuilt_with_the_same_statement_ids() {
    if crate::harness::sqlite_only("removes the xapi.sqlite file") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let ids = |connection: &uwlr_gateway::store::db::Db| -> Vec<(String, bool)> {
        let mut statement = connection
            .prepare("SELECT id, voided_by IS NOT NULL FROM xapi_statements ORDER BY id")
            .unwrap();
        let rows = statement
            .query_map(rusqlite::params![], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    let before = {
        let gateway = spawn_gateway(Options::default().data_dir(&data_dir));
        for sequence in 1..=20 {
            assert_eq!(outcome(&gateway.post(drip(sequence))), Expect::Accepted);
        }
        // A correction of BACKUP-3 (LL0004, score 3): a new statement and a voiding one.
        let correction = Message::demo(&aanmaakdatum(21))
            .afname("LL0004", vec![Resultaat::score("BACKUP-3", "BACKUP-T", 9)])
            .toets(Toets::new("BACKUP-T"))
            .envelope();
        assert_eq!(outcome(&gateway.post(correction)), Expect::Accepted);
        let connection = gateway.db();
        wait_published(&connection);
        ids(&connection)
    };
    assert_eq!(
        before.len(),
        22,
        "20 statements, a corrected one and its voiding statement"
    );
    assert_eq!(before.iter().filter(|(_, voided)| *voided).count(), 1);
    for file in ["xapi.sqlite", "xapi.sqlite-wal", "xapi.sqlite-shm"] {
        let _ = std::fs::remove_file(data_dir.join(file));
    }
    assert!(!data_dir.join("xapi.sqlite").exists());
    let gateway = spawn_gateway(Options::default().data_dir(&data_dir));
    let connection = gateway.db();
    wait_published(&connection);
    assert_eq!(ids(&connection), before);
}

/// CLI commands open and close the database files while the gateway writes and restarts
/// its WAL (every MiB here): they must never take a database for unused. A file closed by
/// the gateway's own code once dropped its locks, and a CLI command's close then deleted
/// the WAL the gateway was writing to; later commits were invisible to new connections.
#[test]
fn cli_commands_during_wal_restarts_leave_the_gateways_wal_alone() {
    if crate::harness::sqlite_only("SQLite's WAL restarts") {
        return;
    }
    let gateway = spawn_gateway(Options::default().env("UWLR_WAL_RESTART_MIB", "1"));
    let stop = AtomicBool::new(false);
    let total: u32 = 1500;
    std::thread::scope(|scope| {
        let cli = scope.spawn(|| {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                gateway.cli(&["outbox", "status"]).success();
                runs += 1;
            }
            runs
        });
        for sequence in 1..=total {
            assert_eq!(
                outcome(&gateway.post(drip(sequence))),
                Expect::Accepted,
                "message {sequence}"
            );
        }
        stop.store(true, Ordering::Relaxed);
        assert!(cli.join().expect("cli thread") > 0);
    });
    let connection = gateway.db();
    assert_eq!(
        count(&connection, "SELECT count(*) FROM receipts"),
        i64::from(total),
        "a new connection sees every commit"
    );
    wait_published(&connection);
    assert_eq!(
        count(&connection, "SELECT count(*) FROM xapi_statements"),
        i64::from(total)
    );
    for wal in ["gateway.sqlite-wal", "xapi.sqlite-wal"] {
        assert!(gateway.data_dir.join(wal).exists(), "{wal} is in place");
    }
    let check: String = connection
        .query_row("PRAGMA integrity_check", rusqlite::params![], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(check, "ok");
}

/// A service manager may stop the gateway the moment it reports ready: the signal handlers are
/// armed before the listening line, so even then SIGTERM drains and the exit status is 0.
#[test]
fn sigterm_straight_after_the_listening_line_shuts_down_cleanly() {
    for _ in 0..5 {
        let mut gateway = spawn_default();
        gateway.terminate();
    }
}
