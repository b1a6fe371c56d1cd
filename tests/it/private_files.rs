//! Files of the data dir and of backups are the gateway user's alone, whatever the umask; keys come in off the command line.

use crate::harness::message::{aanmaakdatum, Message, Resultaat, Toets};
use crate::harness::{outcome, send_and_check, spawn_default, Expect, Gateway};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn data_dir_databases_key_and_backups_are_private_under_umask_022() {
    if crate::harness::sqlite_only("file modes of the SQLite files and their backups") {
        return;
    }
    // The usual default umask, under which files come out world-readable unless the gateway sees to it.
    // SAFETY: umask only sets this process's file mode mask; the gateway inherits it.
    unsafe {
        libc::umask(0o022);
    }
    let gateway = spawn_default();
    assert_eq!(
        outcome(&gateway.post_sample("01-drip-een-resultaat.xml")),
        Expect::Accepted
    );
    let data = &gateway.data_dir;
    assert_eq!(mode(data), 0o700, "data dir");
    for name in [
        "gateway.sqlite",
        "gateway.sqlite-wal",
        "xapi.sqlite",
        "secrets.key",
    ] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let backup = gateway.scratch().join("backup");
    gateway.cli(&["backup", backup.to_str().unwrap()]).success();
    assert_eq!(mode(&backup), 0o700, "backup dir");
    for name in ["gateway.sqlite", "xapi.sqlite"] {
        assert_eq!(mode(&backup.join(name)), 0o600, "backup {name}");
    }
}

/// `clients add` with `--key-file`, the file's text given as standard input when FILE is `-`.
fn add_client_from_stdin(gateway: &Gateway, klantcode: &str, input: &str) -> std::process::Output {
    let mut child = gateway
        .command()
        .args([
            "clients",
            "add",
            klantcode,
            "--klantnaam",
            "Stdin Uitgever",
            "--key-file",
            "-",
        ])
        .env_remove("UWLR_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start uwlr-gateway");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn clients_add_reads_a_key_from_standard_input_and_refuses_one_padded_with_spaces() {
    let gateway = spawn_default();
    let padded = add_client_from_stdin(&gateway, "EA-PAD", " sleutel-met-spatie \n");
    assert!(!padded.status.success());
    assert!(
        String::from_utf8_lossy(&padded.stderr).contains("white space"),
        "{}",
        String::from_utf8_lossy(&padded.stderr)
    );
    let added = add_client_from_stdin(&gateway, "EA-STDIN", "sleutel-via-stdin\n");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(!String::from_utf8_lossy(&added.stdout).contains("sleutel-via-stdin"));
    gateway
        .cli(&[
            "schools",
            "activate",
            "99XX01",
            "--klantcode",
            "EA-STDIN",
            "--mandate",
            "DPA-STDIN",
        ])
        .success();
    let message = Message::demo(&aanmaakdatum(1))
        .afname("LL0001", vec![Resultaat::score("STDIN-1", "STDIN-T", 3)])
        .toets(Toets::new("STDIN-T"))
        .client("EA-STDIN", "Stdin Uitgever", "sleutel-via-stdin");
    send_and_check(
        &gateway,
        "key read from stdin",
        message.envelope(),
        &Expect::Accepted,
    );
}
