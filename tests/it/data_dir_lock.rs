//! One `serve` per data dir, and `migrate`: the data-dir lock as two real gateways and the
//! CLI meet it, and schema versions older or newer than the binary's.

use crate::harness::{
    read_sample, send_and_check, spawn_default, CliOutput, Expect, Gateway, Options,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// Issue 12: a second `serve` on a data dir a running one holds is refused at once, naming
/// the dir and the holder's pid; changing subcommands still run beside the first (SQLite's
/// locks order their writes); once the first stops, a new `serve` starts on the dir.
#[test]
fn a_second_serve_on_the_same_data_dir_is_refused() {
    if crate::harness::sqlite_only("the data-dir lock guards SQLite files") {
        return;
    }
    let mut first = spawn_default();
    let mut second = Gateway::new(Options::default().data_dir(&first.data_dir));
    let started = Instant::now();
    let refused = second.serve_refused(Duration::from_secs(30));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the refusal took {:?}",
        started.elapsed()
    );
    assert!(!refused.status.success(), "{}", refused.stdout);
    assert_in_use(&refused, &first.data_dir, first.pid());

    first.cli_stdout(&["clients", "add", "EA-LOCK", "--klantnaam", "Lock"]);
    let sample = "01-drip-een-resultaat.xml";
    send_and_check(&first, sample, read_sample(sample), &Expect::Accepted);

    first.terminate();
    second.start();
    let sample = "02-batch-vijf-leerlingen.xml";
    send_and_check(&second, sample, read_sample(sample), &Expect::Accepted);
    assert!(
        second.cli_stdout(&["clients", "list"]).contains("EA-LOCK"),
        "the second gateway serves the first one's data dir"
    );
}

/// `migrate --check` reports a file one migration behind and fails; `migrate` applies it,
/// after which `--check` passes; while a `serve` runs `migrate` is refused but `--check`
/// still looks; a file a newer gateway migrated is refused by `migrate`, `--check` and
/// `serve`, and left as it was.
#[test]
fn migrate_applies_reports_and_refuses() {
    if crate::harness::sqlite_only("migrate on a data dir's SQLite files (user_version)") {
        return;
    }
    let mut gateway = spawn_default();
    gateway.terminate();
    // xAPI migration 5 undone: the data dir of the release before it.
    let connection = rusqlite::Connection::open(gateway.data_dir.join("xapi.sqlite")).unwrap();
    connection
        .execute_batch("DROP TABLE read_audit; PRAGMA user_version = 4;")
        .unwrap();
    drop(connection);

    let check = gateway.cli(&["migrate", "--check"]);
    assert!(!check.status.success(), "{}", check.stdout);
    assert!(
        check
            .stdout
            .contains("xapi.sqlite: schema version 4, this gateway needs 5 (pending)"),
        "{}",
        check.stdout
    );
    let looking = gateway.cli(&["lrs", "list"]);
    assert!(!looking.status.success());
    assert!(
        looking.stderr.contains("uwlr-gateway migrate"),
        "{}",
        looking.stderr
    );

    // A changing subcommand beside a `serve` of the older release (which holds the lock on
    // the older schema; here `flock` stands in for it) may not migrate, and says why.
    let mut holder = std::process::Command::new("flock")
        .arg("--no-fork")
        .arg(gateway.data_dir.join("serve.lock"))
        .args(["sleep", "60"])
        .spawn()
        .expect("flock(1) from util-linux");
    // Only once it holds the lock (`flock -n` then fails), or the subcommand would migrate.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::process::Command::new("flock")
        .args(["--nonblock", "--conflict-exit-code", "75"])
        .arg(gateway.data_dir.join("serve.lock"))
        .arg("true")
        .status()
        .expect("flock(1)")
        .code()
        != Some(75)
    {
        assert!(Instant::now() < deadline, "flock never took serve.lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let beside = gateway.cli(&["clients", "add", "EA-OLDER", "--klantnaam", "Older"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(!beside.status.success(), "{}", beside.stdout);
    assert!(
        beside
            .stderr
            .contains("on an older schema (version 4, this binary needs 5): restart that `serve`"),
        "{}",
        beside.stderr
    );
    assert_eq!(user_version(&gateway.data_dir, "xapi.sqlite"), 4);

    let migrated = gateway.cli_stdout(&["migrate"]);
    assert!(
        migrated.contains("xapi.sqlite: migrated from schema version 4 to 5"),
        "{migrated}"
    );
    let check = gateway.cli(&["migrate", "--check"]).success();
    assert!(!check.stdout.contains("pending"), "{}", check.stdout);
    gateway.cli_stdout(&["lrs", "list"]);

    gateway.start();
    let refused = gateway.cli(&["migrate"]);
    assert!(!refused.status.success(), "{}", refused.stdout);
    assert_in_use(&refused, &gateway.data_dir, gateway.pid());
    gateway.cli(&["migrate", "--check"]).success();
    gateway.terminate();

    let newer = user_version(&gateway.data_dir, "gateway.sqlite") + 1;
    set_user_version(&gateway.data_dir, "gateway.sqlite", newer);
    let too_new = format!("has schema version {newer}, newer than");
    for args in [&["migrate"][..], &["migrate", "--check"]] {
        let output = gateway.cli(args);
        assert!(!output.status.success(), "{args:?}: {}", output.stdout);
        assert!(
            output.stderr.contains(&too_new),
            "{args:?}: {}",
            output.stderr
        );
    }
    let output = gateway.serve_refused(Duration::from_secs(30));
    assert!(!output.status.success());
    assert!(output.stderr.contains(&too_new), "{}", output.stderr);
    assert_eq!(user_version(&gateway.data_dir, "gateway.sqlite"), newer);
}

/// The refusal of a held data dir: non-zero, naming the dir and the holder's pid.
#[track_caller]
fn assert_in_use(output: &CliOutput, data_dir: &Path, holder: u32) {
    assert!(!output.status.success());
    let expected = format!(
        "{} is in use by another uwlr-gateway (pid {holder})",
        data_dir.display()
    );
    assert!(output.stderr.contains(&expected), "{}", output.stderr);
}

fn user_version(data_dir: &Path, file: &str) -> i64 {
    rusqlite::Connection::open(data_dir.join(file))
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap()
}

fn set_user_version(data_dir: &Path, file: &str, version: i64) {
    rusqlite::Connection::open(data_dir.join(file))
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {version}"))
        .unwrap();
}
