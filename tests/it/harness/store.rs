//! Reading a gateway's database as the gateway opens it (SQLite: `gateway.sqlite` with `xapi.sqlite` attached; PostgreSQL: its database in the shared cluster), through the store's engine-neutral `Db`: counts, whole tables, the publisher's progress, statements and delivery state.

use super::gateway::Gateway;
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};
use uwlr_gateway::store::db::Db;

/// How long the publisher (which turns committed changes into statements) may take to catch up.
/// On PostgreSQL each statement costs the publisher a few round trips (statements are
/// written one by one), so the crash test's 60,000 results take longer to publish there.
pub const PUBLISH_DEADLINE: Duration = Duration::from_secs(60);
pub const PUBLISH_DEADLINE_POSTGRES: Duration = Duration::from_secs(300);

impl Gateway {
    /// The gateway's database, read-only: its SQLite file with the bridge's attached, or a
    /// session on its PostgreSQL database whose transactions are read-only.
    pub fn db(&self) -> Db<'static> {
        match &self.database {
            None => Db::owned_sqlite(open(
                &self.data_dir,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )),
            Some(database) => {
                let db = connect(database);
                db.execute_batch("SET default_transaction_read_only = on")
                    .expect("read-only session");
                db
            }
        }
    }

    /// The same, writable, for tests that damage or age stored rows on purpose.
    pub fn db_writable(&self) -> Db<'static> {
        match &self.database {
            None => Db::owned_sqlite(open(&self.data_dir, OpenFlags::default())),
            Some(database) => connect(database),
        }
    }

    /// Every byte the database keeps on disk, to show a secret is not stored in clear:
    /// SQLite's two files with their WALs; on PostgreSQL, after a CHECKPOINT, the files of
    /// this gateway's database and the cluster's WAL.
    pub fn stored_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let Some(database) = &self.database else {
            for name in [
                "gateway.sqlite",
                "gateway.sqlite-wal",
                "xapi.sqlite",
                "xapi.sqlite-wal",
            ] {
                bytes.extend(std::fs::read(self.data_dir.join(name)).unwrap_or_default());
            }
            return bytes;
        };
        let cluster = super::postgres::shared();
        cluster.psql_as("postgres", "CHECKPOINT");
        let oid = cluster.psql_as(
            "postgres",
            &format!("SELECT oid FROM pg_database WHERE datname = '{database}'"),
        );
        let data = cluster.dir().join("data");
        for dir in [data.join("base").join(&oid), data.join("pg_wal")] {
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()));
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_file()) {
                    bytes.extend(std::fs::read(entry.path()).unwrap_or_default());
                }
            }
        }
        assert!(!bytes.is_empty(), "no files of database {database}");
        bytes
    }

    /// The publisher's cursor and the change counter: it has published everything when they meet.
    pub fn publisher_position(&self) -> (i64, i64) {
        publisher_position(&self.db())
    }

    /// Waits until the publisher has turned every change into statements, so the statement
    /// tables can be read.
    pub fn wait_published(&self) {
        wait_published(&self.db());
    }

    /// Every generated statement id.
    pub fn statement_ids(&self) -> BTreeSet<String> {
        self.wait_published();
        rows(&self.db(), "SELECT id FROM xapi_statements")
            .into_iter()
            .collect()
    }

    /// Every generated statement as JSON, in seq order.
    pub fn statements(&self) -> Vec<serde_json::Value> {
        self.wait_published();
        rows(
            &self.db(),
            "SELECT statement FROM xapi_statements ORDER BY seq",
        )
        .iter()
        .map(|text| serde_json::from_str(text).expect("statement JSON"))
        .collect()
    }

    /// Delivery state of one LRS: (pending, dead letters not requeued).
    pub fn outbox(&self, lrs: &str) -> (i64, i64) {
        let rows =
            uwlr_gateway::store::outbox::outbox_status_of(&self.db()).expect("outbox status");
        let row = rows.iter().find(|row| row.lrs == lrs).expect("subscribed");
        (row.pending, row.dead_letters - row.requeued)
    }

    /// Waits until nothing is pending for `lrs` (dead letters aside); pending counts
    /// published statements, so the publisher must have caught up first.
    pub fn wait_delivered(&self, lrs: &str, limit: Duration) {
        self.wait_published();
        self.wait_for(&format!("delivery to {lrs}"), limit, || {
            self.outbox(lrs).0 == 0
        });
    }
}

/// A session on `database` of the shared cluster.
fn connect(database: &str) -> Db<'static> {
    let url = super::postgres::shared().url_of(database);
    uwlr_gateway::store::db::connect_postgres(&url)
        .unwrap_or_else(|error| panic!("connect to the test database {database}: {error}"))
}

fn open(data_dir: &Path, flags: OpenFlags) -> Connection {
    let connection = Connection::open_with_flags(data_dir.join("gateway.sqlite"), flags)
        .expect("open gateway.sqlite");
    connection
        .busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    attach_xapi(&connection, data_dir);
    connection
}

/// Waits until the running gateway's xAPI publisher (which works after each commit, from
/// its cursor) has turned every accepted change into statements.
pub fn wait_published(connection: &Db) {
    let deadline = Instant::now()
        + if connection.is_postgres() {
            PUBLISH_DEADLINE_POSTGRES
        } else {
            PUBLISH_DEADLINE
        };
    loop {
        let (cursor, end) = publisher_position(connection);
        if cursor >= end {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the publisher is stuck at {cursor} of {end}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The publisher's cursor and the end of what it has to publish, as the gateway's own
/// status reports them (`store::outbox::publisher_progress`: on PostgreSQL the end also
/// counts the committed changes not yet given a publication position).
fn publisher_position(connection: &Db) -> (i64, i64) {
    uwlr_gateway::store::outbox::publisher_progress(connection).expect("publisher position")
}

/// SQL for the JSON value at `path` (`$.a.b`) in `column`, as SQLite's `json_extract`
/// reads it; on PostgreSQL as text (`#>>`), which `rows` prints the same.
pub fn json_value(connection: &Db, column: &str, path: &str) -> String {
    if connection.is_postgres() {
        let keys = path
            .trim_start_matches('$')
            .trim_start_matches('.')
            .replace('.', ",");
        format!("(({column})::jsonb #>> '{{{keys}}}')")
    } else {
        format!("json_extract({column}, '{path}')")
    }
}

/// The order in which rows of `receipts` arrived: SQLite's `rowid`; PostgreSQL has none,
/// so the time each message was received, then its id.
pub fn arrival_order(connection: &Db) -> &'static str {
    connection.pick("rowid", "arrival")
}

/// One number from SQL.
pub fn count(connection: &Db, sql: &str) -> i64 {
    connection
        .query_row(sql, rusqlite::params![], |row| row.get(0))
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Every row of a query as text columns joined by `|` (for comparing whole tables).
pub fn rows(connection: &Db, sql: &str) -> Vec<String> {
    let mut statement = connection
        .prepare(sql)
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    let columns = statement.column_count();
    let rows = statement
        .query_map(rusqlite::params![], |row| {
            let mut fields = Vec::with_capacity(columns);
            for index in 0..columns {
                let value: rusqlite::types::Value = row.get(index)?;
                fields.push(match value {
                    rusqlite::types::Value::Null => "NULL".to_string(),
                    rusqlite::types::Value::Integer(number) => number.to_string(),
                    rusqlite::types::Value::Real(number) => number.to_string(),
                    rusqlite::types::Value::Text(text) => text,
                    rusqlite::types::Value::Blob(bytes) => format!("x'{}'", hex::encode(bytes)),
                });
            }
            Ok(fields.join("|"))
        })
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    rows.collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// The rule codes recorded in a receipt's `violations` JSON.
pub fn receipt_rules(connection: &Db, receipt_id: &str) -> BTreeSet<String> {
    let json: String = connection
        .query_row(
            "SELECT violations FROM receipts WHERE id = ?1",
            [receipt_id],
            |row| row.get(0),
        )
        .unwrap_or_else(|error| panic!("receipt {receipt_id}: {error}"));
    let violations: Vec<serde_json::Value> = serde_json::from_str(&json).expect("violations JSON");
    violations
        .iter()
        .map(|violation| violation["rule"].as_str().expect("rule").to_string())
        .collect()
}

/// Attaches the bridge's file (`xapi.sqlite`) beside a data dir's `gateway.sqlite`, as the
/// gateway's own connections do, so queries over statements and core tables read as one.
pub fn attach_xapi(connection: &Connection, data_dir: &Path) {
    connection
        .execute(
            "ATTACH DATABASE ?1 AS xapi",
            [data_dir.join("xapi.sqlite").to_string_lossy()],
        )
        .expect("attach xapi.sqlite");
}
