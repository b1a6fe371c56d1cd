//! Access: failed authentications are rate-limited per klantcode and per source address, and every admin action leaves an audit entry.

use crate::support::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::support::{
    count, fault_of, rows, spawn_gateway, Expect, Gateway, Options, DEMO_SLEUTEL,
};
use std::time::{Duration, Instant};

fn message(sequence: u32, klantcode: &str, sleutel: &str) -> Vec<u8> {
    Message::demo(&aanmaakdatum(sequence))
        .client(
            klantcode,
            if klantcode == "DEMO-EA" {
                "Demo Uitgever"
            } else {
                "Andere Uitgever"
            },
            sleutel,
        )
        .afname(
            "LL0001",
            vec![Resultaat::score(
                &format!("ACCESS-{sequence}"),
                "ACCESS-T",
                4,
            )],
        )
        .toets(Toets::new("ACCESS-T"))
        .envelope()
}

/// A client that sends from the given loopback address (127.0.0.0/8 is all ours).
fn client_from(address: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().expect("address"))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn post_from(
    gateway: &Gateway,
    client: &reqwest::blocking::Client,
    body: Vec<u8>,
) -> crate::support::Reply {
    gateway.send(
        client
            .post(&gateway.endpoint)
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "\"BrengLeerresultaten\"")
            .body(body),
    )
}

#[test]
fn failed_authentications_lock_out_the_klantcode_and_the_address() {
    let gateway = spawn_gateway(
        Options::default()
            .env("UWLR_AUTH_MAX_FAILURES", "3")
            .env("UWLR_AUTH_LOCKOUT_SECS", "3"),
    );
    gateway
        .cli(&[
            "clients",
            "add",
            "EA-ANDER",
            "--klantnaam",
            "Andere Uitgever",
            "--key",
            "andere-sleutel-2026",
        ])
        .success();
    gateway
        .cli(&[
            "schools",
            "activate",
            "99XX01",
            "--klantcode",
            "EA-ANDER",
            "--mandate",
            "DPA-A",
        ])
        .success();
    let wrong_key = Expect::fault("Client.AutorisatieOngeldig", &["UWLR-AUTORISATIE"]);
    let attacker = client_from("127.0.0.2");
    let bystander = client_from("127.0.0.3");

    // Three wrong keys for DEMO-EA from 127.0.0.2 use up both buckets.
    let mut wrong_fault = String::new();
    for sequence in 1..=3 {
        let reply = post_from(
            &gateway,
            &attacker,
            message(sequence, "DEMO-EA", "geraden-sleutel"),
        );
        crate::support::check("wrong key", &reply, &wrong_key);
        wrong_fault = fault_of(&reply).faultstring;
    }
    let started = Instant::now();
    // Now even the right key is refused, with the same fault, for DEMO-EA from anywhere...
    let locked = post_from(&gateway, &bystander, message(4, "DEMO-EA", DEMO_SLEUTEL));
    crate::support::check("klantcode locked out", &locked, &wrong_key);
    assert_eq!(
        fault_of(&locked).faultstring,
        wrong_fault,
        "a lockout looks like a wrong key"
    );
    // ...and for any klantcode from 127.0.0.2.
    let reply = post_from(
        &gateway,
        &attacker,
        message(5, "EA-ANDER", "andere-sleutel-2026"),
    );
    crate::support::check("address locked out", &reply, &wrong_key);
    // Another klantcode from another address is not affected.
    let reply = post_from(
        &gateway,
        &bystander,
        message(6, "EA-ANDER", "andere-sleutel-2026"),
    );
    crate::support::check("bystander", &reply, &Expect::Accepted);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the checks above ran inside the lockout"
    );
    assert!(gateway.wait_for_log("locking out").contains("DEMO-EA"));
    // One attempt is back after lockout / max_failures = 1 s.
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(started.elapsed()));
    let reply = post_from(&gateway, &bystander, message(7, "DEMO-EA", DEMO_SLEUTEL));
    crate::support::check("after the lockout", &reply, &Expect::Accepted);
    // No receipt for the locked-out requests: they never reached the key check or the store.
    assert_eq!(count(&gateway.db(), "SELECT count(*) FROM receipts"), 2);

    // The receipts API shares the limit (from a fresh address, as 127.0.0.2 is still limited).
    let attacker = client_from("127.0.0.6");
    let receipts = format!("{}/api/v1/receipts/none", gateway.base_url);
    for _ in 0..3 {
        let reply = gateway.send(attacker.get(&receipts).basic_auth("EA-ANDER", Some("fout")));
        assert_eq!(reply.status, 401);
    }
    let reply = gateway.send(
        bystander
            .get(&receipts)
            .basic_auth("EA-ANDER", Some("andere-sleutel-2026")),
    );
    assert_eq!(
        reply.status, 401,
        "EA-ANDER is locked out on the receipts API too"
    );
}

#[test]
fn admin_tokens_are_rate_limited_per_address() {
    let token = "admin-token-rate-limit-0000000";
    let gateway = spawn_gateway(
        Options::default()
            .env("UWLR_ADMIN_TOKEN", token)
            .env("UWLR_AUTH_MAX_FAILURES", "2")
            .env("UWLR_AUTH_LOCKOUT_SECS", "60"),
    );
    let admin = format!("{}/api/v1/admin/leerlingen", gateway.base_url);
    let attacker = client_from("127.0.0.4");
    for guess in ["guess-one-000000000", "guess-two-000000000"] {
        let reply = gateway.send(
            attacker
                .post(&admin)
                .bearer_auth(guess)
                .body("99XX01,LL9001,,\n"),
        );
        assert_eq!(reply.status, 401);
    }
    let reply = gateway.send(
        attacker
            .post(&admin)
            .bearer_auth(token)
            .body("99XX01,LL9001,,\n"),
    );
    assert_eq!(
        reply.status, 401,
        "the address is locked out, even with the right token"
    );
    let reply = gateway.send(
        client_from("127.0.0.5")
            .post(&admin)
            .bearer_auth(token)
            .body("99XX01,LL9001,,\n"),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn reader_tokens_are_rate_limited_per_address() {
    let gateway = spawn_gateway(
        Options::default()
            .env("UWLR_AUTH_MAX_FAILURES", "2")
            .env("UWLR_AUTH_LOCKOUT_SECS", "60"),
    );
    let added = gateway
        .cli(&[
            "readers",
            "add",
            "las-a",
            "--school",
            "99XX01",
            "--scope",
            "las",
            "--mandate",
            "DPA-R",
        ])
        .success();
    let token = added
        .stdout
        .lines()
        .last()
        .expect("the token")
        .trim()
        .to_string();
    let feed = format!(
        "{}/api/v1/schools/99XX01/toetsafnames?since=0",
        gateway.base_url
    );
    let attacker = client_from("127.0.0.7");
    for guess in ["wrong-token-1", "wrong-token-2"] {
        assert_eq!(
            gateway.send(attacker.get(&feed).bearer_auth(guess)).status,
            401
        );
    }
    let locked = gateway.send(attacker.get(&feed).bearer_auth(&token));
    assert_eq!(
        locked.status, 401,
        "the address is locked out, even with the right token: {}",
        locked.body
    );
    let other = gateway.send(client_from("127.0.0.8").get(&feed).bearer_auth(&token));
    assert_eq!(other.status, 200, "{}", other.body);
}

#[test]
fn every_admin_action_leaves_an_audit_entry() {
    let token = "admin-token-audit-000000000000";
    let gateway = spawn_gateway(Options::default().env("UWLR_ADMIN_TOKEN", token));
    let roster = gateway.scratch().join("roster.csv");
    std::fs::write(
        &roster,
        "school,leerlingid,eckid,naam\n99XX01,LL9100,,Nieuw\n",
    )
    .unwrap();
    let steps: [&[&str]; 7] = [
        &[
            "clients",
            "add",
            "EA-AUDIT",
            "--klantnaam",
            "Audit Uitgever",
            "--key",
            "audit-sleutel-2026",
        ],
        &[
            "schools",
            "activate",
            "99XX02",
            "--klantcode",
            "EA-AUDIT",
            "--mandate",
            "DPA-AUDIT",
        ],
        &["schools", "deactivate", "99XX02", "--klantcode", "EA-AUDIT"],
        &["clients", "revoke", "EA-AUDIT"],
        &[
            "lrs",
            "add",
            "audit-lrs",
            "--url",
            "http://127.0.0.1:9/xAPI/statements",
        ],
        &["outbox", "retry"],
        &["lrs", "remove", "audit-lrs"],
    ];
    for args in steps {
        gateway.cli(args).success();
    }
    gateway
        .cli(&["leerlingen", "import", roster.to_str().unwrap()])
        .success();
    let admin = format!("{}/api/v1/admin/leerlingen", gateway.base_url);
    let reply = gateway.send(
        gateway
            .http
            .post(&admin)
            .bearer_auth(token)
            .body("99XX01,LL9101,,\n"),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let added = gateway
        .cli(&[
            "readers",
            "add",
            "audit-reader",
            "--school",
            "99XX01",
            "--scope",
            "las",
            "--mandate",
            "DPA-R1",
        ])
        .success();
    let reader_token = added
        .stdout
        .lines()
        .last()
        .expect("the token")
        .trim()
        .to_string();
    let reader_steps: [&[&str]; 3] = [
        &[
            "readers",
            "grant",
            "audit-reader",
            "--school",
            "99XX02",
            "--mandate",
            "DPA-R2",
        ],
        &["readers", "withdraw", "audit-reader", "--school", "99XX02"],
        &["readers", "revoke", "audit-reader"],
    ];
    for args in reader_steps {
        gateway.cli(args).success();
    }
    let backup = gateway.scratch().join("audit-backup.sqlite");
    gateway.cli(&["backup", backup.to_str().unwrap()]).success();

    let actions = rows(
        &gateway.db(),
        "SELECT actor || ' ' || action FROM audit ORDER BY id",
    );
    for expected in [
        "cli clients.add",
        "cli schools.activate",
        "cli schools.deactivate",
        "cli clients.revoke",
        "cli lrs.add",
        "cli outbox.retry",
        "cli lrs.remove",
        "cli leerlingen.import",
        "admin-api leerlingen.import",
        "cli backup",
        "cli readers.add",
        "cli readers.grant",
        "cli readers.withdraw",
        "cli readers.revoke",
    ] {
        assert!(
            actions.iter().any(|action| action == expected),
            "no audit entry {expected:?} in {actions:?}"
        );
    }
    let details = rows(&gateway.db(), "SELECT detail FROM audit").join("\n");
    assert!(
        !details.contains("audit-sleutel-2026"),
        "the audit log holds a key: {details}"
    );
    assert!(
        !details.contains(&reader_token),
        "the audit log holds a reader token: {details}"
    );
}
