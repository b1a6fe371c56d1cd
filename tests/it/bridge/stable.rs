//! Issue 17: a statement depends only on what was accepted: the same ids and content at any publisher speed, after a rebuild of `xapi.sqlite`, under a pinned base IRI, with registrations no dictionary recovers.

use super::validate_strict;
use crate::harness::gateway::BASE_IRI;
use crate::harness::{accepted_samples, read_sample, spawn_gateway, Gateway, Options};
use std::time::Duration;

/// A gateway that started once (made its id key, pinned its base IRI) and stopped: copies of
/// it share those, as a restored backup does.
fn template() -> Gateway {
    let mut gateway = spawn_gateway(Options::fast_xapi());
    gateway.terminate();
    gateway
}

/// Sample 05 defines a toets version and sends results for it; sample 06 corrects that
/// definition (another normering). A publisher that waits and takes both messages in one
/// round must still build sample 05's results against the definition they were accepted
/// with, and so must a publisher that rebuilds a lost `xapi.sqlite` from the change log.
#[test]
fn a_replay_with_pauses_a_replay_at_full_speed_and_a_rebuild_give_the_same_statements() {
    let template = template();
    let mut paused = template.copy();
    paused.start();
    for name in accepted_samples() {
        assert_eq!(paused.post_sample(&name).status, 200, "{name}");
        paused.wait_published();
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut fast = template.copy();
    // The publisher sleeps 4 s after its first round: every sample is in its next one.
    fast.set_env("UWLR_XAPI_PUBLISH_PAUSE_MS", "4000");
    fast.start();
    fast.post_accepted(&accepted_samples());
    let original = paused.statements();
    assert!(original.len() > 20, "{}", original.len());
    validate_strict(&original);
    let at_full_speed = fast.statements();
    assert_eq!(at_full_speed.len(), original.len());
    for (one, other) in original.iter().zip(&at_full_speed) {
        assert_eq!(one, other, "paused and full-speed replays differ");
    }

    // A lost xapi.sqlite: the publisher starts over from the change log.
    paused.terminate();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(paused.data_dir.join(format!("xapi.sqlite{suffix}")));
    }
    paused.start();
    let rebuilt = paused.statements();
    assert_eq!(rebuilt.len(), original.len());
    for (one, other) in original.iter().zip(&rebuilt) {
        assert_eq!(one, other, "the rebuild differs from the original");
    }
}

/// Timestamps come from the data: a voiding statement carries the aanmaakdatum of the
/// correcting message (sample 07), never the publisher's clock.
#[test]
fn a_voiding_statement_takes_the_correcting_messages_aanmaakdatum() {
    let gateway = spawn_gateway(Options::fast_xapi());
    gateway.post_accepted(&accepted_samples()[..7]);
    let statements = gateway.statements();
    assert!(statements
        .iter()
        .any(|statement| statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided"));
    let aanmaakdatum = format!("{BASE_IRI}/extension/aanmaakdatum");
    for (index, statement) in statements.iter().enumerate() {
        if statement["verb"]["id"] != "http://adlnet.gov/expapi/verbs/voided" {
            continue;
        }
        // The publisher writes the voiding statement just before the one that replaces it.
        let replacement = &statements[index + 1];
        let made = replacement["context"]["extensions"][&aanmaakdatum]
            .as_str()
            .unwrap();
        let expected = uwlr_gateway::bridge::xapi::aanmaakdatum_timestamp(made).unwrap();
        assert_eq!(statement["timestamp"], expected.as_str(), "{statement}");
    }
}

/// `xapi_base_iri` is part of every id: a gateway whose statements were made under one
/// refuses to start under another, saying why, and starts again under the pinned one.
#[test]
fn a_changed_base_iri_is_refused_at_start() {
    let mut gateway = template();
    gateway.set_env("UWLR_XAPI_BASE_IRI", "https://elsewhere.example/xapi");
    let output = gateway.serve_refused(Duration::from_secs(30));
    assert!(!output.status.success());
    let stderr = output.stderr.as_str();
    assert!(
        stderr.contains("xapi_base_iri")
            && stderr.contains("https://elsewhere.example/xapi")
            && stderr.contains(BASE_IRI),
        "{stderr}"
    );
    gateway.set_env("UWLR_XAPI_BASE_IRI", BASE_IRI);
    gateway.start();
}

/// Before issue 17 a registration was the UUIDv5 of school, leerlingid, toets, versie and
/// afnamedatum under a namespace derived from the public base IRI: 10,000 guessed
/// leerlingids recovered the learner. Keyed with the gateway's secret, no guess matches.
#[test]
fn guessing_leerlingids_does_not_recover_a_registration() {
    let gateway = spawn_gateway(Options::fast_xapi());
    gateway.post_accepted(&accepted_samples());
    let namespace = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, BASE_IRI.as_bytes());
    let extension = |name: &str| format!("{BASE_IRI}/extension/{name}");
    let mut tried = 0;
    for statement in gateway.statements() {
        let definition = &statement["object"]["definition"]["extensions"];
        let Some(toetscode) = definition[extension("toetscode")]["waarde"].as_str() else {
            continue;
        };
        let versie = definition[extension("versie")]["waarde"]
            .as_str()
            .unwrap_or("");
        let context = &statement["context"]["extensions"];
        let school = format!(
            "brin:{}{}",
            context[extension("brincode")].as_str().unwrap(),
            context[extension("dependancecode")]
                .as_str()
                .unwrap_or("00")
        );
        let afnamedatum = context[extension("afnamedatum")].as_str().unwrap();
        let registration = statement["context"]["registration"].as_str().unwrap();
        for guess in 0..10_000 {
            let name = format!(
                "uwlr-registration|v1|{school}|LL{guess:04}|{toetscode}|{versie}|{afnamedatum}"
            );
            assert_ne!(
                uuid::Uuid::new_v5(&namespace, name.as_bytes()).to_string(),
                registration,
                "registration {registration} recovered: {name}"
            );
        }
        tried += 1;
    }
    assert!(tried >= 5, "{tried} toets statements");
}

/// Sample 09 with its aanmaakdatum set to `aanmaakdatum`, without the results whose keys
/// are in `without`, and with `replace` applied (from, to).
fn sample_09(aanmaakdatum: &str, without: &[&str], replace: &[(&str, &str)]) -> Vec<u8> {
    let mut text = String::from_utf8(read_sample("09-somscore-onderdelen.xml"))
        .unwrap()
        .replace("2026-10-09T08:00:00", aanmaakdatum);
    for key in without {
        let start = text
            .find(&format!("<L:resultaat key=\"{key}\">"))
            .unwrap_or_else(|| panic!("{key} in sample 09"));
        let end = start + text[start..].find("</L:resultaat>").unwrap() + "</L:resultaat>".len();
        text.replace_range(start..end, "");
    }
    for (from, to) in replace {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    text.into_bytes()
}

/// The live gateway-computed totals as (resultaatkey, raw), and every statement.
fn live_totals(gateway: &Gateway) -> (Vec<(String, u64)>, Vec<serde_json::Value>) {
    let statements = gateway.statements();
    let voided: std::collections::BTreeSet<String> = statements
        .iter()
        .filter(|s| s["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided")
        .map(|s| s["object"]["id"].as_str().unwrap().to_string())
        .collect();
    let key = format!("{BASE_IRI}/extension/resultaatkey");
    let mut totals: Vec<(String, u64)> = statements
        .iter()
        .filter(|s| !voided.contains(s["id"].as_str().unwrap()))
        .filter(|s| {
            s["context"]["extensions"][&key]
                .as_str()
                .is_some_and(|k| k.starts_with("~som:"))
        })
        .map(|s| {
            (
                s["context"]["extensions"][&key]
                    .as_str()
                    .unwrap()
                    .to_string(),
                s["result"]["score"]["raw"].as_u64().unwrap(),
            )
        })
        .collect();
    totals.sort_by_key(|(_, raw)| *raw);
    (totals, statements)
}

/// Issue 17, honest totals: onderdelen of one sitting sent in two messages (8 of 30, then
/// 16 more) give one live total of 24, marked as derived and scaled over its range; a later
/// correction of an onderdeel recomputes it and voids the earlier total.
#[test]
fn onderdelen_sent_in_two_messages_give_one_live_total_equal_to_their_sum() {
    let gateway = spawn_gateway(Options::fast_xapi());
    // First message: LL0014 only dictee (8); LL0015 complete (30).
    let first = sample_09(
        "2026-10-09T08:00:00",
        &["SOM-LL0014-WRD", "SOM-LL0014-ZIN"],
        &[],
    );
    assert_eq!(gateway.post(first).status, 200);
    let (totals, _) = live_totals(&gateway);
    assert_eq!(
        totals.iter().map(|(_, raw)| *raw).collect::<Vec<_>>(),
        [30],
        "no total for part of a toets"
    );
    // Second message: the other two onderdelen of LL0014 (7 + 9).
    let second = sample_09("2026-10-09T09:00:00", &["SOM-LL0014-DIC"], &[]);
    assert_eq!(gateway.post(second).status, 200);
    let (totals, statements) = live_totals(&gateway);
    assert_eq!(
        totals.iter().map(|(_, raw)| *raw).collect::<Vec<_>>(),
        [24, 30]
    );
    let total = statements
        .iter()
        .find(|s| s["result"]["score"]["raw"] == 24)
        .unwrap();
    assert_eq!(total["result"]["score"]["min"], 0);
    assert_eq!(total["result"]["score"]["max"], 30);
    assert_eq!(total["result"]["score"]["scaled"], 0.8);
    let derived = &total["context"]["extensions"][format!("{BASE_IRI}/extension/afgeleid")];
    assert_eq!(derived["methode"], "som");
    assert_eq!(
        total["result"]["extensions"][format!("{BASE_IRI}/extension/afgeleid-uit")]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // A sender-reported score is not marked.
    assert!(statements
        .iter()
        .filter(|s| s["verb"]["id"] != "http://adlnet.gov/expapi/verbs/voided")
        .any(|s| s["context"]["extensions"]
            .get(format!("{BASE_IRI}/extension/afgeleid"))
            .is_none()));

    // A corrected onderdeel (zinsbouw 9 → 10) recomputes the total and voids the old one.
    let third = sample_09(
        "2026-10-09T10:00:00",
        &["SOM-LL0014-DIC", "SOM-LL0014-WRD"],
        &[("<L:score>9</L:score>", "<L:score>10</L:score>")],
    );
    assert_eq!(gateway.post(third).status, 200);
    let (totals, statements) = live_totals(&gateway);
    assert_eq!(
        totals.iter().map(|(_, raw)| *raw).collect::<Vec<_>>(),
        [25, 30]
    );
    let old_total = total["id"].as_str().unwrap();
    assert!(statements.iter().any(
        |s| s["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided"
            && s["object"]["id"] == old_total
    ));
    validate_strict(&statements);
}

/// An afnamedatum after the message's aanmaakdatum (sample 12: 12026-10-11) is accepted and
/// gets the aanmaakdatum as timestamp (README, Mapping decisions): from the data, so the same
/// at every rebuild, and never in the future.
#[test]
fn a_result_dated_after_its_message_takes_the_aanmaakdatum_as_timestamp() {
    let gateway = spawn_gateway(Options::fast_xapi());
    let mut samples = accepted_samples();
    samples.push("11-xsd-getallen-en-24-uur.xml".into());
    samples.push("12-xsd-sleutels-en-datums.xml".into());
    gateway.post_accepted(&samples);
    let statements = gateway.statements();
    let afnamedatum = format!("{BASE_IRI}/extension/afnamedatum");
    let future = statements
        .iter()
        .find(|s| s["context"]["extensions"][&afnamedatum] == "12026-10-11")
        .expect("sample 12's result of year 12026");
    assert_eq!(future["timestamp"], "2026-10-11T18:00:00.123Z");
    validate_strict(&statements);
}

/// The id key is sealed with the secrets key: without that key the gateway still accepts
/// messages but publishes nothing (never under other ids), and says why; an operator who
/// lost the key for good runs `secrets reset-id-key`, and publication goes on under a new one.
#[test]
fn a_lost_secrets_key_holds_statements_back_until_the_id_key_is_reset() {
    let mut gateway = spawn_gateway(Options::fast_xapi());
    gateway.post_accepted(&accepted_samples()[..1]);
    gateway.wait_published();
    gateway.terminate();
    // The key is lost: on SQLite `serve` makes a new one in the data dir; on PostgreSQL the
    // operator configures one (the harness's key file), here a new one.
    let key_file = gateway.data_dir.join("secrets.key");
    std::fs::remove_file(&key_file).unwrap();
    if crate::harness::test_engine() == crate::harness::TestEngine::Postgres {
        std::fs::write(&key_file, gateway.cli_stdout(&["secrets", "new-key"])).unwrap();
    }
    gateway.start();
    assert_eq!(
        gateway.post_sample("02-batch-vijf-leerlingen.xml").status,
        200
    );
    gateway.wait_for("the id key error", Duration::from_secs(30), || {
        gateway.logs().contains("xAPI id key")
    });
    std::thread::sleep(Duration::from_millis(500));
    let (cursor, end) = gateway.publisher_position();
    assert!(cursor < end, "published without the id key");
    gateway.terminate();
    let answer = gateway.cli_stdout(&["secrets", "reset-id-key"]);
    assert!(answer.contains("forgotten"), "{answer}");
    gateway.start();
    gateway.wait_published();
    validate_strict(&gateway.statements());
}
