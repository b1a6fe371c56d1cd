//! Data-dir safety and the CLI's rough edges: only `serve` and `init` create a data dir,
//! looking subcommands work on a read-only copy, every error is said once, lists speak JSON.

use crate::harness::DEMO_KLANTCODE;
use crate::harness::{binary, cli_with_data_dir, repo_root, send_and_check, spawn_default, Expect};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every subcommand that works on a data dir, other than `serve` and `init`.
fn data_dir_subcommands(scratch: &Path) -> Vec<Vec<String>> {
    let roster = repo_root().join("samples/roster-demo.csv");
    let backup = scratch.join("backup");
    [
        vec!["clients", "list"],
        vec!["clients", "add", "EA-X", "--klantnaam", "X"],
        vec!["clients", "revoke", "EA-X"],
        vec!["schools", "list"],
        vec![
            "schools",
            "activate",
            "99XX01",
            "--klantcode",
            "EA-X",
            "--mandate",
            "M",
        ],
        vec!["leerlingen", "import", roster.to_str().unwrap()],
        vec!["receipts", "list"],
        vec!["receipts", "show", "r-1"],
        vec!["readers", "list"],
        vec!["readers", "revoke", "las"],
        vec!["audit"],
        vec!["lrs", "list"],
        vec![
            "lrs",
            "add",
            "lrs",
            "--url",
            "http://127.0.0.1:9/xAPI/statements",
        ],
        vec!["outbox", "status"],
        vec!["outbox", "dead-letters"],
        vec!["outbox", "retry"],
        vec!["secrets", "rotate"],
        vec!["backup", backup.to_str().unwrap()],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(String::from).collect())
    .collect()
}

/// Issue 14: a typo in `--data-dir` used to create a new empty database; now every
/// subcommand but `serve` and `init` refuses, names the folder and creates nothing.
#[test]
fn a_mistyped_data_dir_is_refused_and_not_created() {
    let scratch = tempfile::tempdir().unwrap();
    let typo = scratch.path().join("dta");
    for args in data_dir_subcommands(scratch.path()) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = cli_with_data_dir(&typo, &args);
        assert!(
            !output.status.success(),
            "{args:?} succeeded: {}",
            output.stdout
        );
        assert!(
            output
                .stderr
                .contains(&format!("{} is not a data dir", typo.display())),
            "{args:?}: {}",
            output.stderr
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
        assert!(!scratch.path().join("backup").exists(), "{args:?}");
    }
}

/// `init` creates what `serve` would; the changing subcommands then work on it.
#[test]
fn init_creates_a_data_dir_that_other_subcommands_use() {
    if crate::harness::sqlite_only("init creates the SQLite files of a data dir") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let created = cli_with_data_dir(&data_dir, &["init"]).success();
    assert!(created.stdout.contains("created"), "{}", created.stdout);
    for name in ["gateway.sqlite", "xapi.sqlite", "secrets.key"] {
        assert!(data_dir.join(name).is_file(), "{name} missing");
    }
    let again = cli_with_data_dir(&data_dir, &["init"]).success();
    assert!(again.stdout.contains("existed already"), "{}", again.stdout);
    cli_with_data_dir(&data_dir, &["clients", "add", "EA-X", "--klantnaam", "X"]).success();
    let listed = cli_with_data_dir(&data_dir, &["clients", "list"]).success();
    assert!(listed.stdout.contains("EA-X"), "{}", listed.stdout);
}

/// The files of a directory with their sizes and modification times.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            (entry.path(), metadata.len(), metadata.modified().unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Runs the CLI on `data_dir` as the unprivileged user `nobody` (the tests run as root, whom
/// permission bits do not stop).
fn cli_as_nobody(data_dir: &Path, args: &[&str]) -> crate::harness::CliOutput {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(binary())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("UWLR_CONFIG")
        .current_dir("/");
    crate::harness::run(command)
}

/// Issue 14: a read-only data dir (a backup being inspected) made even `clients list` fail.
/// The looking subcommands open it with SQLite's read-only flag: as a user who may not write
/// it they work, and neither they nor root running them leave a -wal, -shm or changed file.
#[test]
fn looking_subcommands_work_on_a_read_only_copy() {
    if crate::harness::sqlite_only("a read-only copy of the SQLite files") {
        return;
    }
    let gateway = spawn_default();
    let accepted = send_and_check(
        &gateway,
        "01",
        crate::harness::read_sample("01-drip-een-resultaat.xml"),
        &Expect::Accepted,
    );
    let receipt = accepted.receipt_id.unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = root.path().join("copy");
    gateway.cli(&["backup", copy.to_str().unwrap()]).success();
    // As a stopped gateway leaves its data dir: WAL mode, no -wal or -shm beside the files.
    for name in ["gateway.sqlite", "xapi.sqlite"] {
        let connection = rusqlite::Connection::open(copy.join(name)).unwrap();
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .unwrap();
        std::fs::set_permissions(copy.join(name), std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o555)).unwrap();
    let before = snapshot(&copy);
    assert_eq!(before.len(), 2, "{before:?}");
    let looking: [&[&str]; 9] = [
        &["clients", "list"],
        &["schools", "list"],
        &["readers", "list"],
        &["lrs", "list"],
        &["receipts", "list"],
        &["receipts", "show", &receipt],
        &["audit"],
        &["outbox", "status"],
        &["outbox", "dead-letters"],
    ];
    for args in looking {
        let output = cli_as_nobody(&copy, args);
        assert!(
            output.status.success(),
            "{args:?} as nobody: {}",
            output.stderr
        );
        let output = cli_with_data_dir(&copy, args).success();
        if args[0] == "receipts" {
            assert!(
                output.stdout.contains(&receipt),
                "{args:?}: {}",
                output.stdout
            );
        }
        assert_eq!(snapshot(&copy), before, "{args:?} changed the copy");
    }
    let listed = cli_as_nobody(&copy, &["schools", "list"]);
    assert!(listed.stdout.contains("99XX01"), "{}", listed.stdout);
    // A changing subcommand cannot work there, and says why.
    let refused = cli_as_nobody(&copy, &["clients", "add", "EA-X", "--klantnaam", "X"]);
    assert!(!refused.status.success(), "{}", refused.stdout);
    assert!(refused.stderr.starts_with("error: "), "{}", refused.stderr);
}

/// Issue 14: causes were printed twice (`(os error 2): No such file or directory (os error 2)`).
#[test]
fn an_error_is_printed_once_with_its_cause() {
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("gateway.toml");
    let output = Command::new(binary())
        .arg("--config")
        .arg(&missing)
        .args(["clients", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: cannot read {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let unwritable = Path::new("/proc/uwlr-gateway-test/data");
    let output = cli_with_data_dir(unwritable, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!output.status.success());
    assert_eq!(
        output.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        output.stderr
    );
}

/// Every list subcommand answers `--json` with one JSON object per line.
#[test]
fn every_list_subcommand_speaks_json() {
    let gateway = spawn_default();
    send_and_check(
        &gateway,
        "01",
        crate::harness::read_sample("01-drip-een-resultaat.xml"),
        &Expect::Accepted,
    );
    gateway
        .cli(&[
            "lrs",
            "add",
            "lrs-a",
            "--url",
            "http://127.0.0.1:9/xAPI/statements",
            "--username",
            "u",
            "--password",
            "geheim-wachtwoord",
        ])
        .success();
    gateway
        .cli(&[
            "readers",
            "add",
            "las",
            "--school",
            "99XX01",
            "--scope",
            "las",
            "--mandate",
            "M-1",
        ])
        .success();
    let lists: [(&[&str], &str, &str); 7] = [
        (&["clients", "list", "--json"], "klantcode", DEMO_KLANTCODE),
        (&["schools", "list", "--json"], "school", "99XX01"),
        (&["readers", "list", "--json"], "name", "las"),
        (&["lrs", "list", "--json"], "name", "lrs-a"),
        (&["receipts", "list", "--json"], "outcome", "accepted"),
        (&["audit", "--json"], "action", "lrs.add"),
        (&["outbox", "dead-letters", "--json"], "", ""),
    ];
    for (args, field, value) in lists {
        let output = gateway.cli(args).success();
        let lines: Vec<serde_json::Value> = output
            .stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("{args:?}: {error}: {line}"))
            })
            .collect();
        if field.is_empty() {
            continue;
        }
        assert!(
            lines.iter().any(|line| line[field] == value),
            "{args:?}: no {field} = {value} in {}",
            output.stdout
        );
    }
    let status = gateway
        .cli(&["outbox", "status", "--json"])
        .success()
        .stdout;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["lrs"][0]["lrs"], "lrs-a", "{status}");
    assert!(status["publisher"]["cursor"].is_i64(), "{status}");
    let lrs = gateway.cli(&["lrs", "list", "--json"]).success().stdout;
    assert!(!lrs.contains("geheim-wachtwoord"), "{lrs}");
    assert!(lrs.contains("\"password_set\":true"), "{lrs}");
}

/// Issue 14: `generate`, `leerlingen import` and `backup` ran silently. Off a terminal they
/// print a plain line per tenth (no escape codes); on a terminal they draw a bar.
#[test]
fn long_subcommands_show_progress() {
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("load");
    let data_dir = scratch.path().join("data");
    let out_arg = out.to_str().unwrap();
    let generated = cli_with_data_dir(
        &data_dir,
        &[
            "generate",
            "--learners",
            "2500",
            "--afnames",
            "1000",
            "--drip",
            "--out",
            out_arg,
        ],
    )
    .success();
    let lines = |output: &str, prefix: &str| {
        output
            .lines()
            .filter(|line| line.starts_with(prefix))
            .count()
    };
    assert!(
        lines(&generated.stdout, "writing resultaten: ") >= 9,
        "{}",
        generated.stdout
    );
    assert!(!generated.stdout.contains('\x1b'), "{}", generated.stdout);
    cli_with_data_dir(&data_dir, &["init"]).success();
    let roster = out.join("roster.csv");
    let imported = cli_with_data_dir(
        &data_dir,
        &["leerlingen", "import", roster.to_str().unwrap()],
    )
    .success();
    assert!(
        lines(&imported.stdout, "importing leerlingen: ") >= 2,
        "{}",
        imported.stdout
    );
    assert!(
        imported.stdout.contains("2500 of 2500 (100%)"),
        "{}",
        imported.stdout
    );
    let backup = scratch.path().join("backup");
    let backed_up = cli_with_data_dir(&data_dir, &["backup", backup.to_str().unwrap()]).success();
    assert!(
        backed_up.stdout.starts_with("backing up ...\n"),
        "{}",
        backed_up.stdout
    );

    // On a terminal (script(1) gives the command a pseudo-terminal): a bar, redrawn.
    let shell_command = format!(
        "{} --data-dir {} generate --afnames 3000 --drip --out {}",
        binary().display(),
        data_dir.display(),
        scratch.path().join("load2").display()
    );
    let output = Command::new("script")
        .args(["-qec", &shell_command, "/dev/null"])
        .env_remove("UWLR_CONFIG")
        .output()
        .expect("script (util-linux) runs");
    let terminal = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{terminal}");
    assert!(terminal.contains("writing resultaten ["), "{terminal}");
    assert!(terminal.contains("\x1b["), "{terminal}");
    assert!(!terminal.contains("writing resultaten: "), "{terminal}");
}

/// A copy with a WAL that was never checkpointed (its gateway was killed) and no -shm cannot
/// be read by a user who may not create the -shm: the error says so, instead of SQLite's
/// "unable to open database file"; the data dir's owner reads it, the last commit included.
#[test]
fn a_read_only_copy_with_a_leftover_wal_names_the_way_out() {
    if crate::harness::sqlite_only("a leftover SQLite WAL") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = root.path().join("copy");
    cli_with_data_dir(&copy, &["init"]).success();
    let connection = rusqlite::Connection::open(copy.join("gateway.sqlite")).unwrap();
    connection
        .pragma_update(None, "wal_autocheckpoint", 0)
        .unwrap();
    connection
        .execute(
            "INSERT INTO clients (klantcode, klantnaam, key_salt, key_hash, created_at) VALUES ('EA-WAL', 'In de WAL', 's', 'h', '2026-12-02')",
            [],
        )
        .unwrap();
    // As a killed gateway leaves it: the commit only in the -wal.
    std::mem::forget(connection);
    std::fs::remove_file(copy.join("gateway.sqlite-shm")).unwrap();
    for entry in std::fs::read_dir(&copy).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o555)).unwrap();
    let refused = cli_as_nobody(&copy, &["clients", "list"]);
    assert!(!refused.status.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("holds a -wal without its -shm")
            && refused.stderr.contains("data dir's owner"),
        "{}",
        refused.stderr
    );
    let listed = cli_with_data_dir(&copy, &["clients", "list"]).success();
    assert!(listed.stdout.contains("EA-WAL"), "{}", listed.stdout);
}
