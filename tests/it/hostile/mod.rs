//! Hostile input against the real binary: every class of issue 8 gets a clear SOAP fault or 4xx within 5 s, bounded memory, no file or network access, and the gateway keeps serving.
//!
//! Every test starts its own gateway (the harness's `spawn_gateway`)
//! with short header and body timeouts, measures the server's peak resident memory
//! (`VmHWM` in /proc) around the attack, and sends a valid message afterwards (and,
//! for the slow attacks, meanwhile).

mod preauth;

use crate::harness;
use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::DEMO_KLANTNAAM;
use crate::harness::{fault_of, Expect, Gateway, Options};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The longest any hostile request may take to be answered.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// The most the gateway's peak resident memory may grow during one attack.
const EXTRA_MEMORY_KB: u64 = 64 * 1024;

/// A gateway with timeouts short enough to test: 2 s for headers, 2 s of body silence, 3 s for a whole body.
fn hostile_gateway() -> Gateway {
    crate::harness::spawn_gateway(
        Options::default()
            .env("UWLR_HEADER_TIMEOUT_SECS", "2")
            .env("UWLR_BODY_IDLE_TIMEOUT_SECS", "2")
            .env("UWLR_BODY_TIMEOUT_SECS", "3"),
    )
}

/// The peak resident set size of a process, in KiB.
fn peak_memory_kb(pid: u32) -> u64 {
    proc_status_kb(pid, "VmHWM:")
}

/// A memory figure (`VmHWM:`, `VmRSS:`) of a process from /proc, in KiB.
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
}

/// Sends a valid drip message (number `sequence`, unique per gateway) and insists it is accepted.
fn valid_message_is_accepted(gateway: &Gateway, sequence: u32) {
    let message = Message::demo(&aanmaakdatum(sequence))
        .afname(
            "LL0001",
            vec![Resultaat::score(
                &format!("HOSTILE-{sequence}"),
                "HOSTILE-T",
                3,
            )],
        )
        .toets(Toets::new("HOSTILE-T"));
    let started = Instant::now();
    let reply = gateway.post(message.envelope());
    crate::harness::check(
        &format!("valid message {sequence}"),
        &reply,
        &Expect::Accepted,
    );
    assert!(
        started.elapsed() < ANSWER_WITHIN,
        "the valid message took {:?}",
        started.elapsed()
    );
}

/// What came back over a raw connection.
#[derive(Debug)]
struct RawReply {
    /// None when the connection closed (or the deadline passed) without an answer.
    status: Option<u16>,
    body: String,
    elapsed: Duration,
}

/// Request headers for a SOAP call with the given Content-Length line (or none).
fn request_head(content_length: Option<u64>) -> String {
    let mut head = String::from(concat!(
        "POST /uwlr/leerresultaten HTTP/1.1\r\n",
        "Host: 127.0.0.1\r\n",
        "Content-Type: text/xml; charset=utf-8\r\n",
        "SOAPAction: \"BrengLeerresultaten\"\r\n",
        "Connection: close\r\n",
    ));
    if let Some(length) = content_length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Opens a connection, lets `send` write on a thread of its own, and reads the answer
/// meanwhile (a server may answer before the body is complete) until the connection
/// closes, the answer is complete, or `wait` has passed.
fn exchange(
    address: SocketAddr,
    wait: Duration,
    send: impl FnOnce(&mut TcpStream) + Send + 'static,
) -> RawReply {
    let stream = TcpStream::connect(address).expect("connect to the gateway");
    exchange_on(stream, wait, send)
}

/// `exchange` over a connection already open (e.g. from another source address).
fn exchange_on(
    mut stream: TcpStream,
    wait: Duration,
    send: impl FnOnce(&mut TcpStream) + Send + 'static,
) -> RawReply {
    let mut writer = stream.try_clone().expect("clone the stream");
    let started = Instant::now();
    let sender = std::thread::spawn(move || send(&mut writer));
    let (status, text) = answer_on(&mut stream, wait.saturating_sub(started.elapsed()));
    let elapsed = started.elapsed();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    RawReply {
        status,
        body,
        elapsed,
    }
}

/// The status and body of whatever answer a raw connection received within `wait`.
fn answer_on(stream: &mut TcpStream, wait: Duration) -> (Option<u16>, String) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while started.elapsed() < wait && !answer_is_complete(&received) {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(count) => received.extend_from_slice(&chunk[..count]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    (status, text)
}

/// Whether `received` holds a status line, headers and a body of the announced length.
fn answer_is_complete(received: &[u8]) -> bool {
    let text = String::from_utf8_lossy(received);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    length.is_some_and(|length| body.len() >= length)
}

/// Writes `body` in 256 KiB pieces, stopping quietly when the server has closed.
fn write_all_quietly(stream: &mut TcpStream, body: &[u8]) {
    for piece in body.chunks(256 * 1024) {
        if stream.write_all(piece).is_err() {
            return;
        }
    }
}

/// Posts `body` with an honest Content-Length.
fn post_raw(address: SocketAddr, body: Vec<u8>) -> RawReply {
    let head = request_head(Some(body.len() as u64));
    exchange(address, ANSWER_WITHIN * 2, move |stream| {
        if stream.write_all(head.as_bytes()).is_ok() {
            write_all_quietly(stream, &body);
        }
    })
}

/// The server never panicked (a panic in a request task would not show in its answers).
#[track_caller]
fn assert_no_panic(gateway: &Gateway, context: &str) {
    let log = gateway.stderr();
    assert!(
        !log.contains("panicked"),
        "{context}: the gateway panicked:\n{log}"
    );
}

/// A clear refusal: a 4xx, or a 500 carrying a SOAP fault; never a 200, never silence.
/// Returns the fault's rule codes (empty for a plain 4xx).
#[track_caller]
fn assert_refused(context: &str, reply: &RawReply) -> Vec<String> {
    let status = reply
        .status
        .unwrap_or_else(|| panic!("{context}: no answer within {:?}", reply.elapsed));
    assert!(
        reply.elapsed < ANSWER_WITHIN,
        "{context}: answered after {:?} (HTTP {status})",
        reply.elapsed
    );
    assert!(
        (400..=500).contains(&status),
        "{context}: HTTP {status}: {}",
        reply.body
    );
    if status == 500 || reply.body.contains("Envelope") {
        let wrapped = crate::harness::Reply {
            status,
            content_type: String::new(),
            receipt_id: None,
            body: reply.body.clone(),
        };
        fault_of(&wrapped).rules
    } else {
        Vec::new()
    }
}

/// Runs one attack: memory is measured around it, the answer must be a clear refusal
/// naming `rule` (when given), and a valid message is accepted afterwards.
#[track_caller]
fn attack(context: &str, body: Vec<u8>, rule: Option<&str>) -> (Gateway, RawReply) {
    let gateway = hostile_gateway();
    valid_message_is_accepted(&gateway, 1);
    let before = peak_memory_kb(gateway.pid());
    let address = gateway.address();
    let attacker = std::thread::spawn(move || post_raw(address, body));
    // Another sender is served while the attack is in flight...
    valid_message_is_accepted(&gateway, 2);
    let reply = attacker.join().expect("attacker");
    let rules = assert_refused(context, &reply);
    if let Some(rule) = rule {
        assert!(
            rules.iter().any(|found| found == rule),
            "{context}: expected {rule}, got {rules:?}: {}",
            reply.body
        );
    }
    let after = peak_memory_kb(gateway.pid());
    assert!(
        after.saturating_sub(before) < EXTRA_MEMORY_KB,
        "{context}: peak memory grew from {before} kB to {after} kB"
    );
    // ...and afterwards.
    valid_message_is_accepted(&gateway, 3);
    assert_no_panic(&gateway, context);
    (gateway, reply)
}

/// The demo message with `prolog` (a DOCTYPE) between the XML declaration and the root,
/// and `&reference;` as the klantnaam, where an expanded entity would surface.
fn with_doctype(prolog: &str, reference: &str) -> Vec<u8> {
    let message = Message::demo(&aanmaakdatum(10))
        .afname(
            "LL0001",
            vec![Resultaat::score("DOCTYPE-1", "HOSTILE-T", 3)],
        )
        .toets(Toets::new("HOSTILE-T"));
    let text = String::from_utf8(message.envelope()).expect("UTF-8");
    let text = text.replacen("?>\n", &format!("?>\n{prolog}\n"), 1);
    text.replacen(
        "<aut:klantnaam>Demo Uitgever<",
        &format!("<aut:klantnaam>{reference}<"),
        1,
    )
    .into_bytes()
}

/// A listener standing in for an attacker's server; the test checks it was never contacted.
struct Tripwire {
    listener: TcpListener,
}

impl Tripwire {
    fn new() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the tripwire");
        listener
            .set_nonblocking(true)
            .expect("nonblocking tripwire");
        Tripwire { listener }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "http://{}/{path}",
            self.listener.local_addr().expect("tripwire address")
        )
    }

    #[track_caller]
    fn assert_untouched(&self, context: &str) {
        std::thread::sleep(Duration::from_millis(500));
        match self.listener.accept() {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("{context}: the gateway connected to the tripwire from {peer}"),
            Err(error) => panic!("{context}: tripwire failed: {error}"),
        }
    }
}

#[test]
fn external_entity_pointing_at_a_file_is_refused_unread() {
    let canary_dir = tempfile::tempdir().expect("temp dir");
    let canary = canary_dir.path().join("canary.txt");
    let secret = format!("CANARY-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(&canary, &secret).expect("write the canary");
    let prolog = format!(
        "<!DOCTYPE soapenv:Envelope [<!ENTITY xxe SYSTEM \"file://{}\">]>",
        canary.display()
    );
    let (gateway, reply) = attack(
        "file entity",
        with_doctype(&prolog, "&xxe;"),
        Some("UWLR-BERICHT"),
    );
    assert!(
        !reply.body.contains(&secret),
        "the fault shows the file: {}",
        reply.body
    );
    assert!(
        !gateway.stderr().contains(&secret),
        "the log shows the file"
    );
    let bytes = gateway.stored_bytes();
    assert!(!bytes
        .windows(secret.len())
        .any(|window| window == secret.as_bytes()));
}

#[test]
fn external_entity_pointing_at_a_url_is_refused_without_a_connection() {
    let tripwire = Tripwire::new();
    let prolog = format!(
        "<!DOCTYPE soapenv:Envelope [<!ENTITY xxe SYSTEM \"{}\">]>",
        tripwire.url("xxe")
    );
    attack(
        "http entity",
        with_doctype(&prolog, "&xxe;"),
        Some("UWLR-BERICHT"),
    );
    tripwire.assert_untouched("http entity");
}

#[test]
fn external_dtd_is_refused_without_a_connection() {
    let tripwire = Tripwire::new();
    let prolog = format!(
        "<!DOCTYPE soapenv:Envelope SYSTEM \"{}\">",
        tripwire.url("evil.dtd")
    );
    attack(
        "external DTD",
        with_doctype(&prolog, DEMO_KLANTNAAM),
        Some("UWLR-BERICHT"),
    );
    tripwire.assert_untouched("external DTD");
}

#[test]
fn parameter_entities_are_refused_without_a_connection() {
    let tripwire = Tripwire::new();
    let prolog = format!(
        "<!DOCTYPE soapenv:Envelope [<!ENTITY % remote SYSTEM \"{}\"> %remote; <!ENTITY % inner \"<!ENTITY leak 'x'>\"> %inner;]>",
        tripwire.url("p.dtd")
    );
    attack(
        "parameter entities",
        with_doctype(&prolog, "&leak;"),
        Some("UWLR-BERICHT"),
    );
    tripwire.assert_untouched("parameter entities");
}

#[test]
fn billion_laughs_is_refused() {
    let mut prolog = String::from("<!DOCTYPE soapenv:Envelope [<!ENTITY lol0 \"lol\">");
    for level in 1..=9 {
        let previous = format!("&lol{};", level - 1);
        prolog.push_str(&format!("<!ENTITY lol{level} \"{}\">", previous.repeat(10)));
    }
    prolog.push_str("]>");
    attack(
        "billion laughs",
        with_doctype(&prolog, "&lol9;"),
        Some("UWLR-BERICHT"),
    );
}

#[test]
fn quadratic_blowup_is_refused() {
    let prolog = format!(
        "<!DOCTYPE soapenv:Envelope [<!ENTITY big \"{}\">]>",
        "x".repeat(50_000)
    );
    let references = "&big;".repeat(50_000);
    attack(
        "quadratic blow-up",
        with_doctype(&prolog, &references),
        Some("UWLR-BERICHT"),
    );
}

/// `<n>` opened `depth` times and closed again.
fn nested(depth: usize) -> String {
    format!("{}x{}", "<n>".repeat(depth), "</n>".repeat(depth))
}

#[test]
fn deep_nesting_is_refused_wherever_it_is() {
    let deep = nested(10_000);
    let base = String::from_utf8(
        Message::demo(&aanmaakdatum(10))
            .afname("LL0001", vec![Resultaat::score("DEEP-1", "HOSTILE-T", 3)])
            .toets(Toets::new("HOSTILE-T"))
            .envelope(),
    )
    .expect("UTF-8");
    let places = [
        (
            "header",
            base.replacen("</soapenv:Header>", &format!("{deep}</soapenv:Header>"), 1),
        ),
        (
            "school",
            base.replacen("</lr:school>", &format!("{deep}</lr:school>"), 1),
        ),
        (
            "resultaat",
            base.replacen("</lr:resultaat>", &format!("{deep}</lr:resultaat>"), 1),
        ),
        (
            "toets",
            base.replacen("</lr:toets>", &format!("{deep}</lr:toets>"), 1),
        ),
    ];
    for (place, body) in places {
        assert_ne!(body, base, "{place}: the nesting was not placed");
        attack(
            &format!("10,000-deep nesting in the {place}"),
            body.into_bytes(),
            None,
        );
    }
}

/// The demo message with `inside` put into the first resultaat.
fn with_resultaat_content(inside: &[u8]) -> Vec<u8> {
    let base = Message::demo(&aanmaakdatum(10))
        .afname("LL0001", vec![Resultaat::score("BIG-1", "HOSTILE-T", 3)])
        .toets(Toets::new("HOSTILE-T"))
        .envelope();
    let marker = b"</lr:resultaat>";
    let at = base
        .windows(marker.len())
        .position(|window| window == marker)
        .expect("a resultaat");
    let mut body = Vec::with_capacity(base.len() + inside.len());
    body.extend_from_slice(&base[..at]);
    body.extend_from_slice(inside);
    body.extend_from_slice(&base[at..]);
    body
}

#[test]
fn a_100_mb_text_node_is_refused() {
    let mut inside = b"<lr:commentaar>".to_vec();
    inside.resize(inside.len() + 100 * 1024 * 1024, b'x');
    inside.extend_from_slice(b"</lr:commentaar>");
    attack(
        "100 MB text node",
        with_resultaat_content(&inside),
        Some("UWLR-BERICHT"),
    );
}

#[test]
fn a_million_attributes_are_refused() {
    let mut inside = b"<lr:commentaar".to_vec();
    for index in 0..1_000_000 {
        inside.extend_from_slice(format!(" a{index}=\"1\"").as_bytes());
    }
    inside.extend_from_slice(b"/>");
    attack(
        "a million attributes",
        with_resultaat_content(&inside),
        Some("UWLR-BERICHT"),
    );
}

#[test]
fn invalid_utf8_is_refused() {
    let base = Message::demo(&aanmaakdatum(10))
        .afname("LL0001", vec![Resultaat::score("UTF8-1", "HOSTILE-T", 3)])
        .toets(Toets::new("HOSTILE-T"))
        .envelope();
    let replace = |marker: &[u8]| {
        let at = base
            .windows(marker.len())
            .position(|window| window == marker)
            .expect("marker");
        let mut body = base[..at].to_vec();
        body.extend_from_slice(&[0xC3, 0x28, 0xFF, 0xFE]);
        body.extend_from_slice(&base[at..]);
        body
    };
    attack(
        "invalid UTF-8 in the header",
        replace(b"</aut:klantnaam>"),
        Some("UWLR-BERICHT"),
    );
    attack(
        "invalid UTF-8 in a result",
        replace(b"</lr:toetscode>"),
        Some("UWLR-BERICHT"),
    );
}

fn utf16(text: &str, bom: bool) -> Vec<u8> {
    let mut bytes = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

#[test]
fn utf16_with_and_without_bom_is_refused() {
    let text = String::from_utf8(
        Message::demo(&aanmaakdatum(10))
            .afname("LL0001", vec![Resultaat::score("UTF16-1", "HOSTILE-T", 3)])
            .toets(Toets::new("HOSTILE-T"))
            .envelope(),
    )
    .expect("UTF-8")
    .replacen("encoding=\"UTF-8\"", "encoding=\"UTF-16\"", 1);
    for bom in [true, false] {
        let (_, reply) = attack(
            &format!("UTF-16 (BOM {bom})"),
            utf16(&text, bom),
            Some("UWLR-BERICHT"),
        );
        assert!(
            reply.body.contains("UTF-16"),
            "the fault names the encoding: {}",
            reply.body
        );
    }
}

#[test]
fn a_truncated_body_is_refused() {
    let whole = Message::demo(&aanmaakdatum(10))
        .afname("LL0001", vec![Resultaat::score("TRUNC-1", "HOSTILE-T", 3)])
        .toets(Toets::new("HOSTILE-T"))
        .envelope();
    for cut in [whole.len() / 3, whole.len() / 2, whole.len() - 20] {
        attack(
            &format!("truncated at {cut}"),
            whole[..cut].to_vec(),
            Some("UWLR-BERICHT"),
        );
    }
}

#[test]
fn a_content_length_shorter_than_the_body_is_refused() {
    let gateway = hostile_gateway();
    let whole = Message::demo(&aanmaakdatum(10))
        .afname("LL0001", vec![Resultaat::score("SHORT-1", "HOSTILE-T", 3)])
        .toets(Toets::new("HOSTILE-T"))
        .envelope();
    let head = request_head(Some(whole.len() as u64 / 2));
    let reply = exchange(gateway.address(), ANSWER_WITHIN * 2, move |stream| {
        let _ = stream.write_all(head.as_bytes());
        write_all_quietly(stream, &whole);
    });
    let rules = assert_refused("short Content-Length", &reply);
    assert!(rules.iter().any(|rule| rule == "UWLR-BERICHT"), "{rules:?}");
    valid_message_is_accepted(&gateway, 2);
    assert_eq!(
        crate::harness::count(
            &gateway.db(),
            "SELECT count(*) FROM toetsafnames WHERE afname_key = 'SHORT-1'"
        ),
        0
    );
    assert_no_panic(
        &gateway,
        "a_content_length_shorter_than_the_body_is_refused",
    );
}

#[test]
fn a_content_length_longer_than_the_body_is_refused() {
    let gateway = hostile_gateway();
    let whole = Message::demo(&aanmaakdatum(10))
        .afname("LL0001", vec![Resultaat::score("LONG-1", "HOSTILE-T", 3)])
        .toets(Toets::new("HOSTILE-T"))
        .envelope();
    // The client keeps the connection open and silent: the body idle timeout answers.
    let head = request_head(Some(whole.len() as u64 * 2));
    let body = whole.clone();
    let reply = exchange(gateway.address(), ANSWER_WITHIN * 2, move |stream| {
        let _ = stream.write_all(head.as_bytes());
        write_all_quietly(stream, &body);
        std::thread::sleep(ANSWER_WITHIN);
    });
    assert_refused("long Content-Length, connection kept open", &reply);
    // The client closes its side after the short body: the broken body is refused at once.
    let head = request_head(Some(whole.len() as u64 * 2));
    let reply = exchange(gateway.address(), ANSWER_WITHIN * 2, move |stream| {
        let _ = stream.write_all(head.as_bytes());
        write_all_quietly(stream, &whole);
        let _ = stream.shutdown(std::net::Shutdown::Write);
    });
    assert!(
        reply.status.is_none()
            || assert_refused("long Content-Length, then EOF", &reply).len() < 1000,
        "never a 200"
    );
    assert!(reply.elapsed < ANSWER_WITHIN, "{:?}", reply.elapsed);
    valid_message_is_accepted(&gateway, 2);
    assert_eq!(
        crate::harness::count(
            &gateway.db(),
            "SELECT count(*) FROM toetsafnames WHERE afname_key = 'LONG-1'"
        ),
        0
    );
    assert_no_panic(&gateway, "a_content_length_longer_than_the_body_is_refused");
}

#[test]
fn slowloris_headers_are_cut_off_while_others_are_served() {
    let gateway = hostile_gateway();
    let before = peak_memory_kb(gateway.pid());
    let attackers: Vec<_> = (0..50)
        .map(|_| {
            exchange_in_background(gateway.address(), |stream| {
                let head = request_head(Some(10));
                for byte in head.as_bytes() {
                    if stream.write_all(&[*byte]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    valid_message_is_accepted(&gateway, 1);
    for attacker in attackers {
        let reply = attacker.join().expect("attacker");
        // hyper closes a connection whose headers are late, with or without a 408.
        assert!(
            reply
                .status
                .is_none_or(|status| (400..500).contains(&status)),
            "slow headers got {:?}",
            reply.status
        );
        assert!(
            reply.elapsed < ANSWER_WITHIN,
            "slow headers held the connection {:?}",
            reply.elapsed
        );
    }
    assert!(peak_memory_kb(gateway.pid()) - before < EXTRA_MEMORY_KB);
    valid_message_is_accepted(&gateway, 2);
    assert_no_panic(
        &gateway,
        "slowloris_headers_are_cut_off_while_others_are_served",
    );
}

fn exchange_in_background(
    address: SocketAddr,
    send: impl FnOnce(&mut TcpStream) + Send + 'static,
) -> std::thread::JoinHandle<RawReply> {
    std::thread::spawn(move || exchange(address, ANSWER_WITHIN * 2, send))
}

#[test]
fn slowloris_bodies_are_cut_off_while_others_are_served() {
    let gateway = hostile_gateway();
    let before = peak_memory_kb(gateway.pid());
    let whole = Message::demo(&aanmaakdatum(10))
        .afname("LL0001", vec![Resultaat::score("SLOW-1", "HOSTILE-T", 3)])
        .toets(Toets::new("HOSTILE-T"))
        .envelope();
    // One byte every 500 ms never trips the 2 s idle timeout; the 3 s body deadline does.
    let attackers: Vec<_> = (0..50)
        .map(|_| {
            let whole = whole.clone();
            exchange_in_background(gateway.address(), move |stream| {
                if stream
                    .write_all(request_head(Some(whole.len() as u64)).as_bytes())
                    .is_err()
                {
                    return;
                }
                for byte in &whole {
                    if stream.write_all(&[*byte]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    valid_message_is_accepted(&gateway, 1);
    for attacker in attackers {
        let reply = attacker.join().expect("attacker");
        let rules = assert_refused("slow body", &reply);
        assert_eq!(rules, ["UWLR-BERICHT"], "{}", reply.body);
    }
    assert!(peak_memory_kb(gateway.pid()) - before < EXTRA_MEMORY_KB);
    valid_message_is_accepted(&gateway, 2);
    assert_eq!(
        crate::harness::count(
            &gateway.db(),
            "SELECT count(*) FROM toetsafnames WHERE afname_key = 'SLOW-1'"
        ),
        0
    );
    assert_no_panic(
        &gateway,
        "slowloris_bodies_are_cut_off_while_others_are_served",
    );
}

#[test]
fn thousands_of_idle_connections_do_not_stop_the_service() {
    // Without the per-address cap, so that the idle connections exceed the global one
    // (the per-address cap has tests of its own).
    let gateway = crate::harness::spawn_gateway(
        Options::default()
            .env("UWLR_HEADER_TIMEOUT_SECS", "2")
            .env("UWLR_BODY_IDLE_TIMEOUT_SECS", "2")
            .env("UWLR_BODY_TIMEOUT_SECS", "3")
            .env("UWLR_MAX_CONNECTIONS_PER_ADDRESS", "0"),
    );
    valid_message_is_accepted(&gateway, 1);
    let before = peak_memory_kb(gateway.pid());
    let idle: Vec<TcpStream> = (0..3000)
        .map(|_| TcpStream::connect(gateway.address()).expect("open an idle connection"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // 3000 idle connections exceed the 2048-connection cap; the header timeout frees
    // the slots, so a real sender still gets through within the deadline.
    valid_message_is_accepted(&gateway, 2);
    // Every idle connection is closed by the gateway.
    let deadline = Instant::now() + Duration::from_secs(20);
    for mut connection in idle {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        connection
            .set_read_timeout(Some(left))
            .expect("read timeout");
        let mut byte = [0u8; 1];
        match connection.read(&mut byte) {
            Ok(0) => {}
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(error) => panic!("an idle connection stayed open: {error}"),
        }
    }
    assert!(
        peak_memory_kb(gateway.pid()) - before < EXTRA_MEMORY_KB,
        "3000 idle connections cost too much memory"
    );
    valid_message_is_accepted(&gateway, 3);
    assert_no_panic(
        &gateway,
        "thousands_of_idle_connections_do_not_stop_the_service",
    );
}
