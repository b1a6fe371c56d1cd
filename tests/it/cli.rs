//! The CLI on the same data dir as a running server: clients, schools, validate, receipts.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::DEMO_KLANTCODE;
use crate::harness::{
    cli_with_data_dir, manifest, repo_root, send_and_check, spawn_default, Expect,
};
use std::collections::BTreeSet;
use uwlr_gateway::domain::Rule;

fn drip(seconds: u32, key: &str) -> Message {
    Message::demo(&aanmaakdatum(seconds))
        .afname("LL0001", vec![Resultaat::score(key, "CLI-T", 5)])
        .toets(Toets::new("CLI-T"))
}

#[test]
fn clients_add_prints_a_working_key_once_and_revoke_withdraws_it() {
    let gateway = spawn_default();
    let added = gateway
        .cli(&[
            "clients",
            "add",
            "EA-NIEUW",
            "--klantnaam",
            "Nieuwe Uitgever",
        ])
        .success();
    let key = added
        .stdout
        .lines()
        .last()
        .expect("the key line")
        .trim()
        .to_string();
    assert_eq!(
        key.len(),
        64,
        "a fresh 256-bit key in hex: {}",
        added.stdout
    );
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
    let listed = gateway.cli(&["clients", "list"]).success();
    assert!(
        listed.stdout.contains("EA-NIEUW") && listed.stdout.contains("active"),
        "{}",
        listed.stdout
    );
    assert!(
        !listed.stdout.contains(&key),
        "clients list never shows a key"
    );
    // A second add of the same klantcode is refused.
    let again = gateway.cli(&[
        "clients",
        "add",
        "EA-NIEUW",
        "--klantnaam",
        "Nieuwe Uitgever",
    ]);
    assert!(!again.status.success(), "{}", again.stdout);

    gateway
        .cli(&[
            "schools",
            "activate",
            "99XX01",
            "--klantcode",
            "EA-NIEUW",
            "--mandate",
            "DPA-NIEUW",
            "--valid-from",
            "2020-01-01",
        ])
        .success();
    let message = drip(1, "CLI-1").client("EA-NIEUW", "Nieuwe Uitgever", &key);
    send_and_check(
        &gateway,
        "new client with its key",
        message.envelope(),
        &Expect::Accepted,
    );
    let wrong = drip(2, "CLI-2").client("EA-NIEUW", "Nieuwe Uitgever", &format!("{key}x"));
    send_and_check(
        &gateway,
        "wrong key",
        wrong.envelope(),
        &Expect::fault("Client.AutorisatieOngeldig", &["UWLR-AUTORISATIE"]),
    );
    let wrong_name = drip(2, "CLI-2").client("EA-NIEUW", "Andere Naam", &key);
    send_and_check(
        &gateway,
        "wrong klantnaam",
        wrong_name.envelope(),
        &Expect::fault("Client.OngeldigeKlantIdentificatie", &["UWLR-KLANT"]),
    );

    gateway.cli(&["clients", "revoke", "EA-NIEUW"]).success();
    let revoked = drip(3, "CLI-3").client("EA-NIEUW", "Nieuwe Uitgever", &key);
    send_and_check(
        &gateway,
        "revoked client",
        revoked.envelope(),
        &Expect::fault("Client.AutorisatieOngeldig", &["UWLR-AUTORISATIE"]),
    );
    let listed = gateway.cli(&["clients", "list"]).success();
    assert!(
        listed
            .stdout
            .lines()
            .any(|line| line.contains("EA-NIEUW") && line.contains("revoked")),
        "{}",
        listed.stdout
    );
}

#[test]
fn clients_add_with_key_takes_over_an_existing_key() {
    let gateway = spawn_default();
    let added = gateway
        .cli(&[
            "clients",
            "add",
            "EA-OUD",
            "--klantnaam",
            "Oude Uitgever",
            "--key",
            "sleutel-uit-oud-systeem",
        ])
        .success();
    assert!(
        !added.stdout.contains("sleutel-uit-oud-systeem"),
        "a given key is not echoed: {}",
        added.stdout
    );
    gateway
        .cli(&[
            "schools",
            "activate",
            "99XX01",
            "--klantcode",
            "EA-OUD",
            "--mandate",
            "DPA-OUD",
        ])
        .success();
    let message = drip(1, "OUD-1").client("EA-OUD", "Oude Uitgever", "sleutel-uit-oud-systeem");
    send_and_check(
        &gateway,
        "taken-over key",
        message.envelope(),
        &Expect::Accepted,
    );
}

#[test]
// Kept whole (over 120 lines): one scenario whose every step starts from the state the steps before it left.
fn schools_activate_deactivate_and_expired_mandates() {
    let gateway = spawn_default();
    // A mandate that ended in the past: the activation exists but does not allow sending.
    gateway
        .cli(&[
            "schools",
            "activate",
            "99ZZ",
            "--klantcode",
            DEMO_KLANTCODE,
            "--mandate",
            "DPA-VERLOPEN",
            "--valid-from",
            "2020-01-01",
            "--valid-until",
            "2021-12-31",
        ])
        .success();
    let activatie = Expect::fault("Client.AutorisatieOngeldig", &["UWLR-ACTIVATIE"]);
    let to_99zz = drip(1, "ZZ-1").school("99ZZ");
    send_and_check(
        &gateway,
        "mandate valid only in the past",
        to_99zz.envelope(),
        &activatie,
    );
    // A mandate that starts in the future does not allow sending either.
    gateway
        .cli(&[
            "schools",
            "activate",
            "99ZZ",
            "--klantcode",
            DEMO_KLANTCODE,
            "--mandate",
            "DPA-TOEKOMST",
            "--valid-from",
            "2999-01-01",
        ])
        .success();
    send_and_check(
        &gateway,
        "mandate valid only in the future",
        drip(2, "ZZ-2").school("99ZZ").envelope(),
        &activatie,
    );
    let listed = gateway.cli(&["schools", "list"]).success();
    assert!(
        listed
            .stdout
            .lines()
            .any(|line| line.contains("99ZZ") && line.contains("DPA-TOEKOMST")),
        "{}",
        listed.stdout
    );
    // Malformed dates and a missing mandate are refused by the CLI.
    let bad = gateway.cli(&[
        "schools",
        "activate",
        "99ZZ",
        "--klantcode",
        DEMO_KLANTCODE,
        "--mandate",
        "X",
        "--valid-from",
        "1-1-2020",
    ]);
    assert!(!bad.status.success());
    let bad = gateway.cli(&[
        "schools",
        "activate",
        "99ZZ",
        "--klantcode",
        "GEEN-KLANT",
        "--mandate",
        "X",
    ]);
    assert!(!bad.status.success());

    // The demo activation works until it is deactivated.
    send_and_check(
        &gateway,
        "active demo school",
        drip(3, "XX-1").envelope(),
        &Expect::Accepted,
    );
    gateway
        .cli(&[
            "schools",
            "deactivate",
            "99XX01",
            "--klantcode",
            DEMO_KLANTCODE,
        ])
        .success();
    send_and_check(
        &gateway,
        "deactivated",
        drip(4, "XX-2").envelope(),
        &activatie,
    );
    let listed = gateway.cli(&["schools", "list"]).success();
    assert!(
        listed
            .stdout
            .lines()
            .any(|line| line.starts_with("99XX01") && line.contains("inactive")),
        "{}",
        listed.stdout
    );
    // Deactivating twice is an error.
    assert!(!gateway
        .cli(&[
            "schools",
            "deactivate",
            "99XX01",
            "--klantcode",
            DEMO_KLANTCODE
        ])
        .status
        .success());
    // Activating again restores it.
    gateway
        .cli(&[
            "schools",
            "activate",
            "99XX01",
            "--klantcode",
            DEMO_KLANTCODE,
            "--mandate",
            "DPA-OPNIEUW",
        ])
        .success();
    send_and_check(
        &gateway,
        "reactivated",
        drip(5, "XX-3").envelope(),
        &Expect::Accepted,
    );
}

/// Runs `validate` in the repository root, where sample paths are relative.
fn validate(files: &[&str]) -> crate::harness::CliOutput {
    let scratch = tempfile::tempdir().unwrap();
    let mut args = vec!["validate"];
    args.extend_from_slice(files);
    cli_with_data_dir(scratch.path(), &args)
}

#[test]
fn validate_accepts_every_valid_sample() {
    let files: Vec<String> = manifest()
        .into_iter()
        .filter(|sample| sample.outcome == "accepted")
        .map(|sample| format!("samples/{}", sample.file))
        .collect();
    let arguments: Vec<&str> = files.iter().map(String::as_str).collect();
    let output = validate(&arguments);
    assert!(
        output.status.success(),
        "{}\n{}",
        output.stdout,
        output.stderr
    );
    for file in &files {
        assert!(
            output
                .stdout
                .lines()
                .any(|line| line == format!("{file}: valid")),
            "{file}: {}",
            output.stdout
        );
    }
}

#[test]
fn validate_reports_file_line_and_rule_for_offline_failures() {
    // The samples whose rule needs no server state.
    let cases = [
        ("samples/30-uwlr-bericht-geen-xml.xml", "UWLR-BERICHT"),
        ("samples/31-uwlr-bericht-soap12.xml", "UWLR-BERICHT"),
        ("samples/32-uwlr-bericht-doctype-entity.xml", "UWLR-BERICHT"),
        ("samples/33-uwlr-xsd-decimal-score.xml", "UWLR-XSD"),
        ("samples/34-uwlr-xsd-keyref-toetscode.xml", "UWLR-XSD"),
        ("samples/35-uwlr-xsdversie-2p1.xml", "UWLR-XSDVERSIE"),
        ("samples/42-uwlr-vdex-vakgebied-rekenen.xml", "UWLR-VDEX"),
        (
            "samples/45-uwlr-normering-begin-groter-dan-eind.xml",
            "UWLR-NORMERING",
        ),
        ("samples/52-uwlr-toekomst-aanmaakdatum.xml", "UWLR-TOEKOMST"),
    ];
    for (file, rule) in cases {
        let output = validate(&[file]);
        assert!(
            !output.status.success(),
            "{file} must fail validation: {}",
            output.stdout
        );
        let findings: Vec<&str> = output
            .stdout
            .lines()
            .filter(|line| line.starts_with(&format!("{file}:")))
            .collect();
        assert!(!findings.is_empty(), "{file}: {}", output.stdout);
        for line in &findings {
            // file:line:column: RULE message
            let rest = &line[file.len() + 1..];
            let mut parts = rest.splitn(3, ':');
            let line_number: u64 = parts
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("no line number: {line}"));
            let _column: u64 = parts
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("no column: {line}"));
            assert!(line_number >= 1, "{line}");
            let message = parts.next().unwrap().trim_start();
            assert!(
                message.starts_with(&format!("{rule} ")),
                "{file}: expected {rule}: {line}"
            );
        }
    }
    // One failing file among valid ones fails the whole run and names only itself.
    let output = validate(&[
        "samples/01-drip-een-resultaat.xml",
        "samples/35-uwlr-xsdversie-2p1.xml",
    ]);
    assert!(!output.status.success());
    assert!(
        output
            .stdout
            .contains("samples/01-drip-een-resultaat.xml: valid"),
        "{}",
        output.stdout
    );
    assert!(
        !output
            .stdout
            .contains("samples/01-drip-een-resultaat.xml:1"),
        "{}",
        output.stdout
    );
}

/// What `validate` printed about one file: its rule codes, whether it said `valid`, and
/// its "not checked offline" note.
struct ValidateVerdict {
    valid: bool,
    rules: BTreeSet<String>,
    unchecked: Option<String>,
}

fn verdict_of(stdout: &str, file: &str) -> ValidateVerdict {
    let prefix = format!("{file}:");
    let mut verdict = ValidateVerdict {
        valid: false,
        rules: BTreeSet::new(),
        unchecked: None,
    };
    for line in stdout.lines().filter(|line| line.starts_with(&prefix)) {
        let rest = line[prefix.len()..].trim_start();
        if rest == "valid" {
            verdict.valid = true;
        } else if let Some(note) = rest.strip_prefix("not checked offline: ") {
            verdict.unchecked = Some(note.to_string());
        } else {
            // LINE:COLUMN: RULE message
            let rule = rest.splitn(3, ':').nth(2).unwrap_or("").trim_start();
            let rule = rule.split(' ').next().unwrap_or("");
            verdict.rules.insert(rule.to_string());
        }
    }
    verdict
}

/// Table-driven over samples/manifest.toml: wherever a sample's rules need no store,
/// `validate` gives the gateway's verdict (the same rule codes); where they do, it says
/// `valid` (or the same rules, for a missing autorisatie header) and, for toets versions
/// from earlier messages, what it could not check.
/// Samples 43 (score above the normering) and 44 (unknown onderdeel) printed `valid` before.
#[test]
fn validate_agrees_with_the_manifest_wherever_the_rule_needs_no_store() {
    let samples = manifest();
    let files: Vec<String> = samples
        .iter()
        .map(|sample| format!("samples/{}", sample.file))
        .collect();
    let arguments: Vec<&str> = files.iter().map(String::as_str).collect();
    let output = validate(&arguments);
    assert!(!output.status.success(), "{}", output.stdout);
    let mut offline_faults = 0;
    for (sample, file) in samples.iter().zip(&files) {
        let verdict = verdict_of(&output.stdout, file);
        let expected: BTreeSet<String> = sample.rules.iter().cloned().collect();
        let needs_store = sample
            .rules
            .iter()
            .any(|code| Rule::from_code(code).expect("known rule").needs_store());
        if sample.outcome == "accepted" {
            assert!(
                verdict.valid && verdict.rules.is_empty(),
                "{file}: expected valid offline, got {:?}\n{}",
                verdict.rules,
                output.stdout
            );
        } else if needs_store {
            // Never a different verdict: valid, or the gateway's own rules.
            assert!(
                (verdict.valid && verdict.rules.is_empty())
                    || (!verdict.valid && verdict.rules == expected),
                "{file}: expected valid or {expected:?} offline, got {:?}\n{}",
                verdict.rules,
                output.stdout
            );
        } else {
            offline_faults += 1;
            assert!(
                !verdict.valid,
                "{file}: must not be valid\n{}",
                output.stdout
            );
            assert_eq!(verdict.rules, expected, "{file}\n{}", output.stdout);
        }
        if sample.rules.iter().any(|code| code == "UWLR-TOETSVERSIE") {
            let note = verdict.unchecked.unwrap_or_else(|| {
                panic!("{file}: no 'not checked offline' note\n{}", output.stdout)
            });
            assert!(note.contains("UWLR-TOETSVERSIE"), "{note}");
        } else {
            assert!(
                verdict.unchecked.is_none(),
                "{file}: {:?}",
                verdict.unchecked
            );
        }
    }
    assert!(offline_faults >= 10, "only {offline_faults} offline faults");
    // An envelope without the autorisatie header needs no store to be refused.
    let no_header = verdict_of(
        &output.stdout,
        "samples/38-uwlr-autorisatie-geen-header.xml",
    );
    assert_eq!(
        no_header.rules,
        BTreeSet::from(["UWLR-AUTORISATIE".to_string()]),
        "{}",
        output.stdout
    );
    for rule in [
        "UWLR-SCORE",
        "UWLR-ONDERDEEL",
        "UWLR-NORMERING",
        "UWLR-VDEX",
        "UWLR-XSDVERSIE",
    ] {
        assert!(
            samples
                .iter()
                .any(|sample| sample.rules == [rule] && sample.outcome == "fault"),
            "no sample for {rule}"
        );
    }
    // The run ends by naming the rules only the gateway can check.
    let last = output.stdout.lines().last().unwrap_or_default();
    for rule in Rule::ALL.into_iter().filter(|rule| rule.needs_store()) {
        assert!(last.contains(rule.code()), "{last}");
    }
    assert!(last.starts_with("not checked offline"), "{last}");
}

/// Messages built for the store-free rules, each posted to the gateway and validated
/// offline: both name the same rules, derived sums of onderdeel scores included.
#[test]
fn validate_and_the_gateway_agree_on_rules_that_need_no_store() {
    let gateway = spawn_default();
    let scratch = tempfile::tempdir().unwrap();
    let som = || {
        Toets::new("AGR-SOM")
            .max(Some(15))
            .onderdeel("A", 10)
            .onderdeel("B", 10)
    };
    let cases: Vec<(&str, Message, &[&str])> = vec![
        (
            "onderdeel scores within their normering",
            Message::demo(&aanmaakdatum(1)).toets(som()).afname(
                "LL0001",
                vec![
                    Resultaat::score("AGR-1A", "AGR-SOM", 7).onderdeel("A"),
                    Resultaat::score("AGR-1B", "AGR-SOM", 8).onderdeel("B"),
                ],
            ),
            &[],
        ),
        (
            "sum of onderdeel scores above the toetsnormering",
            Message::demo(&aanmaakdatum(2)).toets(som()).afname(
                "LL0002",
                vec![
                    Resultaat::score("AGR-2A", "AGR-SOM", 9).onderdeel("A"),
                    Resultaat::score("AGR-2B", "AGR-SOM", 9).onderdeel("B"),
                ],
            ),
            &["UWLR-SCORE"],
        ),
        (
            "onderdeel score above its own normering",
            Message::demo(&aanmaakdatum(3)).toets(som()).afname(
                "LL0003",
                vec![Resultaat::score("AGR-3A", "AGR-SOM", 11).onderdeel("A")],
            ),
            &["UWLR-SCORE"],
        ),
        (
            "onderdeel the pinned version does not define, and a score above the normering",
            Message::demo(&aanmaakdatum(4))
                .toets(Toets::new("AGR-V").versie("2").onderdeel("A", 5))
                .afname(
                    "LL0004",
                    vec![
                        Resultaat::score("AGR-4A", "AGR-V", 3).onderdeel("C"),
                        Resultaat::score("AGR-4B", "AGR-V", 12).versie("2"),
                    ],
                ),
            &["UWLR-ONDERDEEL", "UWLR-SCORE"],
        ),
    ];
    for (index, (what, message, rules)) in cases.into_iter().enumerate() {
        let expected = match rules {
            [] => Expect::Accepted,
            _ => Expect::fault(
                if rules.contains(&"UWLR-SCORE") {
                    "Client.ScoreOngeldig"
                } else {
                    "Client.OngeldigBericht"
                },
                rules,
            ),
        };
        send_and_check(&gateway, what, message.envelope(), &expected);
        let file = scratch.path().join(format!("case-{index}.xml"));
        std::fs::write(&file, message.envelope()).unwrap();
        let file = file.to_str().unwrap();
        let output = validate(&[file]);
        let verdict = verdict_of(&output.stdout, file);
        let expected: BTreeSet<String> = rules.iter().map(|rule| rule.to_string()).collect();
        assert_eq!(verdict.rules, expected, "{what}\n{}", output.stdout);
        assert_eq!(verdict.valid, rules.is_empty(), "{what}\n{}", output.stdout);
        assert_eq!(output.status.success(), rules.is_empty(), "{what}");
    }
}

/// `validate` applies the gateway's size limit (`max_body_bytes`) first, as the gateway does.
#[test]
fn validate_refuses_a_file_over_max_body_bytes() {
    let validate_with_limit = |limit: &str| {
        let scratch = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(crate::harness::binary());
        command
            .current_dir(repo_root())
            .env("UWLR_MAX_BODY_BYTES", limit)
            .arg("--data-dir")
            .arg(scratch.path())
            .args(["validate", "samples/01-drip-een-resultaat.xml"]);
        crate::harness::run(command)
    };
    let output = validate_with_limit("1000");
    assert!(!output.status.success(), "{}", output.stdout);
    let verdict = verdict_of(&output.stdout, "samples/01-drip-een-resultaat.xml");
    assert_eq!(
        verdict.rules,
        BTreeSet::from(["UWLR-GROOTTE".to_string()]),
        "{}",
        output.stdout
    );
    let output = validate_with_limit("1000000");
    assert!(output.status.success(), "{}", output.stdout);
}

#[test]
fn validate_takes_a_bare_leerresultaten_verzoek() {
    let scratch = tempfile::tempdir().unwrap();
    let valid = scratch.path().join("bare.xml");
    let message = drip(1, "BARE-1");
    std::fs::write(&valid, message.bare()).unwrap();
    let invalid = scratch.path().join("bare-2p1.xml");
    std::fs::write(&invalid, message.clone().xsdversie("2.1").bare()).unwrap();
    let output = validate(&[valid.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}\n{}",
        output.stdout,
        output.stderr
    );
    let output = validate(&[invalid.to_str().unwrap()]);
    assert!(!output.status.success());
    let prefix = format!("{}:", invalid.display());
    assert!(
        output
            .stdout
            .lines()
            .any(|line| line.starts_with(&prefix) && line.contains(": UWLR-XSDVERSIE ")),
        "{}",
        output.stdout
    );
    // A folder is expanded to its XML files.
    let output = validate(&[scratch.path().to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        output
            .stdout
            .contains(&format!("{}: valid", valid.display())),
        "{}",
        output.stdout
    );
    // A missing file is an error, not "valid".
    let output = validate(&[repo_root()
        .join("samples/bestaat-niet.xml")
        .to_str()
        .unwrap()]);
    assert!(!output.status.success());
}

#[test]
fn receipts_list_and_show() {
    let gateway = spawn_default();
    let accepted = send_and_check(
        &gateway,
        "01",
        crate::harness::read_sample("01-drip-een-resultaat.xml"),
        &Expect::Accepted,
    );
    let rejected = send_and_check(
        &gateway,
        "43",
        crate::harness::read_sample("43-uwlr-score-boven-normering.xml"),
        &Expect::fault("Client.ScoreOngeldig", &["UWLR-SCORE"]),
    );
    let accepted_id = accepted.receipt_id.unwrap();
    let rejected_id = rejected.receipt_id.unwrap();
    let listed = gateway.cli(&["receipts", "list"]).success();
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", listed.stdout);
    assert!(
        lines[0].starts_with(&rejected_id),
        "newest first: {}",
        listed.stdout
    );
    assert!(
        lines[0].contains("rejected") && lines[0].contains("Client.ScoreOngeldig"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&accepted_id) && lines[1].contains("accepted"),
        "{}",
        lines[1]
    );
    let limited = gateway.cli(&["receipts", "list", "--limit", "1"]).success();
    assert_eq!(limited.stdout.lines().count(), 1);

    let shown = gateway.cli(&["receipts", "show", &rejected_id]).success();
    let json: serde_json::Value =
        serde_json::from_str(&shown.stdout).expect("receipts show prints JSON");
    assert_eq!(json["id"], rejected_id.as_str());
    assert_eq!(json["outcome"], "rejected");
    assert_eq!(json["klantcode"], DEMO_KLANTCODE);
    assert_eq!(json["school"], "99XX01");
    assert_eq!(json["violations"][0]["rule"], "UWLR-SCORE");
    let shown = gateway.cli(&["receipts", "show", &accepted_id]).success();
    let json: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(json["outcome"], "accepted");
    assert_eq!(json["counts"]["created"], 1);
    assert_eq!(json["aanmaakdatum"], "2026-10-01T08:00:00");
    let missing = gateway.cli(&["receipts", "show", "bestaat-niet"]);
    assert!(!missing.status.success());
    assert!(missing.stderr.contains("no receipt"), "{}", missing.stderr);
}

/// Issue 16 finding 9: an LRS over plain http got only a warning (and none without a
/// password), so statements with learner ids crossed the network in clear.
#[test]
fn issue16_lrs_add_refuses_plain_http_to_another_host_unless_allowed() {
    let gateway = spawn_default();
    let refused = gateway.cli(&[
        "lrs",
        "add",
        "plain",
        "--url",
        "http://lrs.example/xAPI/statements",
        "--username",
        "gateway",
        "--password",
        "lrs-wachtwoord-2026",
    ]);
    assert!(!refused.status.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("plain http") && refused.stderr.contains("--allow-plain-http"),
        "the refusal names the problem and the way out: {}",
        refused.stderr
    );
    let listed = gateway.cli(&["lrs", "list"]).success();
    assert!(!listed.stdout.contains("plain"), "{}", listed.stdout);
    // Loopback never leaves the host; https is always fine.
    gateway
        .cli(&[
            "lrs",
            "add",
            "local",
            "--url",
            "http://127.0.0.1:9/xAPI/statements",
        ])
        .success();
    gateway
        .cli(&[
            "lrs",
            "add",
            "secure",
            "--url",
            "https://lrs.example/xAPI/statements",
        ])
        .success();
    let allowed = gateway
        .cli(&[
            "lrs",
            "add",
            "plain",
            "--url",
            "http://lrs.example/xAPI/statements",
            "--allow-plain-http",
        ])
        .success();
    assert!(allowed.stderr.contains("warning"), "{}", allowed.stderr);
    let listed = gateway.cli(&["lrs", "list"]).success();
    for name in ["plain", "local", "secure"] {
        assert!(listed.stdout.contains(name), "{}", listed.stdout);
    }
}
