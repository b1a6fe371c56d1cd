//! LRS passwords and pseudonym keys are sealed at rest with a key kept outside the database.

use crate::bridge::standin::StandIn;
use crate::harness::{spawn_gateway, Gateway, Options};
use base64::Engine as _;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "s3cret-at-rest-4711";

fn expect_basic_auth(lrs: &StandIn, password: &str) {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("test:{password}"));
    lrs.with(|state| state.authorization = Some(format!("Basic {token}")));
}

/// Every byte the database keeps on disk (both SQLite files and their WALs).
fn database_bytes(gateway: &Gateway) -> Vec<u8> {
    gateway.stored_bytes()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// (password, pseudonym key) as stored for `lrs`.
fn stored_secrets(gateway: &Gateway, lrs: &str) -> (String, Vec<u8>) {
    gateway
        .db()
        .query_row(
            "SELECT password, pseudonym_key FROM xapi_subscriptions WHERE name = ?1",
            [lrs],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

#[test]
fn lrs_secrets_are_sealed_at_rest_and_delivery_still_authenticates() {
    let lrs = StandIn::start();
    expect_basic_auth(&lrs, PASSWORD);
    let gateway = spawn_gateway(Options::fast_xapi());
    let password_file = gateway.scratch().join("lrs-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    gateway.cli_stdout(&[
        "lrs",
        "add",
        "sealed",
        "--url",
        &lrs.url(),
        "--username",
        "test",
        "--password-file",
        password_file.to_str().unwrap(),
        "--identity",
        "pseudonym",
    ]);
    assert_eq!(gateway.post_sample("01-drip-een-resultaat.xml").status, 200);
    gateway.wait_delivered("sealed", WAIT);
    assert!(!lrs.stored_ids().is_empty(), "the LRS got the statements");

    let (password, pseudonym_key) = stored_secrets(&gateway, "sealed");
    assert!(password.starts_with("sealed:v1:"), "{password}");
    assert!(pseudonym_key.starts_with(b"sealed:v1:"));
    assert!(!contains(&database_bytes(&gateway), PASSWORD.as_bytes()));
    let key_file = gateway.data_dir.join("secrets.key");
    assert!(
        key_file.exists(),
        "the default key file is created beside the databases"
    );
}

#[test]
fn clear_secrets_of_an_older_database_are_sealed_at_start_and_keep_working() {
    if crate::harness::sqlite_only("a database from before sealing exists only on SQLite") {
        return;
    }
    let lrs = StandIn::start();
    let mut gateway = spawn_gateway(Options::fast_xapi());
    gateway.cli_stdout(&[
        "lrs",
        "add",
        "old",
        "--url",
        &lrs.url(),
        "--username",
        "test",
        "--password",
        "x",
    ]);
    gateway.kill();
    // What a database written before sealing holds: both values in clear.
    gateway
        .db_writable()
        .execute(
            "UPDATE xapi_subscriptions SET password = ?1, pseudonym_key = X'00112233' WHERE name = 'old'",
            ["plain-old-password"],
        )
        .unwrap();
    expect_basic_auth(&lrs, "plain-old-password");
    gateway.start();
    assert_eq!(gateway.post_sample("01-drip-een-resultaat.xml").status, 200);
    gateway.wait_delivered("old", WAIT);
    assert!(!lrs.stored_ids().is_empty());
    let (password, pseudonym_key) = stored_secrets(&gateway, "old");
    assert!(password.starts_with("sealed:v1:"), "{password}");
    assert!(pseudonym_key.starts_with(b"sealed:v1:"));
    gateway.kill();
    assert!(!contains(&database_bytes(&gateway), b"plain-old-password"));
}

#[test]
fn rotation_reseals_under_the_new_key_and_a_foreign_key_delivers_nothing() {
    let lrs = StandIn::start();
    expect_basic_auth(&lrs, PASSWORD);
    // The key file is configured from the first start: the gateway seals its xAPI id key
    // with it then (issue 17), and a key file replaced without the old key loses that key.
    let keys = tempfile::tempdir().unwrap();
    let new_key = uwlr_gateway::secret::Keyring::new_key_text;
    let (old_key, next_key, foreign_key) = (new_key(), new_key(), new_key());
    let key_file = keys.path().join("keys");
    std::fs::write(&key_file, format!("{old_key}\n")).unwrap();
    let mut gateway = spawn_gateway(
        Options::fast_xapi().envs(&[("UWLR_SECRETS_KEY_FILE", key_file.to_str().unwrap())]),
    );
    gateway.cli_stdout(&[
        "lrs",
        "add",
        "rotated",
        "--url",
        &lrs.url(),
        "--username",
        "test",
        "--password",
        PASSWORD,
    ]);
    assert_eq!(gateway.post_sample("01-drip-een-resultaat.xml").status, 200);
    gateway.wait_delivered("rotated", WAIT);
    let before = stored_secrets(&gateway, "rotated");

    // Rotation: the new key first, the old one kept until everything is resealed.
    gateway.kill();
    std::fs::write(&key_file, format!("{next_key}\n{old_key}\n")).unwrap();
    let rotated = gateway_cli_text(&gateway, &["secrets", "rotate"]);
    // The LRS's password and pseudonym key, and the gateway's xAPI id key.
    assert!(rotated.contains("resealed 3 "), "{rotated}");
    let after = stored_secrets(&gateway, "rotated");
    assert_ne!(before, after);
    std::fs::write(&key_file, format!("{next_key}\n")).unwrap();
    gateway.start();
    assert_eq!(
        gateway.post_sample("02-batch-vijf-leerlingen.xml").status,
        200
    );
    gateway.wait_delivered("rotated", WAIT);
    let delivered = lrs.stored_ids().len();

    // A key that never sealed these values: nothing is delivered, and the log says why.
    gateway.kill();
    std::fs::write(&key_file, format!("{foreign_key}\n")).unwrap();
    gateway.start();
    assert_eq!(
        gateway.post_sample("03-toets-met-onderdelen.xml").status,
        200
    );
    gateway.wait_for("the unopened-secrets error", WAIT, || {
        gateway
            .logs()
            .contains("cannot open the LRS's stored secrets")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lrs.stored_ids().len(), delivered);
    assert!(!gateway.logs().contains(PASSWORD));
    // Nor does the gateway's xAPI id key: sample 03's statements wait instead of being made
    // under other ids, and come out once the right key is back.
    assert!(gateway.logs().contains("xAPI id key"));
    let (cursor, end) = gateway.publisher_position();
    assert!(
        cursor < end,
        "published without the id key: {cursor} of {end}"
    );
    gateway.kill();
    std::fs::write(&key_file, format!("{next_key}\n")).unwrap();
    gateway.start();
    gateway.wait_delivered("rotated", WAIT);
    assert!(lrs.stored_ids().len() > delivered);
}

fn gateway_cli_text(gateway: &Gateway, args: &[&str]) -> String {
    let output = gateway.cli(args);
    assert!(output.status.success(), "{args:?}: {}", output.stderr);
    output.stdout
}
