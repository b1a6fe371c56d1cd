//! The tester tools against a running gateway: `replay --expect` and `generate`.

use crate::support::{count, manifest, spawn_default};

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

/// How many samples the manifest expects to be accepted.
fn accepted_samples() -> i64 {
    manifest()
        .iter()
        .filter(|sample| sample.outcome == "accepted")
        .count() as i64
}
