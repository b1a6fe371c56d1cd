//! Several `serve` instances on one PostgreSQL database (issue 12): concurrent senders of two schools round-robin over three instances, a LAS feed walker, a SIGKILL mid-batch, a SIGKILL of the background lease holder mid-delivery and a lease session ended under its holder; afterwards every message is whole or absent, the feed walker saw the final state, and every statement reached the LRS once.
//!
//! Always on PostgreSQL, whatever `UWLR_TEST_ENGINE` says: several instances on one store
//! is what only that engine offers.

use crate::bridge::assert_one_live_statement_per_result;
use crate::bridge::standin::StandIn;
use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::soap::parse_envelope;
use crate::harness::{count, postgres, rows, wait_published, Gateway, Options};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INSTANCES: usize = 3;
const SENDERS: usize = 6;
/// A cap on the small messages, far above what the senders reach before they are told to
/// stop (some 200 on a busy 2-core machine).
const MAX_MESSAGES: u32 = 5_000;
/// The second school: the demo client is activated for it here, and its one learner
/// `YY0001` gets every result. Its messages run beside the demo school's (another
/// school's row lock), so transactions commit out of their xid order and the publisher's
/// horizon matters; its keys start with `Y`.
const OTHER_SCHOOL: &str = "99YY";
/// Keys every message of a school writes, so concurrent messages update the same afnames.
const HOT_KEYS: u32 = 4;
/// Keys of a sliding window: message n writes `W{n}`..`W{n + WINDOW - 1}`.
const WINDOW: u32 = 6;
/// Every this many messages one is sent to two instances at once.
const TWIN_EVERY: u32 = 5;
/// Results in the message the test kills its instance under.
const BIG_RESULTS: u32 = 20_000;
/// The toets every message scores, with a normering wide enough to give each message a
/// score of its own (so no result of an accepted message is ever "unchanged").
const TOETSCODE: &str = "QT-MULTI";
const LEASE_LINE: &str = "this instance runs the publisher, delivery and purge";
/// The background lease in `pg_locks`: the session advisory lock on the key "uwlr"
/// (`store::postgres::engine`), in this database (other tests' gateways share the cluster).
const LEASE_LOCK: &str = "locktype = 'advisory' AND classid = 0 AND objid = 1970760818 AND objsubid = 1 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
const READER_FLAGS: &str = "--school 99XX01 --scope las --mandate DPA-TEST --valid-from 2020-01-01";
/// The bound on taking over the background work from a dead instance.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(90);

/// One message as sent: its number (its aanmaakdatum is `aanmaakdatum(AANMAAK_BASE + n)`),
/// body hash, keys (their first letter says the school: `Y` for 99YY) and score.
#[derive(Clone, Debug)]
struct Sent {
    number: u32,
    sha256: String,
    keys: Vec<String>,
    score: i64,
}

/// What a call got back.
#[derive(Clone, Debug)]
enum Answer {
    Accepted(String),
    /// Refused by the ordering rule, with its receipt.
    Volgorde(String),
    /// No answer: the instance at `url` went away (allowed only for a killed instance).
    Transport {
        url: String,
        error: String,
    },
}

/// The instances' SOAP and read API base URLs as the test threads see them: `None` while
/// an instance is down, so nobody new picks it.
#[derive(Default)]
struct Instances {
    base_urls: Mutex<Vec<Option<String>>>,
    /// Base URLs of instances that were SIGKILLed (a call to one may fail in transport).
    killed: Mutex<BTreeSet<String>>,
}

impl Instances {
    /// The first live instance from `start` on, round-robin.
    fn pick(&self, start: usize) -> String {
        let urls = self.base_urls.lock().unwrap();
        (0..urls.len())
            .find_map(|step| urls[(start + step) % urls.len()].clone())
            .expect("a live instance")
    }

    fn set(&self, index: usize, base_url: Option<String>) {
        self.base_urls.lock().unwrap()[index] = base_url;
    }

    /// Whether a transport failure on `url` is excused: the instance there was killed.
    fn was_killed(&self, url: &str) -> bool {
        self.killed
            .lock()
            .unwrap()
            .iter()
            .any(|base| url.starts_with(base.as_str()))
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Every small message's aanmaakdatum is this many seconds past the builder's base plus
/// its number; the big one's is far later, so no small message can make it out of order.
const AANMAAK_BASE: u32 = 1_000;
const BIG_AANMAAK: u32 = 50_000;

fn toets() -> Toets {
    Toets::new(TOETSCODE).max(Some(1_000_000))
}

/// The demo learner a key belongs to (the same in every message).
fn leerling_of(key: &str) -> String {
    let sum: u32 = key.bytes().map(u32::from).sum();
    format!("LL{:04}", sum % 20 + 1)
}

/// Message `number` for the demo school (or 99YY): the hot keys and its window, each
/// scored `number + 1`.
fn small_message(number: u32, other_school: bool) -> (Vec<u8>, Sent) {
    let prefix = if other_school { "Y" } else { "" };
    let mut keys: Vec<String> = (0..HOT_KEYS).map(|hot| format!("{prefix}H{hot}")).collect();
    keys.extend((number..number + WINDOW).map(|window| format!("{prefix}W{window:04}")));
    let score = i64::from(number) + 1;
    let mut by_leerling: BTreeMap<String, Vec<Resultaat>> = BTreeMap::new();
    for key in &keys {
        let leerling = if other_school {
            "YY0001".to_string()
        } else {
            leerling_of(key)
        };
        by_leerling
            .entry(leerling)
            .or_default()
            .push(Resultaat::score(key, TOETSCODE, score as u64).afnamedatum("2026-10-01"));
    }
    let mut message = Message::demo(&aanmaakdatum(AANMAAK_BASE + number)).toets(toets());
    if other_school {
        message = message.school(OTHER_SCHOOL);
    }
    for (leerling, resultaten) in by_leerling {
        message = message.afname(&leerling, resultaten);
    }
    let body = message.envelope();
    let sent = Sent {
        number,
        sha256: sha256_hex(&body),
        keys,
        score,
    };
    (body, sent)
}

/// The big message: `BIG_RESULTS` keys of their own over the 20 demo learners, score 0.
fn big_message() -> (Vec<u8>, Sent) {
    let keys: Vec<String> = (0..BIG_RESULTS).map(|n| format!("BIG{n:05}")).collect();
    let mut message = Message::demo(&aanmaakdatum(BIG_AANMAAK)).toets(toets());
    for (index, chunk) in keys.chunks(keys.len() / 20).enumerate() {
        let resultaten = chunk
            .iter()
            .map(|key| Resultaat::score(key, TOETSCODE, 0).afnamedatum("2026-10-01"))
            .collect();
        message = message.afname(&format!("LL{:04}", index + 1), resultaten);
    }
    let body = message.envelope();
    let sent = Sent {
        number: BIG_AANMAAK,
        sha256: sha256_hex(&body),
        keys,
        score: 0,
    };
    (body, sent)
}

/// POSTs one message to the instance at `base_url`; any answer but a bevestiging or an
/// UWLR-VOLGORDE fault fails the test.
fn send(http: &reqwest::blocking::Client, base_url: &str, body: Vec<u8>) -> Answer {
    let url = format!("{base_url}/uwlr/leerresultaten");
    let response = http
        .post(&url)
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", "\"BrengLeerresultaten\"")
        .body(body)
        .send();
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            return Answer::Transport {
                url,
                error: format!("{error:?}"),
            }
        }
    };
    let status = response.status().as_u16();
    let receipt_id = response
        .headers()
        .get("x-receipt-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let text = match response.text() {
        Ok(text) => text,
        Err(error) => {
            return Answer::Transport {
                url,
                error: format!("{error:?}"),
            }
        }
    };
    let (_, fault) = parse_envelope(&text)
        .unwrap_or_else(|error| panic!("{url}: answer is not XML ({error}): HTTP {status} {text}"));
    match (status, fault) {
        (200, None) => Answer::Accepted(receipt_id.expect("an accepted message's receipt")),
        (500, Some(fault)) if fault.rules == ["UWLR-VOLGORDE"] => {
            Answer::Volgorde(receipt_id.expect("a refused message's receipt"))
        }
        _ => {
            panic!("{url}: neither a bevestiging nor an UWLR-VOLGORDE fault: HTTP {status} {text}")
        }
    }
}

/// What the feed walker saw of one afname last.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    revision: i64,
    score: i64,
}

/// The walker's state: positions seen and the last view per key.
#[derive(Default)]
struct Walk {
    cursor: i64,
    positions: BTreeSet<i64>,
    last: BTreeMap<String, Seen>,
    pages: usize,
}

impl Walk {
    /// Reads one page after the cursor from the instance at `base_url`; returns whether
    /// there is more, or None when that instance was killed under it.
    fn page(&mut self, instances: &Instances, base_url: &str, token: &str) -> Option<bool> {
        let url = format!(
            "{base_url}/api/v1/schools/99XX01/toetsafnames?since={}&limit=97",
            self.cursor
        );
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let response = match http.get(&url).bearer_auth(token).send() {
            Ok(response) => response,
            Err(error) if instances.was_killed(base_url) => {
                eprintln!("feed walker: {base_url} went away ({error})");
                return None;
            }
            Err(error) => panic!("feed walker: GET {url}: {error:?}"),
        };
        let status = response.status().as_u16();
        let text = match response.text() {
            Ok(text) => text,
            Err(_) if instances.was_killed(base_url) => return None,
            Err(error) => panic!("feed walker: GET {url}: HTTP {status}: {error}"),
        };
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|error| {
            panic!("feed walker: GET {url}: HTTP {status}, not JSON ({error}): {text}")
        });
        assert_eq!(status, 200, "feed walker: GET {url}: {body}");
        for item in body["items"].as_array().expect("items") {
            let position = item["change_seq"].as_i64().expect("change_seq");
            assert!(
                self.positions.insert(position),
                "feed position {position} seen twice"
            );
            assert!(
                position > self.cursor,
                "position {position} not after the cursor {}",
                self.cursor
            );
            let key = item["afname_key"].as_str().expect("afname_key").to_string();
            let seen = Seen {
                revision: item["revision"].as_i64().expect("revision"),
                score: item["score"].as_i64().expect("score"),
            };
            if let Some(before) = self.last.get(&key) {
                assert!(
                    seen.revision > before.revision,
                    "{key} went back from {before:?} to {seen:?}"
                );
            }
            self.last.insert(key, seen);
        }
        self.cursor = body["next_cursor"].as_i64().expect("next_cursor");
        self.pages += 1;
        Some(body["has_more"].as_bool().expect("has_more"))
    }
}

/// Starts the instances: the first makes the database; all share its secrets key file,
/// each has an `application_name` of its own (`mi-<index>`), so `pg_stat_activity` tells
/// them apart.
fn start_instances() -> Vec<Gateway> {
    let options = Options::fast_xapi().envs(&[("UWLR_XAPI_BATCH_SIZE", "50")]);
    let mut first = Gateway::new_on_postgres(options);
    let database = first.database.clone().expect("a PostgreSQL gateway");
    let url = postgres::shared().url_of(&database);
    let mut instances = vec![];
    for index in 1..INSTANCES {
        let mut instance = first.instance();
        instance.set_env(
            "UWLR_DATABASE_URL",
            &format!("{url}?application_name=mi-{index}"),
        );
        instances.push(instance);
    }
    first.set_env("UWLR_DATABASE_URL", &format!("{url}?application_name=mi-0"));
    instances.insert(0, first);
    // Started side by side: migrations and the demo seed take advisory locks.
    std::thread::scope(|scope| {
        for instance in instances.iter_mut() {
            scope.spawn(move || instance.start());
        }
    });
    instances
}

/// The index of the instance that holds the background lease, once one says so.
fn lease_holder(instances: &[Gateway], alive: &[bool]) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let holders: Vec<usize> = (0..instances.len())
            .filter(|&index| alive[index] && instances[index].stderr().contains(LEASE_LINE))
            .collect();
        match holders.as_slice() {
            [holder] => return *holder,
            [] => {}
            several => panic!("several instances run the background work: {several:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "no instance took the background lease"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the senders until `stop` (or `MAX_MESSAGES`), the odd ones for 99YY; returns what
/// each message got.
fn spawn_senders(
    instances: &Arc<Instances>,
    stop: &Arc<AtomicBool>,
    answered: &Arc<AtomicU32>,
) -> Vec<std::thread::JoinHandle<Vec<(Sent, Answer)>>> {
    let next = Arc::new(AtomicU32::new(0));
    (0..SENDERS)
        .map(|sender| {
            let (instances, stop, answered, next) = (
                instances.clone(),
                stop.clone(),
                answered.clone(),
                next.clone(),
            );
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .expect("http client");
                let mut calls = Vec::new();
                let mut turn = sender;
                while !stop.load(Ordering::SeqCst) {
                    let base_url = instances.pick(turn);
                    turn += 1;
                    // The number (so the aanmaakdatum) is taken just before sending, so
                    // numbers follow time; racing senders still overtake each other.
                    let number = next.fetch_add(1, Ordering::SeqCst);
                    if number >= MAX_MESSAGES {
                        break;
                    }
                    let (body, sent) = small_message(number, sender % 2 == 1);
                    // Every fifth message goes to two instances at once, as an EA that
                    // resends after a timeout does.
                    let twin = (number % TWIN_EVERY == TWIN_EVERY - 1).then(|| {
                        let (http, body) = (http.clone(), body.clone());
                        let twin_url = instances.pick(turn);
                        std::thread::spawn(move || send(&http, &twin_url, body))
                    });
                    let answer = send(&http, &base_url, body);
                    if let Some(twin) = twin {
                        let twin_answer = twin.join().expect("a twin's sender");
                        calls.push((sent.clone(), twin_answer));
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                    calls.push((sent, answer));
                    std::thread::sleep(Duration::from_millis(40));
                }
                calls
            })
        })
        .collect()
}

/// Whether instance `application_name` is inside a store transaction that wrote and has
/// run for over a second (the big message's pass: a small one's takes milliseconds).
fn storing_big_message(database: &str, application_name: &str) -> bool {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application_name}'
           AND backend_xid IS NOT NULL AND now() - xact_start > interval '1 second'
           AND wait_event_type IS DISTINCT FROM 'Lock'"
    );
    postgres::shared().psql_as(database, &sql) != "0"
}

/// Sends the big message to instance `victim` on a thread and SIGKILLs that instance while
/// the message's transaction is under way; returns how far into the request that was.
fn kill_mid_batch(
    instances: &mut [Gateway],
    shared: &Instances,
    victim: usize,
    big: Vec<u8>,
) -> Duration {
    let database = instances[victim].database.clone().expect("PostgreSQL");
    let base_url = instances[victim].base_url.clone();
    let started = Instant::now();
    let call = std::thread::spawn(move || {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        send(&http, &base_url, big)
    });
    // Three polls in a row (some 300 ms of storing, against a small message's few).
    let application_name = format!("mi-{victim}");
    let mut storing = 0;
    while storing < 3 {
        assert!(
            !call.is_finished(),
            "the big message was answered before its instance could be killed mid-batch"
        );
        assert!(
            started.elapsed() < WAIT,
            "the big message never reached the store"
        );
        storing = if storing_big_message(&database, &application_name) {
            storing + 1
        } else {
            0
        };
        std::thread::sleep(Duration::from_millis(100));
    }
    let into_request = started.elapsed();
    shared.set(victim, None);
    shared
        .killed
        .lock()
        .unwrap()
        .insert(instances[victim].base_url.clone());
    instances[victim].kill();
    match call.join().expect("the big message's thread") {
        Answer::Transport { .. } => {}
        other => panic!("the killed instance answered the big message: {other:?}"),
    }
    into_request
}

/// How many afnames were inserted and never committed, once the server's statistics show
/// any (a killed session's count arrives when its backend exits): the big message was
/// killed with rows written, not before its pass began. None when it committed after all.
fn rolled_back_afnames(gateway: &Gateway, big: &Sent) -> Option<i64> {
    let committed = count(
        &gateway.db(),
        &format!(
            "SELECT count(*) FROM receipts WHERE sha256 = '{}' AND outcome = 'accepted'",
            big.sha256
        ),
    );
    if committed > 0 {
        return None;
    }
    let database = gateway.database.as_deref().expect("PostgreSQL");
    let sql = "SELECT n_tup_ins - (SELECT count(*) FROM toetsafnames) FROM pg_stat_user_tables WHERE relname = 'toetsafnames'";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rolled_back: i64 = postgres::shared()
            .psql_as(database, sql)
            .parse()
            .expect("a number");
        if rolled_back > 0 {
            return Some(rolled_back);
        }
        assert!(
            Instant::now() < deadline,
            "the killed big message wrote no afname before it died"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn instances_share_one_database_through_concurrency_and_sigkills() {
    let standin = StandIn::start();
    let mut instances = start_instances();
    let mut alive = vec![true; INSTANCES];
    let holder = lease_holder(&instances, &alive);
    instances[0].cli_stdout(&["lrs", "add", "standin", "--url", &standin.url()]);
    instances[2].cli_stdout(&crate::query::words(
        "schools activate 99YY --klantcode DEMO-EA --mandate DPA-YY --valid-from 2020-01-01",
    ));
    let token = crate::query::reader(
        &instances[1],
        "las-multi",
        &crate::query::words(READER_FLAGS),
    );

    let shared = Arc::new(Instances::default());
    *shared.base_urls.lock().unwrap() = instances
        .iter()
        .map(|instance| Some(instance.base_url.clone()))
        .collect();
    let stop_senders = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU32::new(0));
    let senders = spawn_senders(&shared, &stop_senders, &answered);

    // The feed walker: a random live instance for every page, the whole time.
    let stop_walker = Arc::new(AtomicBool::new(false));
    let walker = {
        let (shared, stop_walker, token) = (shared.clone(), stop_walker.clone(), token.clone());
        std::thread::spawn(move || {
            let mut walk = Walk::default();
            loop {
                let stopping = stop_walker.load(Ordering::SeqCst);
                let base_url = shared.pick(rand::random::<usize>() % INSTANCES);
                match walk.page(&shared, &base_url, &token) {
                    Some(false) if stopping => return walk,
                    Some(true) => continue,
                    _ => std::thread::sleep(Duration::from_millis(30)),
                }
            }
        })
    };

    // A SIGKILL mid-batch on an instance that does not hold the lease, then its restart.
    let wait_answers = |at_least: u32| {
        let deadline = Instant::now() + WAIT;
        while answered.load(Ordering::SeqCst) < at_least {
            assert!(Instant::now() < deadline, "the senders stalled");
            assert!(
                !senders.iter().any(std::thread::JoinHandle::is_finished),
                "a sender stopped early: its panic is above"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_answers(30);
    let victim = (holder + 1) % INSTANCES;
    let (big_body, big) = big_message();
    let into_request = kill_mid_batch(&mut instances, &shared, victim, big_body);
    match rolled_back_afnames(&instances[victim], &big) {
        Some(rolled_back) => eprintln!("instance {victim} SIGKILLed {into_request:?} into the big message's request, with {rolled_back} of its afnames written and rolled back"),
        None => eprintln!("instance {victim} SIGKILLed {into_request:?} into the big message's request, which committed first"),
    }
    instances[victim].start();
    shared.set(victim, Some(instances[victim].base_url.clone()));

    // A SIGKILL of the lease holder while a slow LRS has delivery under way.
    let before = answered.load(Ordering::SeqCst);
    wait_answers(before + 30);
    // Each POST is held 500 ms, so the kill lands while one is in flight.
    standin.with(|state| state.every_delay = Duration::from_millis(500));
    let db = instances[victim].db();
    instances[holder].wait_for("delivery under way", WAIT, || {
        let recent = standin.with(|state| {
            state
                .post_times
                .last()
                .is_some_and(|last| last.elapsed() < Duration::from_millis(200))
        });
        recent && pending(&db) > 0
    });
    shared.set(holder, None);
    shared
        .killed
        .lock()
        .unwrap()
        .insert(instances[holder].base_url.clone());
    // SIGKILL and reap: dead when `kill` returns, so no later POST is its.
    instances[holder].kill();
    let killed_at = Instant::now();
    alive[holder] = false;
    // The takeover ends with the first POST after the new holder's log says it has the
    // lease (an upper bound: a POST it made before the line was read counts the next one).
    let new_holder = lease_holder(&instances, &alive);
    let lease_seen = Instant::now();
    let takeover = {
        let deadline = Instant::now() + WAIT;
        loop {
            let next_post = standin.with(|state| {
                state
                    .post_times
                    .iter()
                    .rev()
                    .take_while(|time| **time > lease_seen)
                    .last()
                    .copied()
            });
            if let Some(time) = next_post {
                break time - killed_at;
            }
            assert!(
                Instant::now() < deadline,
                "no instance took the delivery over"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    eprintln!(
        "takeover: instance {new_holder} logged the lease {:?} and posted {takeover:?} after the lease holder {holder} was SIGKILLed",
        lease_seen - killed_at
    );
    assert!(takeover < TAKEOVER_BOUND, "takeover took {takeover:?}");
    standin.with(|state| state.every_delay = Duration::ZERO);

    // The lease's session ends under a live holder (an operator's pg_terminate_backend, a
    // cut connection): the holder notices, the lease is held again by one instance, and
    // delivery goes on (the final checks show nothing was lost or published twice).
    let database = instances[new_holder].database.clone().expect("PostgreSQL");
    assert_eq!(
        postgres::shared().psql_as(
            &database,
            &format!("SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE {LEASE_LOCK}")
        ),
        "1",
        "the lease's session"
    );
    let posts_before = standin.with(|state| state.posts.len());
    instances[new_holder].wait_for("the holder to notice its lost lease", WAIT, || {
        instances[new_holder]
            .stderr()
            .contains("the session holding the background lease broke")
    });
    instances[new_holder].wait_for("the lease held again", WAIT, || {
        postgres::shared().psql_as(
            &database,
            &format!("SELECT count(*) FROM pg_locks WHERE {LEASE_LOCK}"),
        ) == "1"
    });

    let holder_now = postgres::shared().psql_as(
        &database,
        &format!("SELECT application_name FROM pg_locks JOIN pg_stat_activity USING (pid) WHERE {LEASE_LOCK}"),
    );
    eprintln!(
        "the lease's session of instance {new_holder} was terminated; {holder_now} holds it now"
    );

    // Let the senders go on a little, then stop everything and let the walker catch up.
    let before = answered.load(Ordering::SeqCst);
    wait_answers((before + 20).min(MAX_MESSAGES));
    stop_senders.store(true, Ordering::SeqCst);
    let mut calls: Vec<(Sent, Answer)> = Vec::new();
    for sender in senders {
        calls.extend(sender.join().expect("a sender"));
    }
    stop_walker.store(true, Ordering::SeqCst);
    let walk = walker.join().expect("the feed walker");

    wait_published(&db);
    instances[new_holder].wait_delivered("standin", WAIT);
    check_answers(&shared, &calls);
    let final_state = check_messages(&db, &calls, &big);
    check_walk(&walk, &final_state);
    check_statements(&db, &standin);
    assert!(
        standin.with(|state| state.posts.len()) > posts_before,
        "nothing was delivered after the lease's session ended"
    );
    let tally = |kind: fn(&Answer) -> bool| calls.iter().filter(|(_, answer)| kind(answer)).count();
    eprintln!(
        "{} messages sent: {} accepted, {} UWLR-VOLGORDE, {} lost with a killed instance; the walker read {} pages; the stand-in got {} POSTs",
        calls.len(),
        tally(|answer| matches!(answer, Answer::Accepted(_))),
        tally(|answer| matches!(answer, Answer::Volgorde(_))),
        tally(|answer| matches!(answer, Answer::Transport { .. })),
        walk.pages,
        standin.with(|state| state.posts.len()),
    );
    drop(db);
    // The instances go before the first, whose database they share.
    while instances.len() > 1 {
        instances.pop();
    }
}

/// Statements not yet delivered to the stand-in.
fn pending(db: &uwlr_gateway::store::db::Db) -> i64 {
    uwlr_gateway::store::outbox::outbox_status_of(db)
        .expect("outbox status")
        .iter()
        .map(|row| row.pending)
        .sum()
}

/// Every call was accepted, refused for its order, or lost with a killed instance; the
/// two answers to a message sent twice at once agree: both the one acceptance (the later
/// one a replay) or both refused.
fn check_answers(instances: &Instances, calls: &[(Sent, Answer)]) {
    let mut by_number: BTreeMap<u32, Vec<&Answer>> = BTreeMap::new();
    for (sent, answer) in calls {
        by_number.entry(sent.number).or_default().push(answer);
    }
    let mut twins = 0;
    for (number, answers) in &by_number {
        match answers.as_slice() {
            [_] => {}
            [Answer::Accepted(first), Answer::Accepted(second)] => {
                twins += 1;
                assert_eq!(
                    first, second,
                    "message {number}: a twin got a receipt of its own"
                )
            }
            [Answer::Volgorde(_), Answer::Volgorde(_)] => twins += 1,
            [Answer::Transport { .. }, _] | [_, Answer::Transport { .. }] => {}
            other => panic!("message {number}: its twins were answered differently: {other:?}"),
        }
    }
    assert!(twins > 0, "no message was sent twice at once");
    for (sent, answer) in calls {
        if let Answer::Transport { url, error } = answer {
            assert!(
                instances.was_killed(url),
                "message {} to {url}, which was not killed, failed: {error}",
                sent.number
            );
        }
    }
}

/// One receipt as stored.
struct Receipt {
    id: String,
    outcome: String,
    created: i64,
    updated: i64,
    unchanged: i64,
}

/// Checks every message against the database and returns the final state per key.
// Kept whole (over 120 lines): one pass over the receipts, changes, afnames and history.
fn check_messages(
    db: &uwlr_gateway::store::db::Db,
    calls: &[(Sent, Answer)],
    big: &Sent,
) -> BTreeMap<String, Seen> {
    let mut receipts: BTreeMap<String, Vec<Receipt>> = BTreeMap::new();
    for row in rows(
        db,
        "SELECT sha256, id, outcome, created, updated, unchanged FROM receipts",
    ) {
        let fields: Vec<&str> = row.split('|').collect();
        receipts
            .entry(fields[0].to_string())
            .or_default()
            .push(Receipt {
                id: fields[1].to_string(),
                outcome: fields[2].to_string(),
                created: fields[3].parse().unwrap(),
                updated: fields[4].parse().unwrap(),
                unchanged: fields[5].parse().unwrap(),
            });
    }
    // The change log by receipt: the keys each receipt changed.
    let mut changed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows(
        db,
        "SELECT COALESCE(g.receipt_id, 'NONE'), a.afname_key FROM toetsafname_changes g JOIN toetsafnames a ON a.id = g.afname_id",
    ) {
        let (receipt, key) = row.split_once('|').unwrap();
        changed.entry(receipt.to_string()).or_default().push(key.to_string());
    }
    let mut accepted: Vec<(&Sent, String)> = Vec::new();
    let mut all: BTreeMap<u32, &Sent> = calls.iter().map(|(sent, _)| (sent.number, sent)).collect();
    all.insert(big.number, big);
    for sent in all.into_values() {
        let stored = receipts.remove(&sent.sha256).unwrap_or_default();
        let accepted_here: Vec<&Receipt> =
            stored.iter().filter(|r| r.outcome == "accepted").collect();
        assert!(
            accepted_here.len() <= 1,
            "message {} accepted twice",
            sent.number
        );
        for receipt in stored.iter().filter(|r| r.outcome != "accepted") {
            assert!(
                !changed.contains_key(&receipt.id),
                "refused receipt {} of message {} changed afnames",
                receipt.id,
                sent.number
            );
        }
        let answers = calls
            .iter()
            .filter(|(other, _)| other.number == sent.number)
            .map(|(_, answer)| answer);
        for answer in answers {
            match (answer, accepted_here.first()) {
                (Answer::Accepted(id), Some(receipt)) => {
                    assert_eq!(&receipt.id, id, "message {}", sent.number)
                }
                (Answer::Accepted(id), None) => {
                    panic!(
                    "message {} was answered with receipt {id}, which is not accepted in the store",
                    sent.number
                )
                }
                (Answer::Volgorde(id), found) => {
                    assert!(
                        found.is_none(),
                        "message {} refused and accepted",
                        sent.number
                    );
                    assert!(
                        stored
                            .iter()
                            .any(|r| &r.id == id && r.outcome == "rejected"),
                        "message {} refused with receipt {id}, which is not stored as rejected",
                        sent.number
                    );
                }
                // Lost with its instance: whole or absent, both checked below.
                (Answer::Transport { .. }, _) => {}
            }
        }
        if let Some(receipt) = accepted_here.first() {
            let keys: BTreeSet<&String> = sent.keys.iter().collect();
            let mut own: Vec<String> = changed.remove(&receipt.id).unwrap_or_default();
            own.sort();
            let own_set: BTreeSet<&String> = own.iter().collect();
            assert_eq!(
                own.len(),
                own_set.len(),
                "message {}: a key changed twice",
                sent.number
            );
            assert_eq!(
                own_set, keys,
                "message {}: its changes are not its keys",
                sent.number
            );
            assert_eq!(
                (receipt.created + receipt.updated, receipt.unchanged),
                (keys.len() as i64, 0),
                "message {}: its receipt's counts",
                sent.number
            );
            accepted.push((sent, receipt.id.clone()));
        }
    }
    assert!(
        changed.is_empty(),
        "changes of receipts no accepted message holds: {:?}",
        changed.keys().collect::<Vec<_>>()
    );
    let big_accepted = accepted.iter().any(|(sent, _)| sent.number == big.number);
    eprintln!(
        "the big message is {} after its instance was killed",
        if big_accepted { "whole" } else { "absent" }
    );
    // Per key: the accepted messages holding it, in aanmaakdatum order, give its
    // revisions; the last one its current row, the others its history.
    accepted.sort_by_key(|(sent, _)| sent.number);
    let mut writers: BTreeMap<&str, Vec<(&Sent, &str)>> = BTreeMap::new();
    for (sent, receipt) in &accepted {
        for key in &sent.keys {
            writers.entry(key).or_default().push((sent, receipt));
        }
    }
    let stored: BTreeMap<String, (i64, i64, String)> = rows(
        db,
        "SELECT afname_key, revision, score, receipt_id FROM toetsafnames",
    )
    .iter()
    .map(|row| {
        let fields: Vec<&str> = row.split('|').collect();
        (
            fields[0].to_string(),
            (
                fields[1].parse().unwrap(),
                fields[2].parse().unwrap(),
                fields[3].to_string(),
            ),
        )
    })
    .collect();
    let mut history: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for row in rows(
        db,
        "SELECT a.afname_key, h.revision, h.replaced_by_receipt_id FROM toetsafnames_history h JOIN toetsafnames a ON a.id = h.afname_id ORDER BY h.revision",
    ) {
        let fields: Vec<&str> = row.split('|').collect();
        history
            .entry(fields[0].to_string())
            .or_default()
            .push((fields[1].parse().unwrap(), fields[2].to_string()));
    }
    assert_eq!(
        stored.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        writers.keys().copied().collect::<BTreeSet<_>>(),
        "the stored keys are those of the accepted messages"
    );
    let mut final_state = BTreeMap::new();
    for (key, writers) in &writers {
        let (revision, score, receipt) = &stored[*key];
        let (last, last_receipt) = writers.last().unwrap();
        assert_eq!(
            (*revision, *score, receipt.as_str()),
            (writers.len() as i64, last.score, *last_receipt),
            "{key}: the latest accepted message holding it is message {}",
            last.number
        );
        let expected: Vec<(i64, String)> = writers[1..]
            .iter()
            .enumerate()
            .map(|(index, (_, receipt))| (index as i64 + 1, receipt.to_string()))
            .collect();
        assert_eq!(
            history.remove(*key).unwrap_or_default(),
            expected,
            "{key}: each earlier revision replaced by the next accepted message"
        );
        final_state.insert(
            key.to_string(),
            Seen {
                revision: *revision,
                score: *score,
            },
        );
    }
    assert!(history.is_empty(), "history of keys no message holds");
    final_state
}

/// The walker's last view of every key of the demo school is the final state, and it
/// saw every such key (and no other school's).
fn check_walk(walk: &Walk, final_state: &BTreeMap<String, Seen>) {
    let demo_school: BTreeMap<String, Seen> = final_state
        .iter()
        .filter(|(key, _)| !key.starts_with('Y'))
        .map(|(key, seen)| (key.clone(), seen.clone()))
        .collect();
    assert_eq!(walk.last, demo_school, "the feed walker's last view");
}

/// Every statement the gateway made reached the stand-in, nothing else did, each afname
/// has one live statement, and the stand-in never saw a different statement under an id.
fn check_statements(db: &uwlr_gateway::store::db::Db, standin: &StandIn) {
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM toetsafnames a WHERE a.quarantined = 0 AND (SELECT count(*) FROM xapi_statements s
               WHERE s.afname_id = a.id AND s.voided_by IS NULL AND s.verb_id <> 'http://adlnet.gov/expapi/verbs/voided') <> 1"
        ),
        0,
        "an afname without exactly one live statement"
    );
    let generated: BTreeSet<String> = rows(db, "SELECT id FROM xapi_statements")
        .into_iter()
        .collect();
    let voided: BTreeSet<String> = rows(
        db,
        "SELECT id FROM xapi_statements WHERE voided_by IS NOT NULL",
    )
    .into_iter()
    .collect();
    assert_eq!(
        standin.stored_ids(),
        generated,
        "the stand-in holds exactly the generated statements"
    );
    let held: Vec<Value> = standin.with(|state| state.stored.values().cloned().collect());
    assert_one_live_statement_per_result(&held, &voided, "the stand-in");
    let refused: Vec<(Vec<String>, u16)> = standin.with(|state| {
        state
            .posts
            .iter()
            .filter(|post| post.status != 200)
            .map(|post| (post.ids.clone(), post.status))
            .collect()
    });
    assert!(
        refused.is_empty(),
        "the stand-in refused posts: {refused:?}"
    );
}
