//! The PostgreSQL engine (issue 12) as far as it goes: a throwaway cluster, `migrate` and `init` against it, and `serve` and `backup` refusing it.

use crate::harness::cli::gateway_command;
use crate::harness::postgres::{self, Postgres};
use crate::harness::{run, CliOutput};
use std::path::Path;

/// The harness itself: the cluster accepts the generated password only, runs with fsync
/// on, and is gone (process and directory) once dropped.
#[test]
fn a_throwaway_cluster_starts_answers_and_is_removed() {
    let cluster = Postgres::start();
    assert_eq!(cluster.psql("SHOW fsync"), "on");
    assert_eq!(cluster.psql("SELECT current_database()"), "uwlr");
    let dir = cluster.dir().to_path_buf();
    let pid = cluster.pid();
    assert!(dir.join("data/PG_VERSION").is_file());
    drop(cluster);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    // SAFETY: signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "the postmaster {pid} still runs");
}

/// The shared cluster of `UWLR_TEST_ENGINE=postgres`: a database of its own per gateway,
/// reached through the store's own `Db`; a copy by template holds the source's rows; a
/// dropped database is gone even with a session still on it.
#[test]
fn the_shared_cluster_gives_each_gateway_a_database_copies_and_drops_them() {
    use uwlr_gateway::store::db::connect_postgres;
    let cluster = postgres::shared();
    let first = postgres::create_database(None);
    let second = postgres::create_database(None);
    assert_ne!(first, second);
    {
        let db = connect_postgres(&cluster.url_of(&first)).expect("connect");
        assert!(db.is_postgres());
        db.execute_batch("CREATE TABLE t (n bigint); INSERT INTO t VALUES (7), (8)")
            .expect("write");
        let sum: i64 = db
            .query_row(
                "SELECT sum(n)::bigint FROM t WHERE n > ?1",
                [6_i64],
                |row| row.get(0),
            )
            .expect("read");
        assert_eq!(sum, 15);
    }
    let copy = postgres::create_database(Some(&first));
    let db = connect_postgres(&cluster.url_of(&copy)).expect("connect to the copy");
    assert_eq!(crate::harness::count(&db, "SELECT count(*) FROM t"), 2);
    let other = connect_postgres(&cluster.url_of(&second)).expect("connect");
    assert!(
        other
            .execute("SELECT count(*) FROM t", rusqlite::params![])
            .is_err(),
        "databases are separate"
    );
    postgres::drop_database(&copy);
    let exists = |name: &str| {
        cluster.psql_as(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        )
    };
    assert_eq!(exists(&copy), "0");
    for name in [&first, &second] {
        postgres::drop_database(name);
        assert_eq!(exists(name), "0");
    }
    // A wrong URL is a clear error, not a panic.
    let refused = connect_postgres("postgres://postgres:wrong@127.0.0.1:1/none")
        .err()
        .expect("refused");
    assert!(!refused.to_string().is_empty());
}

/// A killed test process takes its shared cluster with it (the postmaster's parent-death
/// signal), and the next start removes the directory it left.
#[test]
fn a_killed_test_process_leaves_no_postmaster_and_its_directory_goes_at_the_next_start() {
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "--nocapture"])
        .arg("postgres::holds_the_shared_cluster_until_killed")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the test binary");
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    loop {
        line.clear();
        let read = std::io::BufRead::read_line(&mut stdout, &mut line).expect("read");
        assert!(read > 0, "the holder ended without reporting its cluster");
        if line.starts_with("cluster ") {
            break;
        }
    }
    let mut fields = line.split_whitespace().skip(1);
    let postmaster: libc::pid_t = fields.next().unwrap().parse().unwrap();
    let dir = std::path::PathBuf::from(fields.next().unwrap());
    assert!(dir.join("data/PG_VERSION").is_file());
    child.kill().expect("SIGKILL the holder");
    child.wait().expect("reap the holder");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // SAFETY: signal 0 only asks whether the process exists.
    while unsafe { libc::kill(postmaster, 0) } == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the postmaster {postmaster} outlived its test process"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The directory stays until a start (this one, or another test's meanwhile) sweeps it.
    drop(Postgres::start());
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// Not a test of its own: the process that
/// `a_killed_test_process_leaves_no_postmaster_and_its_directory_goes_at_the_next_start`
/// starts and kills.
#[test]
#[ignore = "run by a_killed_test_process_leaves_no_postmaster_and_its_directory_goes_at_the_next_start"]
fn holds_the_shared_cluster_until_killed() {
    let cluster = postgres::shared();
    println!("cluster {} {}", cluster.pid(), cluster.dir().display());
    std::thread::sleep(std::time::Duration::from_secs(120));
}

/// The gateway binary with `store = postgres` on `url`, on a data dir in `scratch` (which
/// the PostgreSQL engine must not touch).
fn on_postgres(url: &str, scratch: &Path, args: &[&str]) -> CliOutput {
    let mut command = gateway_command();
    command
        .arg("--data-dir")
        .arg(scratch.join("data"))
        .env("UWLR_STORE", "postgres")
        .env("UWLR_DATABASE_URL", url)
        .env("UWLR_LOG", "debug")
        .args(args);
    run(command)
}

/// Fails when `password` shows anywhere in what the command printed.
#[track_caller]
fn assert_hidden(output: &CliOutput, password: &str) {
    for text in [&output.stdout, &output.stderr] {
        assert!(!text.contains(password), "the password shows:\n{text}");
    }
}

/// Every table of the schema: the SQLite engine's tables of both files, and the version table.
const TABLES: &[&str] = &[
    "activations",
    "audit",
    "change_counter",
    "change_order",
    "clients",
    "gateway_keys",
    "gateway_settings",
    "leerlingen",
    "read_audit",
    "reader_schools",
    "readers",
    "receipts",
    "schema_migrations",
    "schools",
    "sender_state",
    "statement_counter",
    "toetsafname_changes",
    "toetsafname_removals",
    "toetsafnames",
    "toetsafnames_history",
    "toetsen",
    "toetsen_history",
    "xapi_dead_letters",
    "xapi_erased_afnames",
    "xapi_publisher",
    "xapi_settings",
    "xapi_statements",
    "xapi_subscriptions",
];

fn tables(cluster: &Postgres) -> String {
    cluster.psql(
        "SELECT string_agg(table_name::text, ',' ORDER BY table_name::text) \
         FROM information_schema.tables WHERE table_schema = 'public'",
    )
}

/// `migrate --check` on an empty database reports it pending and fails; `migrate` creates
/// the whole schema at version 1 and says so; `--check` then passes, and a second
/// `migrate` changes nothing. No output shows the password, and no data dir appears.
#[test]
fn migrate_from_empty_then_check_and_rerun() {
    let cluster = Postgres::start();
    let scratch = tempfile::tempdir().unwrap();
    let password = cluster.password();

    let check = on_postgres(&cluster.url(), scratch.path(), &["migrate", "--check"]);
    assert!(!check.status.success(), "{check:?}");
    assert!(
        check.stdout.contains(&format!(
            "PostgreSQL database postgres://postgres:***@127.0.0.1:{}/uwlr: schema version 0, this gateway needs 1 (pending)",
            cluster.port
        )),
        "{check:?}"
    );
    assert_hidden(&check, password);
    assert_eq!(tables(&cluster), "", "--check created something");

    let migrated = on_postgres(&cluster.url(), scratch.path(), &["migrate"]).success();
    assert!(
        migrated
            .stdout
            .contains("uwlr: migrated from schema version 0 to 1"),
        "{migrated:?}"
    );
    assert_hidden(&migrated, password);
    assert_eq!(tables(&cluster), TABLES.join(","));
    assert_eq!(cluster.psql("SELECT version FROM schema_migrations"), "1");
    assert_eq!(cluster.psql("SELECT cursor_seq FROM xapi_publisher"), "0");

    let check = on_postgres(&cluster.url(), scratch.path(), &["migrate", "--check"]).success();
    assert!(
        check
            .stdout
            .contains("schema version 1, this gateway needs 1 (current)"),
        "{check:?}"
    );
    let again = on_postgres(&cluster.url(), scratch.path(), &["migrate"]).success();
    assert!(
        again.stdout.contains("uwlr: schema version 1, current"),
        "{again:?}"
    );
    assert_eq!(cluster.psql("SELECT count(*) FROM schema_migrations"), "1");
    assert!(
        !scratch.path().join("data").exists(),
        "the PostgreSQL engine made a data dir"
    );
}

/// `init` creates the schema on an empty database and reports an existing one as ready.
#[test]
fn init_creates_the_schema_once() {
    let cluster = Postgres::start();
    let scratch = tempfile::tempdir().unwrap();
    let created = on_postgres(&cluster.url(), scratch.path(), &["init"]).success();
    assert!(
        created.stdout.contains("uwlr created (schema version 1)"),
        "{created:?}"
    );
    assert_hidden(&created, cluster.password());
    let again = on_postgres(&cluster.url(), scratch.path(), &["init"]).success();
    assert!(
        again.stdout.contains("is ready (it existed already"),
        "{again:?}"
    );
    assert_eq!(tables(&cluster), TABLES.join(","));
}

/// Four `migrate` processes on one empty database at once: all succeed, the schema is
/// created once (one version row; a second CREATE TABLE would have failed its migrator).
#[test]
fn concurrent_migrations_apply_the_schema_once() {
    let cluster = Postgres::start();
    let scratch = tempfile::tempdir().unwrap();
    let url = cluster.url();
    let barrier = std::sync::Barrier::new(4);
    let outputs: Vec<CliOutput> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    on_postgres(&url, scratch.path(), &["migrate"])
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    let mut applied = 0;
    for output in outputs {
        let output = output.success();
        if output
            .stdout
            .contains("migrated from schema version 0 to 1")
        {
            applied += 1;
        } else {
            assert!(output.stdout.contains("schema version 1"), "{output:?}");
        }
    }
    assert!(applied >= 1, "no run reported the migration");
    assert_eq!(cluster.psql("SELECT count(*) FROM schema_migrations"), "1");
    assert_eq!(tables(&cluster), TABLES.join(","));
}

/// A database a newer gateway migrated is refused by `migrate`, `migrate --check` and
/// `init` (TooNew, naming the database without its password), and left as it was.
#[test]
fn a_database_of_a_newer_gateway_is_refused() {
    let cluster = Postgres::start();
    let scratch = tempfile::tempdir().unwrap();
    on_postgres(&cluster.url(), scratch.path(), &["migrate"]).success();
    cluster
        .psql("INSERT INTO schema_migrations (version, description) VALUES (7, 'from the future')");
    for args in [&["migrate"][..], &["migrate", "--check"], &["init"]] {
        let refused = on_postgres(&cluster.url(), scratch.path(), args);
        assert!(!refused.status.success(), "{args:?}: {refused:?}");
        assert!(
            refused.stderr.contains(&format!(
                "postgres://postgres:***@127.0.0.1:{}/uwlr has schema version 7, newer than the 1 this gateway knows",
                cluster.port
            )),
            "{args:?}: {refused:?}"
        );
        assert_hidden(&refused, cluster.password());
    }
    assert_eq!(cluster.psql("SELECT count(*) FROM schema_migrations"), "2");
}

/// `serve` on PostgreSQL without a shared secrets key refuses at once with the reason (no
/// listener, no data dir); with one it serves. `backup` points at pg_dump and base
/// backups; the other subcommands run on PostgreSQL; none of them shows the password.
#[test]
fn serve_needs_a_shared_key_and_backup_points_to_pg_dump() {
    let cluster = Postgres::start();
    let scratch = tempfile::tempdir().unwrap();
    on_postgres(&cluster.url(), scratch.path(), &["migrate"]).success();

    let serve = on_postgres(
        &cluster.url(),
        scratch.path(),
        &["serve", "--demo", "--listen", "127.0.0.1:0"],
    );
    assert!(!serve.status.success(), "{serve:?}");
    assert!(
        serve
            .stderr
            .contains("needs secrets_key_file or UWLR_SECRETS_KEY"),
        "{serve:?}"
    );
    assert!(!serve.stdout.contains("listening"), "{serve:?}");
    assert_hidden(&serve, cluster.password());

    let backup = on_postgres(
        &cluster.url(),
        scratch.path(),
        &["backup", scratch.path().join("copy").to_str().unwrap()],
    );
    assert!(!backup.status.success(), "{backup:?}");
    assert!(
        backup.stderr.contains("pg_dump") && backup.stderr.contains("pg_basebackup"),
        "{backup:?}"
    );
    assert!(!scratch.path().join("copy").exists());

    on_postgres(
        &cluster.url(),
        scratch.path(),
        &["clients", "add", "EA-PG", "--klantnaam", "Uitgever"],
    )
    .success();
    let clients = on_postgres(&cluster.url(), scratch.path(), &["clients", "list"]);
    assert!(clients.status.success(), "{clients:?}");
    assert!(clients.stdout.contains("EA-PG"), "{clients:?}");
    assert_hidden(&clients, cluster.password());
    assert!(!scratch.path().join("data").exists());
}

/// A wrong password and an unreachable server fail with the cause, and neither the
/// configured password nor the URL's shows in the error.
#[test]
fn connection_failures_do_not_show_the_password() {
    let cluster = Postgres::start();
    let scratch = tempfile::tempdir().unwrap();
    let wrong = cluster
        .url()
        .replace(cluster.password(), "Wr0ngPassw0rdXYZ");
    let refused = on_postgres(&wrong, scratch.path(), &["migrate"]);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused.stderr.contains("password authentication failed"),
        "{refused:?}"
    );
    assert_hidden(&refused, "Wr0ngPassw0rdXYZ");

    let port = cluster.port;
    let url = cluster.url();
    drop(cluster);
    let down = on_postgres(&url, scratch.path(), &["migrate", "--check"]);
    assert!(!down.status.success(), "{down:?}");
    assert!(
        down.stderr.contains("error connecting to server"),
        "{down:?}"
    );
    assert!(
        down.stderr.contains(&format!("127.0.0.1:{port}")),
        "{down:?}"
    );
    assert_hidden(&down, url.split(['@', ':']).nth(2).unwrap());
}

/// The change numbering of ARCHITECTURE.md "PostgreSQL" on the migrated schema: a change
/// committed while a lower-numbered one is still open is not handed out (a plain
/// `change_seq` cursor would pass the open one for good); once that commits, both come,
/// in `(xid, change_seq)` order.
#[test]
fn the_publisher_horizon_hands_out_no_change_below_an_open_transaction() {
    let cluster = Postgres::start();
    let scratch = tempfile::tempdir().unwrap();
    on_postgres(&cluster.url(), scratch.path(), &["migrate"]).success();
    cluster.psql(
        "INSERT INTO schools (code, created_at) VALUES ('99XX01', 'now');
         INSERT INTO clients (klantcode, klantnaam, key_salt, key_hash, created_at)
             VALUES ('EA', 'EA', '\\x00', '\\x00', 'now');
         INSERT INTO toetsen (school_id, client_id, toetscode, versie, definition, content_sha256,
             revision, created_at, created_receipt_id, updated_at, updated_receipt_id)
             VALUES (1, 1, 'T', '1', '{}', 'x', 1, 'now', 'r', 'now', 'r');
         INSERT INTO toetsafnames (school_id, client_id, afname_key, leerlingid, toets_id, toetscode,
             versie, afnamedatum, aanmaakdatum, receipt_id, result, content_sha256, revision, change_seq)
             VALUES (1, 1, 'A', 'L', 1, 'T', '1', '2026-01-01', 'now', 'r', '{}', '\\x00', 1, 0)",
    );
    const CHANGE: &str =
        "INSERT INTO toetsafname_changes (change_seq, afname_id, revision, quarantined) \
                          VALUES (nextval('change_seq'), 1, 1, 0)";
    const READ: &str =
        "SELECT coalesce(string_agg(change_seq::text, ',' ORDER BY xid, change_seq), '') \
                        FROM toetsafname_changes \
                        WHERE xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint \
                          AND (xid, change_seq) > (0, 0)";

    // The first writer takes change 1 and stays open.
    let mut open = cluster.psql_session("open-writer");
    open.send(&format!("BEGIN; {CHANGE};"));
    cluster.wait_idle_in_transaction("open-writer");
    // The second takes change 2 and commits.
    cluster.psql(CHANGE);
    assert_eq!(
        cluster.psql("SELECT max(change_seq) FROM toetsafname_changes"),
        "2",
        "change 2 is committed and visible"
    );
    assert_eq!(
        cluster.psql(READ),
        "",
        "a change was handed out below an open one"
    );

    open.send("COMMIT;");
    open.finish();
    assert_eq!(cluster.psql(READ), "1,2");
}

/// Columns only the PostgreSQL schema has (table, column): the numbering design's.
const POSTGRES_ONLY_COLUMNS: &[(&str, &str)] = &[
    ("toetsafname_changes", "xid"),
    ("xapi_publisher", "cursor_xid"),
    ("receipts", "arrival"),
];

/// Tables only the PostgreSQL schema has: the statement counter and the version table.
const POSTGRES_ONLY_TABLES: &[&str] = &["schema_migrations", "statement_counter", "change_order"];

/// Indexes only the PostgreSQL schema has: the publisher's read order.
const POSTGRES_ONLY_INDEXES: &[&str] = &["toetsafname_changes_order"];

/// Where the PostgreSQL column deliberately differs from a plain translation of SQLite's
/// declaration (migrations.rs header): (table, column, type or default as PostgreSQL has it).
const POSTGRES_DEVIATIONS: &[(&str, &str, &str)] = &[
    // The code binds the raw hash into SQLite's TEXT column.
    ("toetsafnames", "content_sha256", "bytea"),
];

/// One column as `table.column type null|not-null default`, in both engines' terms.
fn column_line(table: &str, column: &str, kind: &str, not_null: bool, default: &str) -> String {
    let null = if not_null { "not-null" } else { "null" };
    format!("{table}.{column} {kind} {null} default={default}")
}

/// A schema as the mirror test compares it.
#[derive(Debug, Default)]
struct Schema {
    /// `column_line`s: tables by name, columns in declared order.
    columns: Vec<String>,
    /// Index names, sorted (not those of primary keys and UNIQUE constraints).
    indexes: Vec<String>,
    /// Foreign keys as `table.column -> table.column on delete ACTION`, sorted.
    foreign_keys: Vec<String>,
}

/// The SQLite schema of a fresh data dir (both files), in PostgreSQL's type names.
fn sqlite_schema(data_dir: &Path) -> Schema {
    let mut columns = Vec::new();
    let mut indexes = Vec::new();
    let mut foreign_keys = Vec::new();
    for file in ["gateway.sqlite", "xapi.sqlite"] {
        let connection = rusqlite::Connection::open(data_dir.join(file)).unwrap();
        let mut statement = connection
            .prepare(
                "SELECT type, name, tbl_name FROM sqlite_master
                 WHERE name NOT LIKE 'sqlite_%' AND type IN ('table', 'index') AND sql IS NOT NULL",
            )
            .unwrap();
        let objects: Vec<(String, String, String)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (kind, name, table) in objects {
            if kind == "index" {
                indexes.push(name);
                continue;
            }
            let mut info = connection
                .prepare(&format!("PRAGMA table_info(\"{table}\")"))
                .unwrap();
            let rows: Vec<(String, String, bool, Option<String>, i64)> = info
                .query_map([], |row| {
                    Ok((
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut references = connection
                .prepare(&format!("PRAGMA foreign_key_list(\"{table}\")"))
                .unwrap();
            let found: Vec<(String, String, String, String)> = references
                .query_map([], |row| {
                    Ok((row.get(2)?, row.get(3)?, row.get(4)?, row.get(6)?))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for (parent, from, to, on_delete) in found {
                foreign_keys.push(format!(
                    "{table}.{from} -> {parent}.{to} on delete {on_delete}"
                ));
            }
            for (column, declared, not_null, default, primary_key) in rows {
                let kind = match declared.to_ascii_uppercase().as_str() {
                    "INTEGER" => "bigint",
                    "TEXT" => "text",
                    "BLOB" => "bytea",
                    "REAL" => "double precision",
                    other => panic!("{table}.{column}: unexpected SQLite type {other}"),
                };
                columns.push((
                    table.clone(),
                    column.clone(),
                    // A primary key column never holds NULL on PostgreSQL.
                    column_line(
                        &table,
                        &column,
                        kind,
                        not_null || primary_key > 0,
                        default.as_deref().unwrap_or(""),
                    ),
                ));
            }
        }
    }
    // Tables by name, columns in declared order (a stable sort keeps it).
    columns.sort_by(|left, right| left.0.cmp(&right.0));
    indexes.sort();
    foreign_keys.sort();
    Schema {
        columns: columns.into_iter().map(|(_, _, line)| line).collect(),
        indexes,
        foreign_keys,
    }
}

/// The migrated PostgreSQL schema in the same terms, without what only it has, its
/// deliberate deviations put back to what SQLite declares.
fn postgres_schema(cluster: &Postgres) -> Schema {
    let rows = cluster.psql(
        "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '')
         FROM information_schema.columns WHERE table_schema = 'public'
         ORDER BY table_name::text COLLATE \"C\", ordinal_position",
    );
    let mut columns = Vec::new();
    for row in rows.lines() {
        let fields: Vec<&str> = row.split('|').collect();
        let [table, column, kind, nullable, default] = fields[..] else {
            panic!("unexpected psql row {row:?}");
        };
        if POSTGRES_ONLY_TABLES.contains(&table) || POSTGRES_ONLY_COLUMNS.contains(&(table, column))
        {
            continue;
        }
        // `'[]'::text` is SQLite's `'[]'`.
        let mut default = default.split("::").next().unwrap_or("").to_string();
        let mut kind = kind.to_string();
        for (deviant_table, deviant_column, deviation) in POSTGRES_DEVIATIONS {
            if (table, column) != (*deviant_table, *deviant_column) {
                continue;
            }
            if kind == *deviation {
                kind = "text".into();
            } else if default == *deviation {
                default.clear();
            } else {
                panic!("{table}.{column} lost its deviation {deviation}: {row}");
            }
        }
        columns.push(column_line(
            table,
            column,
            &kind,
            nullable == "NO",
            &default,
        ));
    }
    let indexes = cluster.psql(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'
           AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'
         ORDER BY indexname::text COLLATE \"C\"",
    );
    let indexes = indexes
        .lines()
        .filter(|name| !POSTGRES_ONLY_INDEXES.contains(name))
        .map(str::to_string)
        .collect();
    // Every foreign key of the schema has one column.
    let foreign_keys = cluster.psql(
        "SELECT c.conrelid::regclass::text || '.' || a.attname || ' -> '
             || c.confrelid::regclass::text || '.' || p.attname || ' on delete '
             || CASE c.confdeltype WHEN 'a' THEN 'NO ACTION' WHEN 'c' THEN 'CASCADE'
                  ELSE c.confdeltype::text END
         FROM pg_constraint c
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
           JOIN pg_attribute p ON p.attrelid = c.confrelid AND p.attnum = c.confkey[1]
         WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
         ORDER BY c.conrelid::regclass::text || '.' || a.attname COLLATE \"C\"",
    );
    Schema {
        columns,
        indexes,
        foreign_keys: foreign_keys
            .lines()
            .filter(|key| {
                !POSTGRES_ONLY_TABLES
                    .iter()
                    .any(|table| key.starts_with(&format!("{table}.")))
            })
            .map(str::to_string)
            .collect(),
    }
}

/// Migration 1 mirrors the SQLite schema of a fresh data dir: every table and column of
/// both files, in the same order, with the same type (in PostgreSQL's names: integers and
/// flags bigint, never boolean), nullability and default, and the same indexes and foreign
/// keys; what only
/// PostgreSQL has is an explicit list, so a column missing on either side fails here.
#[test]
fn the_postgres_schema_mirrors_the_sqlite_schema() {
    let cluster = Postgres::start();
    let scratch = tempfile::tempdir().unwrap();
    on_postgres(&cluster.url(), scratch.path(), &["migrate"]).success();
    let data_dir = scratch.path().join("sqlite");
    let mut init = gateway_command();
    init.arg("--data-dir").arg(&data_dir).arg("init");
    run(init).success();

    let sqlite = sqlite_schema(&data_dir);
    let postgres = postgres_schema(&cluster);
    let (sqlite_columns, postgres_columns) = (&sqlite.columns, &postgres.columns);
    let only_sqlite: Vec<&String> = sqlite_columns
        .iter()
        .filter(|line| !postgres_columns.contains(line))
        .collect();
    let only_postgres: Vec<&String> = postgres_columns
        .iter()
        .filter(|line| !sqlite_columns.contains(line))
        .collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "columns only on SQLite: {only_sqlite:#?}\ncolumns only on PostgreSQL: {only_postgres:#?}"
    );
    assert_eq!(postgres_columns, sqlite_columns, "the column order differs");
    assert_eq!(postgres.indexes, sqlite.indexes);
    assert_eq!(postgres.foreign_keys, sqlite.foreign_keys);
}

/// `sslmode=require` speaks TLS and verifies the server: with the private CA in
/// `database_ca_file` the gateway reaches a server that accepts TLS connections only;
/// without it the certificate is refused, naming why, and nothing shows the password.
#[test]
fn tls_to_the_database_verifies_the_server() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let cluster = Postgres::start();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "database private CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
    cluster.require_tls(&server.pem(), &server_key.serialize_pem());
    let scratch = tempfile::tempdir().unwrap();
    let ca_file = scratch.path().join("db-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let tls_url = format!("{}?sslmode=require", cluster.url());
    let with_ca = |url: &str, args: &[&str]| {
        let mut command = gateway_command();
        command
            .arg("--data-dir")
            .arg(scratch.path().join("data"))
            .env("UWLR_STORE", "postgres")
            .env("UWLR_DATABASE_URL", url)
            .env("UWLR_DATABASE_CA_FILE", &ca_file)
            .args(args);
        run(command)
    };

    // Plain TCP is refused by the server now; TLS with the CA is accepted.
    let plain = with_ca(&cluster.url(), &["migrate"]);
    assert!(!plain.status.success(), "{plain:?}");
    assert!(plain.stderr.contains("no encryption"), "{plain:?}");
    with_ca(&tls_url, &["migrate"]).success();
    let listed = with_ca(&tls_url, &["clients", "list"]);
    assert!(listed.status.success(), "{listed:?}");
    assert_hidden(&listed, cluster.password());

    // Without the CA the server's certificate is not trusted.
    let untrusted = on_postgres(&tls_url, scratch.path(), &["migrate", "--check"]);
    assert!(!untrusted.status.success(), "{untrusted:?}");
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "{untrusted:?}"
    );
    assert_hidden(&untrusted, cluster.password());
}
