//! Errors that are ours: a corrupt stored row is a 500 (problem details or a Server fault) that names nothing of it, and its cause is logged once under the request id.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{count, fault_of, spawn_gateway, Expect, Gateway, Options, Reply};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "admin-token-errors-0000000000000";

/// A message with one result of toets ERR-T version 1. The first carries that version's
/// definition; a later one only version 2's, so that the gateway reads version 1 from the store.
fn message(sequence: u32, with_definition: bool) -> Vec<u8> {
    let resultaat = Resultaat::score(&format!("ERR-{sequence}"), "ERR-T", 4).versie("1");
    let toets = match with_definition {
        true => Toets::new("ERR-T").versie("1"),
        false => Toets::new("ERR-T").versie("2"),
    };
    Message::demo(&aanmaakdatum(sequence))
        .afname("LL0001", vec![resultaat])
        .toets(toets)
        .envelope()
}

/// A roster import of one leerling of school 99XX01 through the admin API.
fn roster_import(gateway: &Gateway, leerlingid: &str) -> reqwest::blocking::RequestBuilder {
    gateway
        .http
        .post(format!("{}/api/v1/admin/leerlingen", gateway.base_url))
        .bearer_auth(ADMIN_TOKEN)
        .body(format!("99XX01,{leerlingid},,\n"))
}

/// Damages stored rows behind the gateway's back, as a disk or a careless hand would.
fn corrupt(gateway: &Gateway, sql: &str) {
    let changed = gateway
        .db_writable()
        .execute(sql, rusqlite::params![])
        .expect("the corrupting update");
    assert!(changed > 0, "{sql} changed nothing");
}

/// A 500 problem that says only what every internal error says; returns its request id.
fn internal_problem(reply: &Reply, unsaid: &[&str]) -> String {
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    let problem = reply.json();
    assert_eq!(problem["type"], "urn:uwlr-gateway:problem:internal");
    assert_eq!(
        problem["detail"],
        "internal error; quote the request id to the operator"
    );
    for word in unsaid {
        assert!(
            !reply.body.contains(word),
            "the answer names {word:?}: {}",
            reply.body
        );
    }
    problem["request_id"]
        .as_str()
        .expect("a request id")
        .to_string()
}

/// Waits for one log line holding every needle, and returns it.
fn logged(gateway: &Gateway, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = gateway.stderr();
        if let Some(line) = log
            .lines()
            .find(|line| needles.iter().all(|needle| line.contains(needle)))
        {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line holds all of {needles:?}; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_corrupt_stored_result_is_a_500_problem_that_names_nothing_and_is_logged() {
    let gateway = spawn_gateway(Options::default());
    crate::harness::check("stored", &gateway.post(message(1, true)), &Expect::Accepted);
    let added = gateway
        .cli(&[
            "readers",
            "add",
            "las-err",
            "--school",
            "99XX01",
            "--scope",
            "las",
            "--mandate",
            "DPA-E",
        ])
        .success();
    let token = added.stdout.lines().last().expect("the token").trim();
    corrupt(&gateway, "UPDATE toetsafnames SET result = 'kapot-{'");
    let feed = format!(
        "{}/api/v1/schools/99XX01/toetsafnames?since=0",
        gateway.base_url
    );
    let reply = gateway.send(gateway.http.get(&feed).bearer_auth(token));
    let request_id = internal_problem(&reply, &["kapot", "result", "Conversion"]);
    let line = logged(&gateway, &[&request_id, "corrupt"]);
    assert!(line.contains("ERROR"), "logged as an error: {line}");
}

#[test]
fn a_roster_import_over_a_corrupt_row_is_a_500_problem_and_imports_nothing() {
    if crate::harness::sqlite_only("damages a row through SQLite's dynamic typing (text in an integer column), which PostgreSQL's types refuse") {
        return;
    }
    let gateway = spawn_gateway(Options::default().env("UWLR_ADMIN_TOKEN", ADMIN_TOKEN));
    let before = count(&gateway.db(), "SELECT count(*) FROM leerlingen");
    corrupt(&gateway, "UPDATE change_counter SET seq = 'kapot'");
    let reply = gateway.send(roster_import(&gateway, "ERR-LL1"));
    let request_id = internal_problem(&reply, &["kapot", "change_counter", "seq"]);
    let line = logged(&gateway, &[&request_id, "corrupt"]);
    assert!(line.contains("ERROR"), "logged as an error: {line}");
    assert_eq!(
        count(&gateway.db(), "SELECT count(*) FROM leerlingen"),
        before,
        "nothing of the roster was imported"
    );
}

#[test]
fn a_message_over_a_corrupt_stored_toets_is_a_server_fault_that_names_nothing() {
    let gateway = spawn_gateway(Options::default());
    crate::harness::check("stored", &gateway.post(message(1, true)), &Expect::Accepted);
    corrupt(&gateway, "UPDATE toetsen SET definition = 'kapot-{'");
    let reply = gateway.post(message(2, false));
    assert_eq!(reply.status, 500, "{}", reply.body);
    let fault = fault_of(&reply);
    assert_eq!(fault.code, "Server.InterneFout", "{}", reply.body);
    for word in ["kapot", "toetsen", "definition", "corrupt"] {
        assert!(
            !reply.body.contains(word),
            "the fault names {word:?}: {}",
            reply.body
        );
    }
    let line = logged(&gateway, &["stored toets", "corrupt"]);
    assert!(line.contains("ERROR"), "logged as an error: {line}");
}

/// A database another process keeps locked past the writer's busy timeout (30 s) is a
/// moment's contention, not a failure: 503 with `Retry-After`, over HTTP and SOAP.
#[test]
fn a_database_locked_past_the_busy_timeout_asks_to_retry() {
    if crate::harness::sqlite_only("holds SQLite's file write lock (BEGIN IMMEDIATE)") {
        return;
    }
    let gateway = spawn_gateway(Options::default().env("UWLR_ADMIN_TOKEN", ADMIN_TOKEN));
    let holder = rusqlite::Connection::open(gateway.data_dir.join("gateway.sqlite"))
        .expect("open gateway.sqlite for writing");
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let started = Instant::now();
    let (import, soap) = std::thread::scope(|scope| {
        let import = scope.spawn(|| {
            roster_import(&gateway, "ERR-LL2")
                .send()
                .expect("the import is answered")
        });
        let soap = scope.spawn(|| {
            gateway
                .http
                .post(&gateway.endpoint)
                .header("content-type", "text/xml; charset=utf-8")
                .header("soapaction", "\"BrengLeerresultaten\"")
                .body(message(1, true))
                .send()
                .expect("the message is answered")
        });
        (import.join().unwrap(), soap.join().unwrap())
    });
    holder
        .execute_batch("ROLLBACK")
        .expect("let go of the lock");
    assert!(started.elapsed() < Duration::from_secs(90));
    for (what, response, content_type) in [
        ("import", import, "application/problem+json"),
        ("SOAP", soap, "text/xml; charset=utf-8"),
    ] {
        assert_eq!(response.status().as_u16(), 503, "{what}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(header("retry-after"), "5", "{what}");
        assert_eq!(header("content-type"), content_type, "{what}");
        let body = response.text().unwrap();
        match what {
            "import" => assert!(body.contains("urn:uwlr-gateway:problem:busy"), "{body}"),
            _ => assert!(body.contains("soap:Server.Bezet"), "{body}"),
        }
    }
    // Once the lock is gone the same requests succeed.
    let reply = gateway.send(roster_import(&gateway, "ERR-LL2"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    crate::harness::check("resent", &gateway.post(message(1, true)), &Expect::Accepted);
}
