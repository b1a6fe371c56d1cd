//! Keys, tokens and LRS passwords never reach the logs; keys never reach the database file.

use crate::support::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::support::{send_and_check, spawn_gateway, Expect, Options};

#[test]
fn logs_never_contain_the_autorisatiesleutel() {
    let key = "zichtbaar-geheim-LOGTEST-4711";
    let wrong_key = "fout-geheim-LOGTEST-0815";
    let admin_token = "admin-geheim-LOGTEST-0000000000";
    let gateway = spawn_gateway(
        Options::default()
            .env("UWLR_LOG", "debug")
            .env("UWLR_ADMIN_TOKEN", admin_token),
    );
    gateway
        .cli(&[
            "clients",
            "add",
            "EA-LOG",
            "--klantnaam",
            "Log Uitgever",
            "--key",
            key,
        ])
        .success();
    gateway
        .cli(&[
            "schools",
            "activate",
            "99XX01",
            "--klantcode",
            "EA-LOG",
            "--mandate",
            "DPA-LOG",
        ])
        .success();
    let message = |seconds: u32, sleutel: &str, leerling: &str| {
        Message::demo(&aanmaakdatum(seconds))
            .client("EA-LOG", "Log Uitgever", sleutel)
            .afname(
                leerling,
                vec![Resultaat::score(&format!("LOG-{seconds}"), "LOG-T", 5)],
            )
            .toets(Toets::new("LOG-T"))
    };
    send_and_check(
        &gateway,
        "accepted",
        message(1, key, "LL0001").envelope(),
        &Expect::Accepted,
    );
    send_and_check(
        &gateway,
        "wrong key",
        message(2, wrong_key, "LL0001").envelope(),
        &Expect::fault("Client.AutorisatieOngeldig", &["UWLR-AUTORISATIE"]),
    );
    send_and_check(
        &gateway,
        "rejected after authentication",
        message(3, key, "ONBEKEND").envelope(),
        &Expect::fault("Client.LeerlingOngeldig", &["UWLR-LEERLING"]),
    );
    let receipts = format!("{}/api/v1/receipts/x", gateway.base_url);
    gateway.send(gateway.http.get(&receipts).basic_auth("EA-LOG", Some(key)));
    gateway.send(
        gateway
            .http
            .get(&receipts)
            .basic_auth("EA-LOG", Some(wrong_key)),
    );
    let admin = format!("{}/api/v1/admin/leerlingen", gateway.base_url);
    gateway.send(
        gateway
            .http
            .post(&admin)
            .bearer_auth(admin_token)
            .body("99XX01,LOG-1,,\n"),
    );

    // The last request's log line proves the log is written up to here.
    let log = gateway.wait_for_log("UWLR-LEERLING");
    for secret in [key, wrong_key, admin_token] {
        assert!(!log.contains(secret), "the log shows {secret}:\n{log}");
    }
    assert!(
        log.contains("EA-LOG"),
        "the log names the client, so it did log these requests"
    );
    assert!(
        !log.contains('\u{1b}'),
        "a log that is not a terminal has no colour codes"
    );
    assert!(
        log.contains("outcome=\"rejected\""),
        "fields are readable as written: {log}"
    );

    // Nor is any key stored in clear in the database (or its WAL).
    for file in [
        "gateway.sqlite",
        "gateway.sqlite-wal",
        "xapi.sqlite",
        "xapi.sqlite-wal",
    ] {
        let path = gateway.data_dir.join(file);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for secret in [key, wrong_key, admin_token, crate::support::DEMO_SLEUTEL] {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes()),
                "{file} holds {secret} in clear"
            );
        }
    }
}

#[test]
fn lrs_passwords_and_tokens_never_reach_the_debug_log() {
    let password = "lrs-wachtwoord-LOGTEST-9911";
    let admin_token = "admin-geheim-LOGTEST-1111111111";
    let gateway = spawn_gateway(
        Options::default()
            .env("UWLR_LOG", "debug")
            .env("UWLR_ADMIN_TOKEN", admin_token)
            .env("UWLR_XAPI_POLL_INTERVAL_MS", "100")
            .env("UWLR_XAPI_BASE_BACKOFF_MS", "50")
            .env("UWLR_XAPI_MAX_BACKOFF_SECS", "1"),
    );
    // An LRS that refuses connections: the worker retries and logs at debug level.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/xAPI/statements", closed.local_addr().unwrap());
    drop(closed);
    gateway
        .cli(&[
            "lrs",
            "add",
            "geheim",
            "--url",
            &url,
            "--username",
            "gateway",
            "--password",
            password,
        ])
        .success();
    send_and_check(
        &gateway,
        "accepted",
        Message::demo(&aanmaakdatum(1))
            .afname("LL0001", vec![Resultaat::score("LRSLOG-1", "LRSLOG-T", 4)])
            .toets(Toets::new("LRSLOG-T"))
            .envelope(),
        &Expect::Accepted,
    );
    let admin = format!("{}/api/v1/admin/leerlingen", gateway.base_url);
    gateway.send(
        gateway
            .http
            .post(&admin)
            .bearer_auth(admin_token)
            .body("99XX01,LL9002,,\n"),
    );
    gateway.wait_for_log("geheim");
    // Give the worker a few failed deliveries.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let log = gateway.stderr();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    for secret in [
        password,
        admin_token,
        crate::support::DEMO_SLEUTEL,
        "Z2F0ZXdheTpscnMtd2FjaHR3b29yZC1MT0dURVNULTk5MTE",
    ] {
        assert!(!log.contains(secret), "the log shows {secret}:\n{log}");
    }
    let listed = gateway.cli(&["lrs", "list"]).success();
    assert!(!listed.stdout.contains(password) && !listed.stderr.contains(password));
}
