//! The LAS feed: catching up and following while messages arrive, corrections, quarantine, toets versions.

use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A LAS reader of the demo school.
const READER_FLAGS: &str = "--school 99XX01 --scope las --mandate DPA-TEST --valid-from 2020-01-01";

/// Results `from..to` with keys `P{n}`, spread over the demo learners.
fn results(from: usize, to: usize, score: u32) -> Vec<Resultaat> {
    (from..to)
        .map(|n| Resultaat {
            key: format!("P{n:05}"),
            leerlingid: demo_leerling(n),
            score,
        })
        .collect()
}

/// What a follower saw of one afname.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    revision: i64,
    score: i64,
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("items")
}

/// Pages from `since` to the end with `limit`, following `next` links; returns every item in order.
fn catch_up(gateway: &Gateway, token: &str, limit: u32) -> (Vec<Value>, i64) {
    let mut path = format!("/api/v1/schools/99XX01/toetsafnames?since=0&limit={limit}");
    let mut all = Vec::new();
    loop {
        let page = gateway.get_ok(&path, token);
        all.extend(items(&page).iter().cloned());
        path = page["next"].as_str().expect("next").to_string();
        if !page["has_more"].as_bool().expect("has_more") {
            return (all, page["next_cursor"].as_i64().expect("next_cursor"));
        }
    }
}

/// Issue 5: paging through 10,000 afnames while new messages (new afnames and
/// corrections of earlier ones) keep arriving loses and duplicates nothing.
#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn paging_while_messages_arrive_loses_and_duplicates_nothing() {
    let gateway = spawn();
    let token = reader(&gateway, "las-follow", &words(READER_FLAGS));
    // 5,000 afnames before the LAS starts.
    for batch in 0..10u32 {
        let from = batch as usize * 500;
        gateway.post_ok(message(
            "99XX",
            Some("01"),
            &aanmaakdatum(batch),
            &results(from, from + 500, 10),
        ));
    }
    // 5,000 more while it pages, each message also correcting 50 earlier afnames.
    let writer_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let writer_done = writer_done.clone();
        let base = gateway.base_url.clone();
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            for batch in 10..20u32 {
                let from = batch as usize * 500;
                let mut batch_results = results(from, from + 500, 20);
                let corrected = (batch as usize - 10) * 50;
                batch_results.extend(results(corrected, corrected + 50, 30 + batch));
                let response = http
                    .post(format!("{base}/uwlr/leerresultaten"))
                    .header("Content-Type", "text/xml; charset=utf-8")
                    .header("SOAPAction", "\"BrengLeerresultaten\"")
                    .body(message(
                        "99XX",
                        Some("01"),
                        &aanmaakdatum(batch),
                        &batch_results,
                    ))
                    .send()
                    .expect("post");
                assert!(
                    response.status().is_success(),
                    "{}",
                    response.text().unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(30));
            }
            writer_done.store(true, Ordering::SeqCst);
        })
    };
    // The follower: an odd page size, `next` links, until a page read after the writer ended is the last.
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut seen_states: BTreeSet<(String, i64)> = BTreeSet::new();
    let mut last_seq = 0i64;
    let mut pages = 0;
    let mut path = "/api/v1/schools/99XX01/toetsafnames?limit=257".to_string();
    loop {
        let writer_was_done = writer_done.load(Ordering::SeqCst);
        let page = gateway.get_ok(&path, &token);
        pages += 1;
        let consistent_through = page["consistent_through"].as_i64().unwrap();
        for item in items(&page) {
            let key = item["afname_key"].as_str().unwrap().to_string();
            let change_seq = item["change_seq"].as_i64().unwrap();
            assert!(
                change_seq > last_seq,
                "change_seq {change_seq} after {last_seq}"
            );
            assert!(change_seq <= consistent_through);
            last_seq = change_seq;
            let state = Seen {
                revision: item["revision"].as_i64().unwrap(),
                score: item["score"].as_i64().unwrap(),
            };
            assert!(
                seen_states.insert((key.clone(), state.revision)),
                "{key} revision {} seen twice",
                state.revision
            );
            if let Some(before) = seen.get(&key) {
                assert!(
                    state.revision > before.revision,
                    "{key} went back from {before:?} to {state:?}"
                );
            }
            seen.insert(key, state);
        }
        let next_cursor = page["next_cursor"].as_i64().unwrap();
        assert!(next_cursor >= last_seq);
        path = page["next"].as_str().unwrap().to_string();
        if !page["has_more"].as_bool().unwrap() {
            if writer_was_done {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    writer.join().expect("writer thread");
    let expected: BTreeSet<String> = (0..10_000).map(|n| format!("P{n:05}")).collect();
    let keys: BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(keys.len(), 10_000, "afnames seen");
    assert_eq!(keys, expected);
    // Every correction reached the follower with its final state.
    for n in 0..500 {
        let key = format!("P{n:05}");
        assert_eq!(
            seen[&key],
            Seen {
                revision: 2,
                score: 30 + 10 + (n as i64 / 50)
            },
            "{key}"
        );
    }
    // A fresh catch-up from cursor zero gives every afname once, in its latest state.
    let (all, end) = catch_up(&gateway, &token, 1000);
    assert_eq!(end, last_seq.max(end));
    let mut latest: BTreeMap<String, Seen> = BTreeMap::new();
    for item in &all {
        let key = item["afname_key"].as_str().unwrap().to_string();
        let state = Seen {
            revision: item["revision"].as_i64().unwrap(),
            score: item["score"].as_i64().unwrap(),
        };
        assert!(
            latest.insert(key.clone(), state).is_none(),
            "{key} twice in one catch-up"
        );
    }
    assert_eq!(latest, seen);
    assert!(pages > 10_000 / 257, "the follower paged ({pages} pages)");
}

#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn filters_corrections_and_the_leerling_resource() {
    let gateway = spawn();
    let token = reader(&gateway, "las-filter", &words(READER_FLAGS));
    for sample in [
        "01-drip-een-resultaat.xml",
        "02-batch-vijf-leerlingen.xml",
        "03-toets-met-onderdelen.xml",
    ] {
        gateway.post_accepted(&[sample]);
    }
    let (before, cursor) = catch_up(&gateway, &token, 5);
    assert!(before
        .iter()
        .any(|item| item["afname_key"] == "R-DRIP-0001" && item["revision"] == 1));
    // Sample 07 corrects R-DRIP-0001 (score 7 -> 9): it comes again after the cursor.
    for sample in [
        "04-vocabulaire-gebonden.xml",
        "05-nieuwe-toetsversie.xml",
        "06-correctie-toetsdefinitie.xml",
        "07-update-afname.xml",
    ] {
        gateway.post_accepted(&[sample]);
    }
    let page = gateway.get_ok(
        &format!("/api/v1/schools/99XX01/toetsafnames?since={cursor}&limit=1000"),
        &token,
    );
    let drip: Vec<&Value> = items(&page)
        .iter()
        .filter(|item| item["afname_key"] == "R-DRIP-0001")
        .collect();
    assert_eq!(drip.len(), 1);
    assert_eq!(
        (drip[0]["revision"].as_i64(), drip[0]["score"].as_i64()),
        (Some(2), Some(9))
    );
    assert!(drip[0]["mutatiedatum"].is_string());
    // Filters narrow the feed.
    let check = |query: &str, expected: &dyn Fn(&Value) -> bool| {
        let page = gateway.get_ok(
            &format!("/api/v1/schools/99XX01/toetsafnames?limit=1000&{query}"),
            &token,
        );
        assert!(!items(&page).is_empty(), "{query} matched nothing");
        assert!(items(&page).iter().all(expected), "{query}");
        assert!(
            page["next"]
                .as_str()
                .unwrap()
                .contains(query.split('&').next().unwrap()),
            "next keeps {query}"
        );
    };
    check("toetscode=DEMO-LEES-B1", &|item| {
        item["toetscode"] == "DEMO-LEES-B1"
    });
    check("leerlingid=LL0006", &|item| item["leerlingid"] == "LL0006");
    check(
        "afnamedatum_from=2026-10-02&afnamedatum_until=2026-10-02",
        &|item| item["afnamedatum"] == "2026-10-02",
    );
    // The leerling resource is the feed narrowed to one leerling.
    let leerling = gateway.get_ok(
        "/api/v1/schools/99XX01/leerlingen/LL0001/toetsafnames?limit=1000",
        &token,
    );
    assert_eq!(leerling["leerlingid"], "LL0001");
    assert!(items(&leerling).len() >= 2);
    assert!(items(&leerling)
        .iter()
        .all(|item| item["leerlingid"] == "LL0001"));
    let nobody = gateway.get_ok(
        "/api/v1/schools/99XX01/leerlingen/LL0020/toetsafnames",
        &token,
    );
    assert!(items(&nobody).is_empty());
    // A toets with every version and its corrections (sample 06 corrects versie 2).
    let toets = gateway.get_ok("/api/v1/schools/99XX01/toetsen/DEMO-REK-M4", &token);
    let versions = toets["versions"].as_array().unwrap();
    let versies: Vec<&str> = versions
        .iter()
        .map(|version| version["versie"].as_str().unwrap())
        .collect();
    assert_eq!(versies, ["1", "2"]);
    assert_eq!(versions[1]["revision"], 2);
    assert_eq!(
        versions[1]["earlier_revisions"].as_array().unwrap().len(),
        1
    );
    let (status, content_type, problem) =
        gateway.get_json("/api/v1/schools/99XX01/toetsen/GEEN-TOETS", Some(&token));
    assert_eq!(
        (status, content_type.as_str()),
        (404, "application/problem+json")
    );
    assert_eq!(problem["status"], 404);
    // Malformed parameters are problems, not guesses.
    for query in [
        "since=-1",
        "since=abc",
        "limit=0",
        "limit=1001",
        "afnamedatum_from=1-10-2026",
        "unknown=1",
        "limit=5&limit=6",
    ] {
        let (status, content_type, problem) = gateway.get_json(
            &format!("/api/v1/schools/99XX01/toetsafnames?{query}"),
            Some(&token),
        );
        assert_eq!(
            (status, content_type.as_str()),
            (400, "application/problem+json"),
            "{query}"
        );
        assert_eq!(
            problem["type"], "urn:uwlr-gateway:problem:bad-parameter",
            "{query}"
        );
    }
}

#[test]
fn quarantined_afnames_appear_only_once_released() {
    let gateway = spawn_with(&[("UWLR_UNKNOWN_LEERLING", "quarantine")]);
    let token = reader(&gateway, "las-quarantine", &words(READER_FLAGS));
    gateway.post_ok(message(
        "99XX",
        Some("01"),
        &aanmaakdatum(0),
        &[
            Resultaat {
                key: "Q-KNOWN".into(),
                leerlingid: "LL0001".into(),
                score: 60,
            },
            Resultaat {
                key: "Q-NEW".into(),
                leerlingid: "LL9999".into(),
                score: 70,
            },
        ],
    ));
    let (before, cursor) = catch_up(&gateway, &token, 100);
    let keys: Vec<&str> = before
        .iter()
        .map(|item| item["afname_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["Q-KNOWN"]);
    let leerling = gateway.get_ok(
        "/api/v1/schools/99XX01/leerlingen/LL9999/toetsafnames",
        &token,
    );
    assert!(items(&leerling).is_empty());
    let roster = gateway.scratch().join("roster.csv");
    std::fs::write(
        &roster,
        "school,leerlingid,eckid,naam\n99XX01,LL9999,,Nieuwe leerling\n",
    )
    .unwrap();
    gateway.cli_stdout(&["leerlingen", "import", roster.to_str().unwrap()]);
    let after = gateway.get_ok(
        &format!("/api/v1/schools/99XX01/toetsafnames?since={cursor}"),
        &token,
    );
    let keys: Vec<&str> = items(&after)
        .iter()
        .map(|item| item["afname_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["Q-NEW"]);
    assert!(after["consistent_through"].as_i64().unwrap() > cursor);
}
