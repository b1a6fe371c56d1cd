//! xAPI bridge tests: the real gateway delivering to the real LRS (xapi-statements) and to a stand-in with injected faults.

mod governance;
pub mod real_lrs;
mod secrets;
mod stable;
pub mod standin;
mod tls;

use crate::harness::gateway::BASE_IRI;
use crate::harness::{accepted_samples, read_sample, repo_root, spawn_gateway, Gateway, Options};
use real_lrs::RealLrs;
use serde_json::Value;
use standin::StandIn;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn add_lrs(gateway: &Gateway, name: &str, url: &str, extra: &[&str]) {
    let mut args = vec!["lrs", "add", name, "--url", url];
    args.extend_from_slice(extra);
    gateway.cli_stdout(&args);
}

/// Ids the gateway generated whose statements were voided, with the voiding statement's id.
fn voided(gateway: &Gateway) -> BTreeMap<String, String> {
    gateway.wait_published();
    let db = gateway.db();
    let mut statement = db
        .prepare("SELECT id, voided_by FROM xapi_statements WHERE voided_by IS NOT NULL")
        .unwrap();
    let rows = statement
        .query_map(rusqlite::params![], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

#[test]
fn samples_reach_the_real_lrs_once_and_a_correction_voids_the_old_statement() {
    let lrs = RealLrs::start();
    let gateway = spawn_gateway(Options::fast_xapi());
    add_lrs(
        &gateway,
        "real",
        &lrs.url(),
        &["--username", "test", "--password", "test-lrs-password"],
    );
    gateway.post_accepted(&accepted_samples());
    gateway.wait_delivered("real", WAIT);

    let generated = gateway.statements();
    validate_strict(&generated);
    let voided = voided(&gateway);
    assert_eq!(
        voided.len(),
        1,
        "sample 07 corrects one afname of sample 01"
    );
    let voided_ids: BTreeSet<String> = voided.keys().cloned().collect();
    assert_one_live_statement_per_result(&generated, &voided_ids, "generated");

    // The LRS holds every generated statement once; voided ones only through voidedStatementId.
    let held: Vec<Value> = lrs.all_statements();
    let held_ids: BTreeSet<String> = held
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(held.len(), held_ids.len(), "an id was returned twice");
    let expected: BTreeSet<String> = gateway
        .statement_ids()
        .difference(&voided_ids)
        .cloned()
        .collect();
    assert_eq!(held_ids, expected);
    let (old, voiding) = voided.iter().next().unwrap();
    assert_eq!(lrs.get(&format!("statementId={old}")).unwrap().0, 404);
    let (status, body) = lrs.get(&format!("voidedStatementId={old}")).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], old.as_str());
    assert!(held_ids.contains(voiding));

    // A replayed message (same bytes) and a resend of unchanged content add nothing.
    let before = gateway.statement_ids();
    assert_eq!(gateway.post_sample("07-update-afname.xml").status, 200);
    assert_eq!(gateway.post_sample("01-drip-een-resultaat.xml").status, 200);
    std::thread::sleep(Duration::from_millis(700));
    gateway.wait_delivered("real", WAIT);
    assert_eq!(gateway.statement_ids(), before);
    assert_eq!(lrs.all_statements().len(), held.len());

    // The password is a credential: never listed.
    let listed = gateway.cli_stdout(&["lrs", "list"]);
    assert!(
        listed.contains("real") && listed.contains("password set"),
        "{listed}"
    );
    assert!(!listed.contains("test-lrs-password"));
    assert!(!gateway.logs().contains("test-lrs-password"));
}

#[test]
fn an_lrs_that_is_down_gets_everything_once_when_it_comes_up() {
    let reserved = standin::reserve();
    let port = reserved.port;
    let gateway = spawn_gateway(Options::fast_xapi());
    add_lrs(
        &gateway,
        "later",
        &format!("http://127.0.0.1:{port}/xAPI/statements"),
        &[],
    );
    gateway.post_accepted(&accepted_samples()[..3]);
    gateway.wait_for("a failed attempt", WAIT, || {
        gateway
            .cli_stdout(&["outbox", "status"])
            .contains("connection failed")
    });
    let (pending, _) = gateway.outbox("later");
    assert!(pending > 0);
    let standin = StandIn::start_reserved(reserved, standin::fresh_state());
    gateway.wait_delivered("later", WAIT);
    assert_eq!(standin.stored_ids(), gateway.statement_ids());
    standin.with(|state| assert_eq!(state.missing_version_header, 0));
}

#[test]
fn server_errors_and_slow_answers_are_retried_without_duplicates() {
    let standin = StandIn::start();
    standin.with(|state| {
        state.fail_next = 3;
        state.slow_next = 1;
        state.delay = Duration::from_secs(4); // longer than the 2 s request timeout
    });
    let gateway = spawn_gateway(Options::fast_xapi().envs(&[("UWLR_XAPI_BATCH_SIZE", "7")]));
    add_lrs(&gateway, "flaky", &standin.url(), &[]);
    gateway.post_accepted(&accepted_samples());
    gateway.wait_delivered("flaky", WAIT);
    // The slow answer is recorded when the stand-in finally answers, after the gateway gave up on it.
    gateway.wait_for("the slow answer", WAIT, || {
        standin.with(|state| state.posts.iter().filter(|post| post.status == 500).count() == 3)
    });
    assert!(
        gateway.logs().contains("timeout"),
        "the slow POST timed out"
    );
    let posts = standin.with(|state| state.posts.clone());
    assert!(posts.iter().all(|post| post.ids.len() <= 7));
    assert_eq!(standin.stored_ids(), gateway.statement_ids());
    assert!(gateway.logs().contains("delivery failed; retrying"));
    let (_, dead) = gateway.outbox("flaky");
    assert_eq!(dead, 0);
}

#[test]
fn a_refused_statement_becomes_a_dead_letter_and_retry_requeues_it() {
    let standin = StandIn::start();
    standin.with(|state| {
        state.refuse_keys.insert("B02-LL0008-LEES".into());
    });
    let gateway = spawn_gateway(Options::fast_xapi());
    add_lrs(&gateway, "strict", &standin.url(), &[]);
    gateway.post_accepted(&accepted_samples()[..2]);
    gateway.wait_delivered("strict", WAIT);
    let letters = gateway.cli_stdout(&["outbox", "dead-letters", "--json"]);
    let letters: Vec<Value> = letters
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let refused = key_statement(&gateway, "B02-LL0008-LEES");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["statement_id"], refused.as_str());
    assert_eq!(letters[0]["status"], 400);
    assert!(letters[0]["answer"]
        .as_str()
        .unwrap()
        .contains("refused by the stand-in"));
    // Everything else arrived, the refused one did not.
    let mut others = gateway.statement_ids();
    others.remove(&refused);
    assert_eq!(standin.stored_ids(), others);

    standin.with(|state| state.refuse_keys.clear());
    assert!(gateway
        .cli_stdout(&["outbox", "retry", "--lrs", "strict"])
        .contains("1 dead letters requeued"));
    gateway.wait_for("the requeued letter", WAIT, || {
        gateway.outbox("strict").1 == 0
            && gateway
                .cli_stdout(&["outbox", "dead-letters"])
                .trim()
                .is_empty()
    });
    assert_eq!(standin.stored_ids(), gateway.statement_ids());
}

fn key_statement(gateway: &Gateway, resultaatkey: &str) -> String {
    let key = format!("{}/extension/resultaatkey", BASE_IRI);
    gateway
        .statements()
        .iter()
        .find(|s| s["context"]["extensions"][&key] == resultaatkey)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no statement for {resultaatkey}"))
}

/// The dead letters of one LRS as JSON.
fn dead_letters(gateway: &Gateway, lrs: &str) -> Vec<Value> {
    gateway
        .cli_stdout(&["outbox", "dead-letters", "--lrs", lrs, "--json"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Issue 17: a 409 counted as delivered whatever the LRS held under the id.
#[test]
fn issue17_a_409_for_a_different_statement_is_a_dead_letter_that_says_why() {
    let standin = StandIn::start();
    standin.with(|state| state.fail_next = usize::MAX);
    let gateway = spawn_gateway(Options::fast_xapi());
    add_lrs(&gateway, "holder", &standin.url(), &[]);
    gateway.post_accepted(&accepted_samples()[..2]);
    // The LRS already holds one of the ids, with other content.
    let held = key_statement(&gateway, "B02-LL0007-SPEL");
    let other = serde_json::json!({"id": held, "other": "content"});
    standin.with(|state| {
        state.stored.insert(held.clone(), other.clone());
        state.fail_next = 0;
    });
    gateway.wait_delivered("holder", WAIT);
    // The rest of the batch went through; the held one is a dead letter naming the difference.
    let mut others = gateway.statement_ids();
    others.remove(&held);
    let stored = standin.stored_ids();
    assert!(others.is_subset(&stored) && stored.len() == others.len() + 1);
    assert_eq!(standin.with(|state| state.stored[&held].clone()), other);
    let letters = dead_letters(&gateway, "holder");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["statement_id"], held.as_str());
    assert_eq!(letters[0]["status"], 409);
    let answer = letters[0]["answer"].as_str().unwrap();
    assert!(
        answer.contains("holds a different statement") && answer.contains("$.actor"),
        "{answer}"
    );
    assert!(standin.with(|state| state.gets.contains(&format!("statementId={held}"))));
    // Write-only credentials cannot show what the LRS holds: a dead letter that says so.
    let write_only = StandIn::start();
    write_only.with(|state| {
        state.stored.insert(held.clone(), other.clone());
        state.write_only = true;
    });
    add_lrs(&gateway, "write-only", &write_only.url(), &[]);
    gateway.wait_delivered("write-only", WAIT);
    let letters = dead_letters(&gateway, "write-only");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let answer = letters[0]["answer"].as_str().unwrap();
    assert!(
        answer.contains("refused to show") && answer.contains("HTTP 403"),
        "{answer}"
    );
}

/// A 409 for the statement the LRS already holds (a resend) is delivery, however the
/// LRS rewrote stored, authority, version and the timestamp's form.
#[test]
fn issue17_a_409_for_the_same_statement_counts_as_delivered() {
    let standin = StandIn::start();
    let gateway = spawn_gateway(Options::fast_xapi());
    add_lrs(&gateway, "first", &standin.url(), &[]);
    gateway.post_accepted(&accepted_samples()[..7]);
    gateway.wait_delivered("first", WAIT);
    assert_eq!(standin.stored_ids(), gateway.statement_ids());
    // A second subscription in the same identity resends everything; this LRS answers 409 to each.
    standin.with(|state| state.conflict_on_resend = true);
    add_lrs(&gateway, "again", &standin.url(), &[]);
    gateway.wait_delivered("again", WAIT);
    assert_eq!(
        gateway.outbox("again").1,
        0,
        "{:?}",
        dead_letters(&gateway, "again")
    );
    let (conflicts, gets) = standin.with(|state| {
        (
            state.posts.iter().filter(|post| post.status == 409).count(),
            state.gets.len(),
        )
    });
    assert!(
        conflicts > 0 && gets >= gateway.statement_ids().len(),
        "{conflicts} {gets}"
    );
    assert!(gateway.logs().contains("holds this same statement"));
}

/// Issue 17: a second subscription to the same LRS with `--identity pseudonym` after an
/// `eckid` one was reported delivered (409 on the same ids) while the LRS kept only the
/// identifying actors. Statement ids and registrations are now keyed per LRS for the
/// pseudonym identity, so the second subscription's copies carry ids of their own: the LRS
/// holds both copies, unlinkable by id, and nothing is counted delivered that is not held.
/// (A 409 for a different statement under the same id is a dead letter: see
/// `issue17_a_409_for_a_different_statement_is_a_dead_letter_that_says_why`.)
#[test]
fn issue17_a_pseudonym_subscription_to_an_lrs_that_holds_eckid_statements_gets_its_own_copies() {
    let lrs = RealLrs::start();
    let gateway = spawn_gateway(Options::fast_xapi());
    let credentials = ["--username", "test", "--password", "test-lrs-password"];
    add_lrs(&gateway, "identifying", &lrs.url(), &credentials);
    gateway.post_accepted(&accepted_samples());
    gateway.wait_delivered("identifying", WAIT);
    assert_eq!(gateway.outbox("identifying").1, 0);
    let identifying: BTreeSet<String> = lrs
        .all_statements()
        .iter()
        .map(|statement| statement["id"].as_str().unwrap().to_string())
        .collect();
    let mut flags = credentials.to_vec();
    flags.extend(["--identity", "pseudonym"]);
    add_lrs(&gateway, "pseudonymous", &lrs.url(), &flags);
    gateway.wait_delivered("pseudonymous", WAIT);
    assert_eq!(
        gateway.outbox("pseudonymous").1,
        0,
        "{:?}",
        dead_letters(&gateway, "pseudonymous")
    );
    // The LRS now holds a second, pseudonymous copy of every live statement, under other ids.
    let held = lrs.all_statements();
    let pseudonymous: Vec<&Value> = held
        .iter()
        .filter(|statement| !identifying.contains(statement["id"].as_str().unwrap()))
        .collect();
    assert_eq!(pseudonymous.len(), identifying.len(), "one copy each");
    let text = serde_json::to_string(&pseudonymous).unwrap();
    assert!(
        !text.contains("ketenid.nl"),
        "no ECK iD in the pseudonymous copies"
    );
    assert!(serde_json::to_string(&held).unwrap().contains("ketenid.nl"));
    let registrations = |statements: &[&Value]| -> BTreeSet<String> {
        statements
            .iter()
            .filter_map(|statement| statement["context"]["registration"].as_str())
            .map(str::to_string)
            .collect()
    };
    let identifying_statements: Vec<&Value> = held
        .iter()
        .filter(|statement| identifying.contains(statement["id"].as_str().unwrap()))
        .collect();
    assert!(
        registrations(&pseudonymous).is_disjoint(&registrations(&identifying_statements)),
        "the copies cannot be linked by registration either"
    );
    // What the real LRS returns for a statement it holds compares as the same statement.
    for statement in gateway.statements().iter().take(20) {
        let id = statement["id"].as_str().unwrap();
        let (code, body) = lrs.get(&format!("statementId={id}")).unwrap();
        let (code, body) = if code == 404 {
            lrs.get(&format!("voidedStatementId={id}")).unwrap()
        } else {
            (code, body)
        };
        assert_eq!(code, 200, "{id}");
        assert_eq!(
            uwlr_gateway::bridge::compare::difference(statement, &body),
            None,
            "{id}"
        );
    }
}

/// Issue 17: `Retry-After` as an HTTP-date was ignored (only seconds were read).
#[test]
fn issue17_retry_after_as_an_http_date_holds_the_retry_back() {
    let standin = StandIn::start();
    let wait = Duration::from_secs(4);
    standin.with(|state| {
        state.fail_next = 1;
        state.fail_status = 503;
        state.retry_after_date_in = Some(wait);
    });
    let gateway = spawn_gateway(Options::fast_xapi());
    add_lrs(&gateway, "busy", &standin.url(), &[]);
    gateway.post_accepted(&accepted_samples()[..1]);
    gateway.wait_delivered("busy", WAIT);
    let times = standin.with(|state| state.post_times.clone());
    assert!(times.len() >= 2);
    // The date has whole seconds, so at least wait - 1 s; the backoff alone is under 1 s.
    let gap = times[1] - times[0];
    assert!(
        gap >= wait - Duration::from_secs(1),
        "retried after {gap:?}"
    );
    // The seconds form still works.
    let standin = StandIn::start();
    standin.with(|state| {
        state.fail_next = 1;
        state.fail_status = 429;
        state.retry_after = Some("2".into());
    });
    add_lrs(&gateway, "limited", &standin.url(), &[]);
    gateway.wait_delivered("limited", WAIT);
    let times = standin.with(|state| state.post_times.clone());
    assert!(times[1] - times[0] >= Duration::from_secs(2));
}

#[test]
fn each_lrs_gets_only_its_schools_and_toetscodes_in_its_identity() {
    let everything = StandIn::start();
    let drip_only = StandIn::start();
    let other_school = StandIn::start();
    let gateway = spawn_gateway(Options::fast_xapi());
    add_lrs(
        &gateway,
        "all",
        &everything.url(),
        &["--identity", "pseudonym"],
    );
    add_lrs(
        &gateway,
        "drip",
        &drip_only.url(),
        &[
            "--toetscode",
            "DEMO-TAAL-DRIP",
            "--identity",
            "las",
            "--school",
            "99XX01",
        ],
    );
    add_lrs(&gateway, "yy", &other_school.url(), &["--school", "99YY"]);
    let samples = accepted_samples();
    gateway.post_accepted(&samples[..9]);
    for name in ["all", "drip", "yy"] {
        gateway.wait_delivered(name, WAIT);
    }
    // Issue 17: a pseudonym or LAS LRS holds every statement under ids of its own, so its
    // copies cannot be joined by id with the gateway's or another LRS's.
    let (pseudonymous_ids, gateway_ids) = (everything.stored_ids(), gateway.statement_ids());
    assert_eq!(pseudonymous_ids.len(), gateway_ids.len());
    assert!(pseudonymous_ids.is_disjoint(&gateway_ids));
    assert!(other_school.stored_ids().is_empty());
    let drip: Vec<Value> = drip_only.with(|state| state.stored.values().cloned().collect());
    let drip_ids = drip_only.stored_ids();
    assert!(drip_ids.is_disjoint(&pseudonymous_ids) && drip_ids.is_disjoint(&gateway_ids));
    let registrations = |statements: &[Value]| -> BTreeSet<String> {
        statements
            .iter()
            .filter_map(|s| s["context"]["registration"].as_str().map(str::to_string))
            .collect()
    };
    let everything_statements: Vec<Value> =
        everything.with(|state| state.stored.values().cloned().collect());
    assert!(registrations(&drip).is_disjoint(&registrations(&everything_statements)));
    assert!(
        registrations(&everything_statements).is_disjoint(&registrations(&gateway.statements()))
    );
    // A voiding statement names the id this LRS holds.
    for statement in &drip {
        if statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided" {
            assert!(drip_ids.contains(statement["object"]["id"].as_str().unwrap()));
        }
    }
    // Sample 01's statement, its voiding statement (sample 07) and the corrected statement.
    assert_eq!(drip.len(), 3, "{drip:?}");
    for statement in &drip {
        if statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided" {
            continue;
        }
        assert_eq!(statement["actor"]["account"]["name"], "LL0001");
        assert!(statement["object"]["id"]
            .as_str()
            .unwrap()
            .contains("/toets/DEMO-TAAL-DRIP"));
    }
    // The pseudonym LRS never sees an ECK iD, and its statements are still valid.
    let pseudonymous: Vec<Value> =
        everything.with(|state| state.stored.values().cloned().collect());
    assert!(!serde_json::to_string(&pseudonymous)
        .unwrap()
        .contains("ketenid.nl"));
    assert!(serde_json::to_string(&gateway.statements())
        .unwrap()
        .contains("ketenid.nl"));
    validate_strict(&pseudonymous);
    validate_strict(&drip);

    // A removed LRS gets nothing more, without a restart; the others go on.
    gateway.cli_stdout(&["lrs", "remove", "all"]);
    let late = StandIn::start();
    add_lrs(&gateway, "late", &late.url(), &["--from-now"]);
    std::thread::sleep(Duration::from_millis(500));
    let posts_before = everything.with(|state| state.posts.len());
    gateway.post_accepted(&samples[9..]);
    gateway.wait_delivered("yy", WAIT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(everything.with(|state| state.posts.len()), posts_before);
    gateway.wait_delivered("late", WAIT);
    let late_ids = late.stored_ids();
    assert_eq!(
        late_ids.len(),
        1,
        "only sample 10's statement: {late_ids:?}"
    );
    assert!(late_ids.contains(&key_statement(&gateway, "WO10-LL0002")));
    assert!(other_school.stored_ids().is_empty());
}

#[test]
fn quarantined_results_are_published_when_their_learner_is_imported() {
    let standin = StandIn::start();
    let gateway =
        spawn_gateway(Options::fast_xapi().envs(&[("UWLR_UNKNOWN_LEERLING", "quarantine")]));
    add_lrs(&gateway, "q", &standin.url(), &[]);
    gateway.post_accepted(&accepted_samples()[..1]);
    assert_eq!(
        gateway.post_sample("41-uwlr-leerling-onbekend.xml").status,
        200
    );
    gateway.wait_delivered("q", WAIT);
    let before = gateway.statement_ids();
    assert_eq!(
        before.len(),
        1,
        "the quarantined result has no statement yet"
    );
    let csv = gateway.scratch().join("roster.csv");
    std::fs::write(&csv, "99XX01,LL9999,,Onbekend tot nu\n").unwrap();
    let printed = gateway.cli_stdout(&["leerlingen", "import", csv.to_str().unwrap()]);
    assert!(printed.contains("released 1 afnames"), "{printed}");
    assert_eq!(gateway.statement_ids().len(), 2);
    gateway.wait_delivered("q", WAIT);
    assert_eq!(standin.stored_ids(), gateway.statement_ids());
    validate_strict(&gateway.statements());
}

#[test]
fn sigkill_mid_delivery_then_restart_loses_and_duplicates_nothing() {
    let standin = StandIn::start();
    standin.with(|state| state.every_delay = Duration::from_millis(150));
    let mut gateway = spawn_gateway(Options::fast_xapi().envs(&[("UWLR_XAPI_BATCH_SIZE", "3")]));
    add_lrs(&gateway, "crash", &standin.url(), &[]);
    gateway.post_accepted(&accepted_samples());
    gateway.wait_for("a few batches", WAIT, || {
        standin.with(|state| state.posts.len() >= 4)
    });
    let generated = gateway.statement_ids();
    gateway.kill();
    let (pending, _) = gateway.outbox("crash");
    assert!(pending > 0, "the kill came too late to test anything");
    let posts_at_kill = standin.with(|state| state.posts.len());
    gateway.start();
    gateway.wait_delivered("crash", WAIT);
    assert_eq!(
        gateway.statement_ids(),
        generated,
        "a restart generates no new ids"
    );
    assert_eq!(standin.stored_ids(), generated);
    // At most the batch in flight at the kill was sent twice, under the same ids.
    let posts = standin.with(|state| state.posts.clone());
    let sent: usize = posts.iter().map(|post| post.ids.len()).sum();
    assert!(
        sent <= generated.len() + 2 * 3,
        "sent {sent} for {} statements",
        generated.len()
    );
    assert!(posts.len() > posts_at_kill);
    let all: Vec<Value> = standin.with(|state| state.stored.values().cloned().collect());
    assert_one_live_statement_per_result(
        &all,
        &voided(&gateway).keys().cloned().collect(),
        "generated",
    );
}

#[test]
fn sigterm_stops_delivery_cleanly_and_a_restart_finishes_it() {
    let standin = StandIn::start();
    standin.with(|state| state.every_delay = Duration::from_millis(300));
    let mut gateway = spawn_gateway(Options::fast_xapi().envs(&[("UWLR_XAPI_BATCH_SIZE", "2")]));
    add_lrs(&gateway, "slow", &standin.url(), &[]);
    gateway.post_accepted(&accepted_samples()[..3]);
    gateway.wait_for("a batch", WAIT, || {
        standin.with(|state| !state.posts.is_empty())
    });
    let took = gateway.terminate();
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    assert!(gateway.logs().contains("outbox worker stopped"));
    gateway.start();
    gateway.wait_delivered("slow", WAIT);
    assert_eq!(standin.stored_ids(), gateway.statement_ids());
}

#[test]
fn content_going_back_to_a_voided_version_is_reissued_under_a_new_id() {
    let standin = StandIn::start();
    let gateway = spawn_gateway(Options::fast_xapi());
    add_lrs(&gateway, "history", &standin.url(), &[]);
    let sample = |aanmaakdatum: &str, score: &str| {
        String::from_utf8(read_sample("07-update-afname.xml"))
            .unwrap()
            .replace("2026-10-07T08:00:00", aanmaakdatum)
            .replace("<score>9</score>", &format!("<score>{score}</score>"))
            .into_bytes()
    };
    assert_eq!(gateway.post_sample("01-drip-een-resultaat.xml").status, 200); // score 7
    let first = key_statement(&gateway, "R-DRIP-0001");
    assert_eq!(gateway.post(sample("2026-10-07T08:00:00", "9")).status, 200);
    assert_eq!(gateway.post(sample("2026-10-08T08:00:00", "7")).status, 200); // back to 7
    gateway.wait_delivered("history", WAIT);
    let statements = gateway.statements();
    let scored: Vec<&Value> = statements
        .iter()
        .filter(|s| s["verb"]["id"] == "http://adlnet.gov/expapi/verbs/scored")
        .collect();
    assert_eq!(scored.len(), 3);
    let ids: BTreeSet<&str> = scored.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "the re-issue has a fresh id");
    assert_eq!(scored[2]["result"]["score"]["raw"], 7);
    assert_ne!(scored[2]["id"], first.as_str());
    let voided = voided(&gateway);
    assert_eq!(voided.len(), 2);
    assert!(voided.contains_key(&first));
    assert_eq!(standin.stored_ids(), gateway.statement_ids());
    validate_strict(&statements);
}

/// GET on the gateway's main listener, with the admin token; (status, body).
fn get_operations(gateway: &Gateway, path: &str) -> (u16, String) {
    let base = gateway
        .endpoint
        .strip_suffix("/uwlr/leerresultaten")
        .expect("endpoint");
    let response = reqwest::blocking::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth("beheerder-token-voor-de-brug")
        .send()
        .expect("request to the gateway");
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

#[test]
fn dead_letters_turn_ready_off_and_show_per_lrs_in_the_metrics() {
    let standin = StandIn::start();
    standin.with(|state| {
        state.refuse_keys.insert("B02-LL0008-LEES".into());
        state.fail_next = 1;
        state.fail_status = 503;
    });
    let gateway = spawn_gateway(Options::fast_xapi().envs(&[
        ("UWLR_READY_MAX_DEAD_LETTERS", "0"),
        ("UWLR_ADMIN_TOKEN", "beheerder-token-voor-de-brug"),
    ]));
    assert_eq!(get_operations(&gateway, "/ready").0, 200);
    add_lrs(&gateway, "strict", &standin.url(), &[]);
    gateway.post_accepted(&accepted_samples()[..2]);
    gateway.wait_delivered("strict", WAIT);
    let (status, body) = get_operations(&gateway, "/ready");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("1 dead letters (ready_max_dead_letters = 0)"),
        "{body}"
    );
    // The sampler reads the delivery state every 2 s.
    gateway.wait_for("the per-LRS metrics", Duration::from_secs(20), || {
        let metrics = get_operations(&gateway, "/metrics").1;
        metrics.contains("uwlr_lrs_dead_letters{lrs=\"strict\"} 1")
            && metrics.contains("uwlr_lrs_pending_statements{lrs=\"strict\"} 0")
            && metrics.contains("uwlr_lrs_retries_total{lrs=\"strict\"} 1")
            // Later batches went through, which clears the last error.
            && metrics.contains("uwlr_lrs_last_error{lrs=\"strict\",class=\"none\"} 1")
            && metrics.contains("uwlr_lrs_delivery_lag_seconds{lrs=\"strict\"} 0")
    });
    standin.with(|state| state.refuse_keys.clear());
    gateway.cli_stdout(&["outbox", "retry", "--lrs", "strict"]);
    gateway.wait_for("ready again", WAIT, || {
        get_operations(&gateway, "/ready").0 == 200
    });
}

/// Runs shared/tools/xapi-validate --strict over statements; panics with its report when any is invalid.
pub fn validate_strict(statements: &[serde_json::Value]) {
    let tool = repo_root().join("../shared/tools/xapi-validate");
    assert!(
        tool.exists(),
        "{} is missing (shared/ must sit beside the repository)",
        tool.display()
    );
    let input = statements
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let mut child = std::process::Command::new(&tool)
        .args(["--strict", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "xapi-validate --strict failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
/// Never two live (not voided, not voiding) statements for one resultaatkey among `statements`.
pub fn assert_one_live_statement_per_result(
    statements: &[serde_json::Value],
    voided_ids: &BTreeSet<String>,
    context: &str,
) {
    let key = format!("{}/extension/resultaatkey", BASE_IRI);
    let mut live: BTreeMap<String, String> = BTreeMap::new();
    for statement in statements {
        let id = statement["id"].as_str().unwrap().to_string();
        if statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided"
            || voided_ids.contains(&id)
        {
            continue;
        }
        let resultaatkey = statement["context"]["extensions"][&key]
            .as_str()
            .unwrap()
            .to_string();
        if let Some(other) = live.insert(resultaatkey.clone(), id.clone()) {
            panic!("{context}: result {resultaatkey} has two live statements: {other} and {id}");
        }
    }
}
