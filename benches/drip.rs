//! Drip load: N senders, each for its own school, send single-result messages as fast
//! as answers come back, over keep-alive connections; prints messages/s and latencies.
//!
//! Run through `benches/run.sh`, which prepares the schools and learners this expects
//! (`uwlr-gateway generate --schools N` codes and `G{school:03}L000000` learners).
//! Arguments: URL SENDERS SECONDS [--warmup=SECONDS] [--rate=N] [--timeline] [--first-school=N]; URL may be
//! several, comma-separated (sender i sends to URL i mod their number: one load over several instances); the warm-up
//! (default 2 s) is not counted, `--rate` offers a fixed load, `--timeline` prints p99 per half second.
//! It drives a gateway at a URL rather than `Application` in-process on purpose: the figures
//! are those of the shipped release binary in its own process (run.sh reads its memory from
//! /proc), and the same load can aim at any gateway, e.g. one of several instances.

use std::time::{Duration, Instant};

fn school_code(index: u32) -> (String, String) {
    uwlr_gateway::tools::generate::school_code(index)
}

fn message(school: u32, sequence: u64, stamp: &chrono::DateTime<chrono::Utc>) -> String {
    let (brincode, dependancecode) = school_code(school);
    let aanmaakdatum = stamp.format("%Y-%m-%dT%H:%M:%S%.6fZ");
    format!(
        concat!(
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header>",
            "<a:autorisatie xmlns:a=\"http://www.edustandaard.nl/leerresultaten/2/autorisatie\"><a:autorisatiesleutel>demo-autorisatiesleutel-2026</a:autorisatiesleutel>",
            "<a:klantcode>DEMO-EA</a:klantcode><a:klantnaam>Demo Uitgever</a:klantnaam></a:autorisatie></s:Header><s:Body>",
            "<lr:leerresultaten_verzoek xmlns:lr=\"http://www.edustandaard.nl/leerresultaten/2/leerresultaten\"><lr:school><lr:schooljaar>2026-2027</lr:schooljaar>",
            "<lr:brincode>{}</lr:brincode><lr:dependancecode>{}</lr:dependancecode><lr:aanmaakdatum>{}</lr:aanmaakdatum><lr:xsdversie>2.2</lr:xsdversie></lr:school>",
            "<lr:toetsafnames><lr:toetsafname><lr:leerlingid>G{:03}L000000</lr:leerlingid><lr:resultaten><lr:resultaat key=\"DRIP-{}-{}\">",
            "<lr:afnamedatum>2026-10-01</lr:afnamedatum><lr:toetscode>DRIP</lr:toetscode><lr:score>{}</lr:score></lr:resultaat></lr:resultaten></lr:toetsafname></lr:toetsafnames>",
            "<lr:toetsen><lr:toets><lr:toetscode>DRIP</lr:toetscode><lr:toetsnormering><lr:norm><lr:term>score</lr:term><lr:beginnormwaarde>0</lr:beginnormwaarde>",
            "<lr:eindnormwaarde>10</lr:eindnormwaarde></lr:norm></lr:toetsnormering></lr:toets></lr:toetsen></lr:leerresultaten_verzoek></s:Body></s:Envelope>"
        ),
        brincode, dependancecode, aanmaakdatum, school, school, sequence, sequence % 11
    )
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

/// The reference: one message per transaction, one row each, on a plain connection.
fn sqlite_reference(dir: &str, synchronous: &str, seconds: u64) {
    let path = std::path::Path::new(dir).join(format!("reference-{synchronous}.sqlite"));
    let _ = std::fs::remove_file(&path);
    let connection = rusqlite::Connection::open(&path).expect("open reference database");
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    connection
        .pragma_update(None, "synchronous", synchronous)
        .expect("synchronous");
    connection
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)")
        .expect("create");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut count = 0u64;
    while Instant::now() < deadline {
        connection
            .execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                rusqlite::params![format!("key-{count}"), "value"],
            )
            .expect("insert");
        count += 1;
    }
    println!(
        "reference synchronous={synchronous} one_row_transactions_per_second={:.0}",
        count as f64 / seconds as f64
    );
}

/// When and how fast the senders send, shared by all of them.
#[derive(Clone, Copy)]
struct Schedule {
    senders: u32,
    /// Messages per second offered by all senders together; `None` is a closed loop.
    rate: Option<f64>,
    started: Instant,
    /// Messages sent before this moment (the warm-up) are not counted.
    measured_from: Instant,
    deadline: Instant,
}

/// One sender's latencies (sent after warm-up, latency) and faults.
type SenderResult = (Vec<(Duration, Duration)>, u64);

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().map(String::as_str) == Some("sqlite-reference") {
        let seconds = all.get(3).and_then(|text| text.parse().ok()).unwrap_or(3);
        sqlite_reference(&all[1], &all[2], seconds);
        return;
    }
    let arguments: Vec<String> = std::env::args()
        .skip(1)
        .filter(|argument| !argument.starts_with("--"))
        .collect();
    if arguments.len() < 3 {
        eprintln!("usage: drip URL[,URL...] SENDERS SECONDS [--warmup=SECONDS (default 2)] [--rate=MESSAGES_PER_SECOND] [--timeline]");
        return;
    }
    // Several URLs (comma-separated): sender i sends to the (i mod n)th, so the senders
    // spread evenly over several instances serving one database.
    let urls: Vec<String> = arguments[0].split(',').map(str::to_owned).collect();
    let senders: u32 = arguments[1].parse().expect("SENDERS is a number");
    let seconds: u64 = arguments[2].parse().expect("SECONDS is a number");
    // Messages sent in the first WARMUP seconds (connections opening, each school's first
    // message storing its toets, caches filling) are not counted: the figures are the steady state.
    let flag = |name: &str| {
        std::env::args().find_map(|argument| argument.strip_prefix(name).map(str::to_owned))
    };
    let warmup: u64 = flag("--warmup=")
        .map(|text| text.parse().expect("--warmup=SECONDS is a number"))
        .unwrap_or(2);
    // --rate=N: the senders together offer N messages/s, each on a fixed schedule, and a
    // latency counts from the scheduled moment (a late send is waiting too); without it,
    // each sender sends as soon as its previous answer is in (the most the gateway takes).
    let rate: Option<f64> = flag("--rate=").map(|text| {
        text.parse()
            .expect("--rate=MESSAGES_PER_SECOND is a number")
    });
    // --first-school=N: sender i sends for school N + i, so school 0 (99XX01, the batch's
    // school in run.sh) can be left to a batch.
    let first_school: u32 = flag("--first-school=")
        .map(|text| text.parse().expect("--first-school=N is a number"))
        .unwrap_or(0);
    let started = Instant::now();
    let measured_from = started + Duration::from_secs(warmup);
    let schedule = Schedule {
        senders,
        rate,
        started,
        measured_from,
        deadline: measured_from + Duration::from_secs(seconds),
    };
    let results: Vec<SenderResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..senders)
            .map(|sender| {
                let url = urls[sender as usize % urls.len()].as_str();
                scope.spawn(move || send(url, first_school + sender, schedule))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("sender thread"))
            .collect()
    });
    let timed: Vec<(Duration, Duration)> = results
        .iter()
        .flat_map(|(latencies, _)| latencies.iter().copied())
        .collect();
    if std::env::args().any(|argument| argument == "--timeline") {
        print_timeline(&timed, measured_from);
    }
    let mut latencies: Vec<Duration> = timed.iter().map(|(_, latency)| *latency).collect();
    let faults: u64 = results.iter().map(|(_, faults)| faults).sum();
    latencies.sort();
    println!(
        "senders={senders} messages={} faults={faults} per_second={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        latencies.len(),
        latencies.len() as f64 / seconds as f64,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
}

/// One sender: messages for its own school until the deadline, over one keep-alive agent.
fn send(url: &str, school: u32, schedule: Schedule) -> SenderResult {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut latencies = Vec::new();
    let mut faults = 0u64;
    let mut sequence = 0u64;
    let mut last = chrono::Utc::now() - chrono::Duration::seconds(1);
    let interval = schedule
        .rate
        .map(|rate| Duration::from_secs_f64(f64::from(schedule.senders) / rate));
    // Senders start spread over one interval, so the offered load is even.
    let mut scheduled = schedule.started
        + interval.map_or(Duration::ZERO, |every| {
            every * (school % schedule.senders) / schedule.senders
        });
    while Instant::now() < schedule.deadline {
        // Wall-clock stamps, strictly increasing: later runs stay later too.
        let stamp = chrono::Utc::now().max(last + chrono::Duration::microseconds(1));
        last = stamp;
        let body = message(school, sequence, &stamp);
        sequence += 1;
        let sent = match interval {
            Some(every) => {
                std::thread::sleep(scheduled.saturating_duration_since(Instant::now()));
                let due = scheduled;
                scheduled += every;
                due
            }
            None => Instant::now(),
        };
        let answer = agent
            .post(url)
            .set("Content-Type", "text/xml; charset=utf-8")
            .set("SOAPAction", "\"BrengLeerresultaten\"")
            .send_string(&body);
        match answer {
            Ok(response) => {
                let _ = response.into_string();
                if sent >= schedule.measured_from {
                    latencies.push((sent - schedule.measured_from, sent.elapsed()));
                }
            }
            Err(ureq::Error::Status(_, response)) => {
                faults += 1;
                if faults == 1 {
                    eprintln!("fault: {}", response.into_string().unwrap_or_default());
                }
            }
            Err(error) => {
                faults += 1;
                eprintln!("transport error: {error}");
            }
        }
    }
    (latencies, faults)
}

/// Per 500 ms of sending time: messages, p99 and max, to see where the tail comes from.
fn print_timeline(timed: &[(Duration, Duration)], measured_from: Instant) {
    let measured_wall = chrono::Utc::now()
        - chrono::Duration::from_std(measured_from.elapsed()).unwrap_or_default();
    println!(
        "timeline starts at {} unix={:.3}",
        measured_wall.format("%H:%M:%S%.3f"),
        measured_wall.timestamp_millis() as f64 / 1000.0
    );
    let mut buckets: std::collections::BTreeMap<u128, Vec<Duration>> = Default::default();
    for (at, latency) in timed {
        buckets
            .entry(at.as_millis() / 500)
            .or_default()
            .push(*latency);
    }
    for (bucket, mut latencies) in buckets {
        latencies.sort();
        println!(
            "t={:.1}s messages={} p99_ms={:.2} max_ms={:.2}",
            bucket as f64 / 2.0,
            latencies.len(),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0)
        );
    }
}
