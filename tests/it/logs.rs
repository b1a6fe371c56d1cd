//! Keys, tokens and LRS passwords never reach the logs; keys never reach the database file.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{send_and_check, spawn_gateway, Expect, Options};
use crate::harness::{DEMO_KLANTCODE, DEMO_KLANTNAAM};

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
    gateway.add_client_for_demo_school("EA-LOG", "Log Uitgever", key, "DPA-LOG", &[]);
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
    let bytes = gateway.stored_bytes();
    for secret in [key, wrong_key, admin_token, crate::harness::DEMO_SLEUTEL] {
        assert!(
            !bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes()),
            "the database holds {secret} in clear"
        );
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
        crate::harness::DEMO_SLEUTEL,
        "Z2F0ZXdheTpscnMtd2FjaHR3b29yZC1MT0dURVNULTk5MTE",
    ] {
        assert!(!log.contains(secret), "the log shows {secret}:\n{log}");
    }
    let listed = gateway.cli(&["lrs", "list"]).success();
    assert!(!listed.stdout.contains(password) && !listed.stderr.contains(password));
}

/// What an attacker wants the log to show as a line of its own.
const FORGED: &str =
    "1999-01-01T00:00:00.000000Z  INFO message accepted receipt=forged klantcode=DEMO-EA";

/// Issue 16 finding 8: a klantcode `EVIL&#10;…` produced a forged stand-alone log line.
/// Control characters reach the log through klantcode, klantnaam, leerlingid (XML
/// character references), the Basic-auth klantcode and the URL path; no line may be forged.
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn request_values_cannot_forge_a_log_line(format: &str) {
    let gateway = spawn_gateway(
        Options::default()
            .env("UWLR_LOG_FORMAT", format)
            .env("UWLR_AUTH_MAX_FAILURES", "2"),
    );
    let injected = |mark: &str| format!("EVIL-{mark}&#10;{FORGED}&#13;&#27;[2K&#x85;&#x2028;");
    let with = |message: Message, marks: &[(&str, String)]| {
        let mut envelope = String::from_utf8(message.envelope()).unwrap();
        for (mark, value) in marks {
            envelope = envelope.replace(mark, value);
        }
        envelope.into_bytes()
    };
    let base = |seconds: u32| {
        Message::demo(&aanmaakdatum(seconds))
            .afname("LL0001", vec![Resultaat::score("INJ-1", "INJ-T", 5)])
            .toets(Toets::new("INJ-T"))
    };
    // Each probe from an address of its own, so that no lockout hides the next one.
    let from = |address: &str| {
        reqwest::blocking::Client::builder()
            .local_address(address.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let post_from = |address: &str, body: Vec<u8>| {
        gateway.send(
            from(address)
                .post(&gateway.endpoint)
                .header("content-type", "text/xml; charset=utf-8")
                .header("soapaction", "\"BrengLeerresultaten\"")
                .body(body),
        )
    };
    // Unknown klantcode: the lockout warning names it, then the locked-out refusal does.
    for seconds in 1..=3 {
        let message = base(seconds).client("KLANTCODE-MARK", DEMO_KLANTNAAM, "fout");
        let reply = post_from(
            "127.0.0.20",
            with(message, &[("KLANTCODE-MARK", injected("klantcode"))]),
        );
        assert_eq!(reply.status, 500, "{}", reply.body);
    }
    let message = base(4).client(
        DEMO_KLANTCODE,
        "KLANTNAAM-MARK",
        crate::harness::DEMO_SLEUTEL,
    );
    post_from(
        "127.0.0.21",
        with(message, &[("KLANTNAAM-MARK", injected("klantnaam"))]),
    );
    let message = Message::demo(&aanmaakdatum(5))
        .afname("LEERLING-MARK", vec![Resultaat::score("INJ-2", "INJ-T", 5)])
        .toets(Toets::new("INJ-T"));
    post_from(
        "127.0.0.22",
        with(message, &[("LEERLING-MARK", injected("leerlingid"))]),
    );
    // A 100,000-character klantcode (the schema check that limits it comes after authentication).
    for seconds in 6..=7 {
        let long = format!("EVIL-long{}", "x".repeat(100_000));
        post_from(
            "127.0.0.24",
            base(seconds)
                .client(&long, DEMO_KLANTNAAM, "fout")
                .envelope(),
        );
    }
    // The receipts API: a Basic-auth klantcode can hold any byte.
    let receipts = format!("{}/api/v1/receipts/x", gateway.base_url);
    let klantcode = format!("EVIL-basic\n{FORGED}\r\u{1b}[2K");
    for _ in 0..2 {
        let reply = gateway.send(
            from("127.0.0.23")
                .get(&receipts)
                .basic_auth(&klantcode, Some("fout")),
        );
        assert_eq!(reply.status, 401);
    }
    // URL paths: percent-encoded, and raw bytes that are not ASCII (C1 NEL, U+2028).
    let path = format!(
        "/api/v1/schools/EVIL-path%0A{}/toetsafnames",
        FORGED.replace(' ', "%20")
    );
    gateway.send(gateway.http.get(format!("{}{path}", gateway.base_url)));
    let long_path = format!(
        "{}/api/v1/schools/EVIL-longpath{}/toetsafnames",
        gateway.base_url,
        "y".repeat(20_000)
    );
    gateway.send(gateway.http.get(long_path));
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(gateway.address()).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut request =
            b"GET /api/v1/schools/EVIL-raw\xc2\x85x\xe2\x80\xa8y/toetsafnames HTTP/1.1\r\n"
                .to_vec();
        request.extend_from_slice(b"Host: gateway\r\nConnection: close\r\n\r\n");
        stream.write_all(&request).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
    send_and_check(
        &gateway,
        "the last request",
        base(8).envelope(),
        &Expect::Accepted,
    );
    let log = gateway.wait_for_log("message accepted");
    for mark in [
        "EVIL-klantcode",
        "EVIL-basic",
        "EVIL-path",
        "EVIL-raw",
        "EVIL-long",
        "EVIL-longpath",
    ] {
        assert!(
            log.contains(mark),
            "the test is void: {mark} never reached the log:\n{log}"
        );
    }
    for line in log.lines() {
        assert!(
            line.len() < 4096,
            "a request value filled a log line ({format}): {} bytes",
            line.len()
        );
        assert!(
            !line.starts_with("1999-01-01"),
            "a forged log line ({format}):\n{log}"
        );
        assert!(
            !line.contains('\u{1b}')
                && !line.contains('\r')
                && !line.contains('\u{85}')
                && !line.contains('\u{2028}'),
            "a control character reached the log ({format}): {line:?}"
        );
        if format == "json" {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line:?}"));
        }
    }
}

#[test]
fn issue16_request_values_cannot_forge_a_text_log_line() {
    request_values_cannot_forge_a_log_line("text");
}

#[test]
fn issue16_request_values_cannot_forge_a_json_log_line() {
    request_values_cannot_forge_a_log_line("json");
}
