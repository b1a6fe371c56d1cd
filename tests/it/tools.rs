//! The tester tools against a running gateway: `replay --expect` and `generate`.

use crate::harness::{
    binary, count, manifest, repo_root, rows, run, spawn_default, spawn_gateway, CliOutput, Options,
};
use std::process::Command;

/// Runs `uwlr-gateway replay ARGS...` in the repository root with the time zone `TZ`.
fn replay_in(time_zone: &str, args: &[&str]) -> CliOutput {
    let scratch = tempfile::tempdir().unwrap();
    let mut command = Command::new(binary());
    command
        .current_dir(repo_root())
        .env("TZ", time_zone)
        .arg("--data-dir")
        .arg(scratch.path())
        .arg("replay")
        .args(args);
    run(command)
}

#[test]
fn replay_of_samples_matches_the_manifest() {
    let gateway = spawn_default();
    let output = gateway
        .cli(&[
            "replay",
            "samples",
            "--url",
            &gateway.endpoint,
            "--expect",
            "samples/manifest.toml",
        ])
        .success();
    assert!(output.stdout.contains("accepted"), "{}", output.stdout);
    let connection = gateway.db();
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"
        ),
        accepted_samples()
    );
    // Replayed again, the valid samples are replays of accepted bytes; --expect still holds.
    gateway
        .cli(&[
            "replay",
            "samples",
            "--url",
            &gateway.endpoint,
            "--expect",
            "samples/manifest.toml",
        ])
        .success();
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"
        ),
        accepted_samples()
    );
    // A manifest that does not match makes replay fail.
    let wrong = gateway.scratch().join("wrong-manifest.toml");
    std::fs::write(
        &wrong,
        "[[sample]]\nfile = \"01-drip-een-resultaat.xml\"\ndescription = \"x\"\noutcome = \"fault\"\nfaultcode = \"Client.OngeldigBericht\"\nrules = [\"UWLR-XSD\"]\n",
    )
    .unwrap();
    let output = gateway.cli(&[
        "replay",
        "samples/01-drip-een-resultaat.xml",
        "--url",
        &gateway.endpoint,
        "--expect",
        wrong.to_str().unwrap(),
    ]);
    assert!(!output.status.success(), "{}", output.stdout);
}

#[test]
fn generated_drip_messages_replay_without_a_fault() {
    let gateway = spawn_default();
    let out = gateway.scratch().join("generated");
    let out_text = out.to_str().unwrap();
    gateway
        .cli(&[
            "generate",
            "--learners",
            "12",
            "--toetsen",
            "3",
            "--afnames",
            "80",
            "--seed",
            "7",
            "--drip",
            "--out",
            out_text,
        ])
        .success();
    let roster = out.join("roster.csv");
    gateway
        .cli(&["leerlingen", "import", roster.to_str().unwrap()])
        .success();
    gateway
        .cli(&["replay", out_text, "--url", &gateway.endpoint])
        .success();
    let connection = gateway.db();
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM receipts WHERE outcome <> 'accepted'"
        ),
        0
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM toetsafnames WHERE derived = 0"
        ),
        80
    );
    // The same seed writes the same messages.
    let again = gateway.scratch().join("again");
    gateway
        .cli(&[
            "generate",
            "--learners",
            "12",
            "--toetsen",
            "3",
            "--afnames",
            "80",
            "--seed",
            "7",
            "--drip",
            "--out",
            again.to_str().unwrap(),
        ])
        .success();
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".xml") {
            assert_eq!(
                std::fs::read(entry.path()).unwrap(),
                std::fs::read(again.join(&name)).unwrap(),
                "{name:?}"
            );
        }
    }
}

/// `--restamp` shifts every aanmaakdatum by one offset, written with `Z`: a gateway that
/// has seen the samples gives each restamped sample its documented verdict (sample 36
/// stays older than the last accepted one), whatever the replaying host's time zone.
/// Before, every file got "now" in the host's local time without an offset.
#[test]
fn restamped_samples_keep_their_verdicts_on_hosts_in_utc_and_in_amsterdam() {
    for time_zone in ["UTC", "Europe/Amsterdam"] {
        let gateway = spawn_default();
        let expect = [
            "--url",
            &gateway.endpoint,
            "--expect",
            "samples/manifest.toml",
        ];
        let mut plain = vec!["samples"];
        plain.extend(expect);
        replay_in(time_zone, &plain).success();
        let mut restamped = vec!["samples", "--restamp"];
        restamped.extend(expect);
        let output = replay_in(time_zone, &restamped);
        assert!(
            output.status.success(),
            "TZ={time_zone}:\n{}\n{}",
            output.stdout,
            output.stderr
        );
        let connection = gateway.db();
        let stamps = rows(
            &connection,
            &format!(
                "SELECT aanmaakdatum FROM receipts WHERE outcome = 'accepted' ORDER BY {}",
                crate::harness::arrival_order(&connection)
            ),
        );
        let accepted = accepted_samples() as usize;
        assert_eq!(stamps.len(), 2 * accepted, "TZ={time_zone}: {stamps:?}");
        // Samples 01-10 are a day apart; restamped, they still are, in UTC, and the later
        // accepted samples (odd stamps: 24:00:00, +14:00) keep their order after them.
        let instants: Vec<chrono::DateTime<chrono::FixedOffset>> = stamps[accepted..]
            .iter()
            .map(|stamp| {
                assert!(stamp.ends_with('Z'), "TZ={time_zone}: {stamp}");
                chrono::DateTime::parse_from_rfc3339(stamp).unwrap()
            })
            .collect();
        for pair in instants[..10].windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                chrono::Duration::days(1),
                "TZ={time_zone}: {stamps:?}"
            );
        }
        for pair in instants.windows(2) {
            assert!(pair[0] < pair[1], "TZ={time_zone}: {stamps:?}");
        }
        let now = chrono::Utc::now();
        assert!(instants.iter().all(|instant| *instant <= now), "{stamps:?}");
    }
}

/// A restamped message sent from a host in Amsterdam and then from one in UTC is later
/// each time; a stamp in local time without an offset was an hour early from UTC.
#[test]
fn restamped_replays_from_hosts_in_different_time_zones_stay_in_order() {
    let gateway = spawn_default();
    for time_zone in ["Europe/Amsterdam", "UTC", "Europe/Amsterdam", "UTC"] {
        let output = replay_in(
            time_zone,
            &[
                "samples/01-drip-een-resultaat.xml",
                "--restamp",
                "--url",
                &gateway.endpoint,
            ],
        );
        assert!(
            output.status.success(),
            "TZ={time_zone}:\n{}\n{}",
            output.stdout,
            output.stderr
        );
    }
    assert_eq!(
        count(
            &gateway.db(),
            "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"
        ),
        4
    );
}

/// `replay` speaks HTTPS to the gateway's own TLS mode: a certificate it does not know
/// is a transport error that names the cause, `--ca-file` makes it trusted, and a
/// refused connection and a timeout say so too. Each exits 1 (no answer).
#[test]
fn replay_speaks_https_with_a_ca_file_and_names_the_cause_of_transport_errors() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("self-signed certificate");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let gateway = spawn_gateway(
        Options::default()
            .env("UWLR_TLS_CERT", cert.to_str().unwrap())
            .env("UWLR_TLS_KEY", key.to_str().unwrap()),
    );
    assert!(
        gateway.endpoint.starts_with("https://"),
        "{}",
        gateway.endpoint
    );
    let sample = "samples/01-drip-een-resultaat.xml";
    let unknown = replay_in("UTC", &[sample, "--url", &gateway.endpoint]);
    assert_eq!(
        unknown.status.code(),
        Some(1),
        "{}\n{}",
        unknown.stdout,
        unknown.stderr
    );
    assert!(
        unknown.stderr.contains(&format!("{sample}: no answer: "))
            && unknown.stderr.contains("UnknownIssuer"),
        "{}",
        unknown.stderr
    );
    let trusted = replay_in(
        "UTC",
        &[
            sample,
            "--url",
            &gateway.endpoint,
            "--ca-file",
            cert.to_str().unwrap(),
        ],
    );
    assert!(
        trusted.status.success(),
        "{}\n{}",
        trusted.stdout,
        trusted.stderr
    );
    assert_eq!(
        count(
            &gateway.db(),
            "SELECT count(*) FROM receipts WHERE outcome = 'accepted'"
        ),
        1
    );
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = replay_in(
        "UTC",
        &[
            sample,
            "--url",
            &format!("http://127.0.0.1:{port}/uwlr/leerresultaten"),
        ],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("Connection refused"),
        "{}",
        refused.stderr
    );
    // A listener that never answers: the call times out and says so.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!(
        "http://{}/uwlr/leerresultaten",
        silent.local_addr().unwrap()
    );
    let timed_out = replay_in("UTC", &[sample, "--url", &silent_url, "--timeout", "1"]);
    assert_eq!(timed_out.status.code(), Some(1), "{}", timed_out.stderr);
    assert!(
        timed_out.stderr.contains("timed out"),
        "{}",
        timed_out.stderr
    );
    drop(silent);
    // A CA file without a certificate is refused before anything is sent.
    let empty = replay_in(
        "UTC",
        &[
            sample,
            "--url",
            &gateway.endpoint,
            "--ca-file",
            key.to_str().unwrap(),
        ],
    );
    assert!(!empty.status.success());
    assert!(
        empty.stderr.contains("no PEM certificate"),
        "{}",
        empty.stderr
    );
}

/// How many samples the manifest expects to be accepted.
fn accepted_samples() -> i64 {
    manifest()
        .iter()
        .filter(|sample| sample.outcome == "accepted")
        .count() as i64
}
