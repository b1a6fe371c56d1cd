//! Issue 16, findings 2-4: what a sender without credentials can hold (connection slots, memory, spool space), each attack against a legitimate sender served meanwhile.
//!
//! Attackers connect from other loopback addresses (127.0.0.2 and up) than the
//! legitimate sender (127.0.0.1), as they would from other hosts. Each test prints
//! its figures (`cargo test --test it hostile::preauth -- --nocapture`) before it checks them.

use super::*;
use socket2::{Domain, Socket, Type};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Opens a connection from `source`, any address of 127.0.0.0/8 (all of it is loopback on Linux).
fn connect_from(source: &str, address: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let source: std::net::IpAddr = source.parse().expect("a source address");
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect(&address.into())?;
    Ok(socket.into())
}

/// The resident set size of a process now, in KiB.
fn resident_kb(pid: u32) -> u64 {
    proc_status_kb(pid, "VmRSS:")
}

/// Bytes in the gateway's spool folder now.
fn spooled_bytes(gateway: &Gateway) -> u64 {
    std::fs::read_dir(gateway.data_dir.join("spool"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.metadata().ok())
                .map(|metadata| metadata.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Asks a fresh `/health` from 127.0.0.1 and returns how long the answer took.
fn health_takes(gateway: &Gateway) -> Duration {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let started = Instant::now();
    let answer = client.get(format!("{}/health", gateway.base_url)).send();
    let elapsed = started.elapsed();
    assert!(
        answer.is_ok_and(|answer| answer.status().is_success()),
        "/health did not answer within {elapsed:?}"
    );
    elapsed
}

/// The demo envelope up to and including the school block, then `toetsafnames` left open.
fn envelope_start(sleutel: &str) -> String {
    envelope_start_for(harness::DEMO_KLANTCODE, sleutel)
}

/// `envelope_start` for another klantcode.
fn envelope_start_for(klantcode: &str, sleutel: &str) -> String {
    let whole = Message::demo(&aanmaakdatum(50))
        .client(klantcode, harness::DEMO_KLANTNAAM, sleutel)
        .afname(
            "LL0001",
            vec![Resultaat::score("PREAUTH-1", "HOSTILE-T", 3)],
        )
        .toets(Toets::new("HOSTILE-T"))
        .envelope();
    let text = String::from_utf8(whole).expect("UTF-8");
    let cut = text
        .find("<lr:toetsafnames>")
        .expect("toetsafnames in the envelope");
    text[..cut + "<lr:toetsafnames>".len()].to_string()
}

#[test]
fn a_slow_body_flood_from_one_address_leaves_health_and_senders_served() {
    // The default body timeouts (30 s idle, 600 s whole): one byte every 10 s trips neither.
    // 128 slots, so the 200 attacking connections would take them all (2,100 of 2,048 in the finding).
    let gateway = harness::spawn_gateway(Options::default().env("UWLR_MAX_CONNECTIONS", "128"));
    valid_message_is_accepted(&gateway, 1);
    let before = peak_memory_kb(gateway.pid());
    let address = gateway.address();
    let started = Instant::now();
    let mut attackers: Vec<TcpStream> = (0..200)
        .map(|_| connect_from("127.0.0.2", address).expect("connect"))
        .collect();
    for stream in &mut attackers {
        let _ = stream.write_all(format!("{}<", request_head(Some(100_000))).as_bytes());
    }
    std::thread::sleep(Duration::from_millis(500));
    // Connections refused at once (over the address's cap) are read now, before the trickle
    // would write into a closed connection.
    let mut answers: Vec<(Option<u16>, String, Duration)> = Vec::new();
    let mut trickling = Vec::new();
    for mut stream in attackers {
        match answer_on(&mut stream, Duration::from_millis(5)) {
            (Some(status), text) => answers.push((Some(status), text, started.elapsed())),
            (None, _) => trickling.push(stream),
        }
    }
    let refused_at_once = answers.len();
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if last.elapsed() >= Duration::from_secs(10) {
                    for stream in &mut trickling {
                        let _ = stream.write_all(b" ");
                    }
                    last = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            trickling
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let health = health_takes(&gateway);
    valid_message_is_accepted(&gateway, 2);
    // The held connections end at the pre-authentication deadline (10 s).
    while started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for mut stream in trickle.join().expect("trickle") {
        let (status, text) = answer_on(&mut stream, Duration::from_millis(200));
        answers.push((status, text, started.elapsed()));
    }
    let peak_growth = peak_memory_kb(gateway.pid()).saturating_sub(before);
    let unanswered = answers.iter().filter(|answer| answer.0.is_none()).count();
    eprintln!(
        "slow-body flood: /health in {health:?}; {refused_at_once} of 200 refused at once; {unanswered} unanswered after 15 s; peak memory +{peak_growth} kB"
    );
    assert!(health < Duration::from_secs(2), "/health took {health:?}");
    assert!(
        refused_at_once >= 200 - 64,
        "only {refused_at_once} connections over the per-address cap were refused at once"
    );
    for (status, text, _) in &answers {
        match status {
            Some(503) => assert!(text.to_ascii_lowercase().contains("retry-after"), "{text}"),
            Some(400) => assert!(
                text.contains("did not arrive within 10 seconds") || text.contains("slower than"),
                "{text}"
            ),
            other => panic!("a slow body got {other:?}: {text}"),
        }
    }
    assert!(
        peak_growth < EXTRA_MEMORY_KB,
        "peak memory +{peak_growth} kB"
    );
    valid_message_is_accepted(&gateway, 3);
    assert_no_panic(&gateway, "slow-body flood");
}

/// A 199 MB body whose header holds, after an autorisatie with a wrong key, a block of
/// 99,000 `<h a="…2,000 characters…"/>` elements; `written` counts what got through.
fn send_header_attribute_body(stream: &mut TcpStream, written: &AtomicU64) {
    let start = envelope_start("verkeerde-sleutel");
    let (head, rest) = start.split_at(start.find("</soapenv:Header>").expect("a header"));
    let open = format!("{head}<x:blok xmlns:x=\"urn:example:x\">");
    let element = format!("<x:h a=\"{}\"/>", "v".repeat(2000));
    let close = format!("</x:blok>{rest}</lr:toetsafnames></lr:leerresultaten_verzoek></soapenv:Body></soapenv:Envelope>");
    let count = 99_000usize;
    let length = open.len() + element.len() * count + close.len();
    let batch = element.repeat(100);
    let mut send = |bytes: &[u8]| -> bool {
        let ok = stream.write_all(bytes).is_ok();
        if ok {
            written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        ok
    };
    if !send(request_head(Some(length as u64)).as_bytes()) || !send(open.as_bytes()) {
        return;
    }
    for _ in 0..count / 100 {
        if !send(batch.as_bytes()) {
            return;
        }
    }
    send(close.as_bytes());
}

#[test]
fn four_199_mb_header_attribute_bodies_with_a_wrong_key_are_answered_unread() {
    // The default body timeouts, so that no deadline cuts the bodies short: the answer
    // must come from the gateway not reading them.
    let gateway = harness::spawn_gateway(Options::default());
    valid_message_is_accepted(&gateway, 1);
    let before = peak_memory_kb(gateway.pid());
    let resident_before = resident_kb(gateway.pid());
    let address = gateway.address();
    let written: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let attackers: Vec<_> = written
        .iter()
        .enumerate()
        .map(|(index, written)| {
            let written = written.clone();
            let stream = connect_from(&format!("127.0.0.{}", index + 2), address).expect("connect");
            std::thread::spawn(move || {
                exchange_on(stream, ANSWER_WITHIN * 2, move |stream| {
                    send_header_attribute_body(stream, &written)
                })
            })
        })
        .collect();
    valid_message_is_accepted(&gateway, 2);
    let replies: Vec<RawReply> = attackers
        .into_iter()
        .map(|attacker| attacker.join().expect("attacker"))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let peak_growth = peak_memory_kb(gateway.pid()).saturating_sub(before);
    let resident_growth = resident_kb(gateway.pid()).saturating_sub(resident_before);
    let sent: Vec<u64> = written
        .iter()
        .map(|written| written.load(Ordering::Relaxed) >> 20)
        .collect();
    let times: Vec<Duration> = replies.iter().map(|reply| reply.elapsed).collect();
    eprintln!(
        "four 199 MB header-attribute bodies: answered in {times:?}; MiB sent before the answer and close {sent:?}; peak memory +{peak_growth} kB; resident after +{resident_growth} kB"
    );
    for reply in &replies {
        let rules = assert_refused("199 MB header attributes", reply);
        assert_eq!(rules, ["UWLR-BERICHT"], "{}", reply.body);
        assert!(
            reply
                .body
                .contains("were not found in the first 1048576 bytes"),
            "{}",
            reply.body
        );
    }
    for mib in &sent {
        assert!(
            *mib < 64,
            "the gateway read {mib} MiB of a body it had refused"
        );
    }
    assert!(
        peak_growth < EXTRA_MEMORY_KB,
        "peak memory +{peak_growth} kB"
    );
    valid_message_is_accepted(&gateway, 3);
    assert_no_panic(&gateway, "199 MB header attributes");
}

#[test]
fn many_unauthenticated_1_mb_bodies_leave_no_memory_behind() {
    // The default timeouts (80 MB through a debug build on two shared cores can take
    // longer than the hostile suite's 3 s body deadline), and 32 MiB for all
    // unauthenticated bodies together, so the peak stays within the suite's 64 MB.
    let gateway = harness::spawn_gateway(Options::default().env("UWLR_PREAUTH_MEMORY_MIB", "32"));
    valid_message_is_accepted(&gateway, 1);
    let before = peak_memory_kb(gateway.pid());
    let resident_before = resident_kb(gateway.pid());
    // ~1 MB of unknown header block before the autorisatie header, so the gateway cannot
    // tell whom the body is from until it has nearly all of it. The klantcode is not the
    // legitimate sender's, so that the failed-authentication limit (finding 1, not this
    // test's subject) does not lock the legitimate sender out.
    let start = envelope_start_for("AANVALLER", "verkeerde-sleutel");
    let body = start.replacen(
        "<soapenv:Header>",
        &format!(
            "<soapenv:Header><x:blok xmlns:x=\"urn:example:x\">{}</x:blok>",
            "<x:h a=\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\"/>"
                .repeat(13_000)
        ),
        1,
    )
        + "</lr:toetsafnames></lr:leerresultaten_verzoek></soapenv:Body></soapenv:Envelope>";
    let body = Arc::new(body.into_bytes());
    assert!((900_000..1_048_576).contains(&body.len()), "{}", body.len());
    let address = gateway.address();
    // 80 connections (1,500 in the finding) from four addresses, under each one's cap of 64.
    let attackers: Vec<_> = (0..80)
        .map(|index| {
            let body = body.clone();
            let stream =
                connect_from(&format!("127.0.0.{}", index % 4 + 2), address).expect("connect");
            std::thread::spawn(move || {
                exchange_on(stream, ANSWER_WITHIN * 4, move |stream| {
                    if stream
                        .write_all(request_head(Some(body.len() as u64)).as_bytes())
                        .is_ok()
                    {
                        write_all_quietly(stream, &body);
                    }
                })
            })
        })
        .collect();
    valid_message_is_accepted(&gateway, 2);
    let replies: Vec<RawReply> = attackers
        .into_iter()
        .map(|attacker| attacker.join().expect("attacker"))
        .collect();
    let peak_growth = peak_memory_kb(gateway.pid()).saturating_sub(before);
    // Freed memory goes back to the system within a second or two after a burst.
    std::thread::sleep(Duration::from_secs(3));
    let resident_growth = resident_kb(gateway.pid()).saturating_sub(resident_before);
    let mut statuses = std::collections::BTreeMap::new();
    for reply in &replies {
        *statuses.entry(reply.status).or_insert(0) += 1;
    }
    let slowest = replies.iter().map(|reply| reply.elapsed).max();
    eprintln!(
        "80 unauthenticated ~1 MB bodies: answers {statuses:?}, slowest {slowest:?}; peak memory +{peak_growth} kB; resident after close +{resident_growth} kB"
    );
    for reply in &replies {
        let status = reply
            .status
            .unwrap_or_else(|| panic!("no answer within {:?}", reply.elapsed));
        assert!(matches!(status, 500 | 503), "HTTP {status}: {}", reply.body);
        // The whole burst (80 MB, scanned to its end for the autorisatie header, by a
        // debug build on two shared cores) is answered within three times the hostile bound.
        assert!(reply.elapsed < ANSWER_WITHIN * 3, "{:?}", reply.elapsed);
        if status == 500 {
            let wrapped = harness::Reply {
                status,
                content_type: String::new(),
                receipt_id: None,
                body: reply.body.clone(),
            };
            // An unknown klantcode, or the wrong-key answer once its attempts are locked out.
            let rules = fault_of(&wrapped).rules;
            assert!(
                rules == ["UWLR-KLANT"] || rules == ["UWLR-AUTORISATIE"],
                "{}",
                reply.body
            );
        }
    }
    assert!(
        resident_growth < 32 * 1024,
        "resident memory after the connections closed: +{resident_growth} kB"
    );
    assert!(
        peak_growth < EXTRA_MEMORY_KB,
        "peak memory +{peak_growth} kB"
    );
    valid_message_is_accepted(&gateway, 3);
    assert_no_panic(&gateway, "1 MB unauthenticated bodies");
}

/// Sends `start`, then `fast` bytes of filler at once, then one byte every 20 s until `stop`.
fn fill_and_trickle(stream: &mut TcpStream, start: &str, fast: usize, stop: &AtomicBool) {
    let declared = 400u64 << 20;
    if stream
        .write_all(format!("{}{start}", request_head(Some(declared))).as_bytes())
        .is_err()
    {
        return;
    }
    let filler = "<x/>".repeat(64 * 1024);
    let mut sent = 0;
    while sent < fast {
        if stream.write_all(filler.as_bytes()).is_err() {
            return;
        }
        sent += filler.len();
    }
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if last.elapsed() >= Duration::from_secs(20) {
            if stream.write_all(b" ").is_err() {
                return;
            }
            last = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A valid message of at least 3 MiB (21,000 results for one leerling).
fn three_mib_message(sequence: u32) -> Vec<u8> {
    let resultaten = (0..21_000)
        .map(|index| Resultaat::score(&format!("GROOT-{sequence}-{index}"), "HOSTILE-T", 3))
        .collect();
    let body = Message::demo(&aanmaakdatum(sequence))
        .afname("LL0001", resultaten)
        .toets(Toets::new("HOSTILE-T"))
        .envelope();
    assert!(body.len() >= 3 << 20, "{} bytes", body.len());
    body
}

#[test]
fn trickling_spool_fillers_leave_room_for_a_legitimate_3_mib_message() {
    // A small spool (as on the 200 MB volume of the finding): 24 MiB in all, 8 per address.
    let gateway = harness::spawn_gateway(
        Options::default()
            .env("UWLR_SPOOL_MAX_MIB", "24")
            .env("UWLR_SPOOL_MAX_PER_ADDRESS_MIB", "8"),
    );
    valid_message_is_accepted(&gateway, 1);
    let before = peak_memory_kb(gateway.pid());
    let address = gateway.address();
    let stop = Arc::new(AtomicBool::new(false));
    let fill = |source: &str, sleutel: &'static str, fast: usize| {
        let stop = stop.clone();
        let stream = connect_from(source, address).expect("connect");
        std::thread::spawn(move || {
            exchange_on(stream, Duration::from_secs(25), move |stream| {
                fill_and_trickle(stream, &envelope_start(sleutel), fast, &stop)
            })
        })
    };
    // Four without credentials (each would spool 16 MiB and trickle on), then three
    // with the demo client's key from one other address (5 MiB each).
    let unauthenticated: Vec<_> = (0..4)
        .map(|_| fill("127.0.0.2", "verkeerde-sleutel", 16 << 20))
        .collect();
    let authenticated: Vec<_> = (0..3)
        .map(|_| {
            let filler = fill("127.0.0.3", harness::DEMO_SLEUTEL, 5 << 20);
            std::thread::sleep(Duration::from_millis(300));
            filler
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let held_by_fillers = spooled_bytes(&gateway);
    let started = Instant::now();
    let reply = gateway.post(three_mib_message(2));
    let legitimate = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let unauthenticated: Vec<RawReply> = unauthenticated
        .into_iter()
        .map(|filler| filler.join().expect("filler"))
        .collect();
    let authenticated: Vec<RawReply> = authenticated
        .into_iter()
        .map(|filler| filler.join().expect("filler"))
        .collect();
    let describe = |replies: &[RawReply]| -> Vec<String> {
        replies
            .iter()
            .map(|reply| format!("{:?} after {:?}", reply.status, reply.elapsed))
            .collect()
    };
    eprintln!(
        "spool fillers: {} MiB spooled while they trickled; legitimate 3 MiB message HTTP {} in {legitimate:?}; without credentials {:?}; with credentials {:?}",
        held_by_fillers >> 20,
        reply.status,
        describe(&unauthenticated),
        describe(&authenticated),
    );
    harness::check("legitimate 3 MiB message", &reply, &Expect::Accepted);
    assert!(
        held_by_fillers <= 8 << 20,
        "the fillers held {held_by_fillers} bytes of spool"
    );
    for reply in &unauthenticated {
        let rules = assert_refused("filler without credentials", reply);
        assert_eq!(rules, ["UWLR-AUTORISATIE"], "{}", reply.body);
    }
    let busy: Vec<&RawReply> = authenticated
        .iter()
        .filter(|reply| reply.status == Some(503))
        .collect();
    assert_eq!(busy.len(), 2, "{:?}", describe(&authenticated));
    for reply in busy {
        assert!(reply.elapsed < ANSWER_WITHIN, "{:?}", reply.elapsed);
        assert!(reply.body.contains("Server.Bezet"), "{}", reply.body);
    }
    assert!(
        peak_memory_kb(gateway.pid()).saturating_sub(before) < EXTRA_MEMORY_KB,
        "peak memory grew too much"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(spooled_bytes(&gateway), 0, "spool files left behind");
    valid_message_is_accepted(&gateway, 3);
    assert_no_panic(&gateway, "spool fillers");
}

#[test]
fn an_authenticated_body_slower_than_the_minimum_rate_is_cut_off() {
    let gateway = harness::spawn_gateway(
        Options::default()
            .env("UWLR_BODY_RATE_WINDOW_SECS", "2")
            .env("UWLR_MIN_BODY_BYTES_PER_SEC", "1024"),
    );
    valid_message_is_accepted(&gateway, 1);
    let start = envelope_start(harness::DEMO_SLEUTEL);
    let stream = connect_from("127.0.0.2", gateway.address()).expect("connect");
    let attacker = std::thread::spawn(move || {
        exchange_on(stream, Duration::from_secs(15), move |stream| {
            if stream
                .write_all(format!("{}{start}", request_head(Some(1 << 20))).as_bytes())
                .is_err()
            {
                return;
            }
            // Five bytes a second: never idle for 30 s, and 600 s for the whole body.
            for _ in 0..100 {
                if stream.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    });
    valid_message_is_accepted(&gateway, 2);
    let reply = attacker.join().expect("attacker");
    eprintln!(
        "authenticated trickle: HTTP {:?} after {:?}",
        reply.status, reply.elapsed
    );
    assert_eq!(reply.status, Some(400), "{}", reply.body);
    assert!(
        reply.body.contains("slower than 1024 bytes per second"),
        "{}",
        reply.body
    );
    assert!(reply.elapsed < ANSWER_WITHIN, "{:?}", reply.elapsed);
    valid_message_is_accepted(&gateway, 3);
    assert_no_panic(&gateway, "authenticated trickle");
}
