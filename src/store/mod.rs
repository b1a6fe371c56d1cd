//! SQLite storage behind one boundary: a single writer thread with group commit, and pooled readers.
//!
//! Every write runs on the writer thread. Jobs that queue up together share one
//! transaction (group commit), each inside its own savepoint so that it is still
//! atomic on its own; callers are answered only after the shared COMMIT is durable
//! (at `durability = full` the core's sync thread makes it so, see `sync_loop`).

pub(crate) mod access_request;
pub(crate) mod admin;
pub(crate) mod afname_result;
pub(crate) mod clients;
pub(crate) mod connection;
pub(crate) mod data_dir_lock;
pub mod db;
pub(crate) mod disclosures;
pub(crate) mod erasure;
pub(crate) mod feed;
pub(crate) mod intake;
pub(crate) mod leerlingen;
pub(crate) mod migrations;
pub mod outbox;
pub(crate) mod postgres;
pub(crate) mod readers;
pub(crate) mod reading;
pub(crate) mod receipts;
pub(crate) mod retention;
pub(crate) mod session;
pub(crate) mod statements;
pub(crate) mod status;

use rusqlite::{Connection, OpenFlags};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

/// Why a store operation failed. Each variant says what happened, so that the HTTP
/// (`query::problem`) and SOAP (`soap::fault`) mappings can tell the caller's mistake
/// (`NotFound`, `AlreadyExists`, `InvalidInput`) from ours (`Corrupt` and the rest) and
/// from a moment's contention (`Busy`); the CLI prints the Display.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Any other SQLite failure (`From<rusqlite::Error>` sorts out busy and corrupt ones).
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// A PostgreSQL failure: no connection, or a statement the server refused (the cause
    /// says which; it never holds the database URL).
    #[error("PostgreSQL failed: {}", postgres::describe(.0))]
    Postgres(tokio_postgres::Error),
    /// What an operation names does not exist (a reader, client, school, grant,
    /// activation); carries it as the caller named it.
    #[error("no {what}")]
    NotFound { what: String },
    /// What an operation would create exists already; carries it.
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// The caller's input cannot be stored (a date that is no date, a name out of bounds);
    /// carries which input and why.
    #[error("{field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    /// A stored row (or file) does not read back as the gateway wrote it: our fault, never
    /// the caller's; carries what and why, for the log only.
    #[error("{what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },
    /// The database stayed locked longer than the operation waits; the same request may
    /// succeed later.
    #[error("the database is busy: {detail}")]
    Busy { detail: String },
    /// The data dir cannot be used as it is; carries why and what to do.
    #[error("{} {reason}", path.display())]
    DataDirUnusable { path: PathBuf, reason: String },
    #[error("cannot create data directory {path}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A subcommand other than `serve` or `init` was pointed at a folder without a database
    /// (a typo in `--data-dir` must not quietly start an empty one).
    #[error("{path} is not a data dir: it holds no gateway.sqlite (check --data-dir; `uwlr-gateway init` or `serve` creates one)")]
    NoDatabase { path: PathBuf },
    /// A read-only subcommand found a database older than this binary; it cannot migrate it.
    #[error("{} has schema version {found}, this gateway needs {needed}: run `uwlr-gateway migrate` (or start `serve`) on its data dir once to migrate it", path.display())]
    Outdated {
        path: PathBuf,
        found: usize,
        needed: usize,
    },
    /// A database file (or the PostgreSQL database) was migrated by a newer gateway: this
    /// binary would misread it; `place` is the file's path or the redacted database URL.
    #[error("{place} has schema version {found}, newer than the {supported} this gateway knows: it was migrated by a newer uwlr-gateway; run that version, or restore the backup taken before the upgrade")]
    TooNew {
        place: String,
        found: usize,
        supported: usize,
    },
    /// Another process holds the data dir's lock (`data_dir_lock`): a `serve`, or a migration.
    #[error("{} is in use by another uwlr-gateway ({}) that serves or migrates it: only one may run on a data dir at a time", path.display(), data_dir_lock::describe_holder(holder))]
    InUse { path: PathBuf, holder: Option<u32> },
    /// A changing subcommand of a newer binary found the schema older than it needs while a
    /// `serve` holds the data dir: it may not migrate under that `serve`.
    #[error("{} is served by another uwlr-gateway ({}) on an older schema (version {found}, this binary needs {needed}): restart that `serve` with this version, which migrates the data dir, or use the `uwlr-gateway` binary it runs", path.display(), data_dir_lock::describe_holder(holder))]
    ServedOlder {
        path: PathBuf,
        holder: Option<u32>,
        found: usize,
        needed: usize,
    },
    /// The data dir's lock file cannot be opened, locked or written.
    #[error("cannot lock {}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the writer thread is gone")]
    WriterGone,
    /// `backup` could not write, sync or rename its copy.
    #[error("cannot write the backup {path}")]
    Backup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("commit failed: {0}")]
    Commit(String),
    /// A sealed secret did not open (see `secret`).
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
}

impl From<tokio_postgres::Error> for StoreError {
    /// A failure that waiting may cure is `Busy` (the caller answers 503 with Retry-After,
    /// SOAP `Server.Bezet`): the server or the network is gone (a primary failing over, a
    /// restart), a serialization failure or deadlock, too many connections. The rest (a
    /// statement the server refused, a wrong password) is `Postgres`.
    fn from(error: tokio_postgres::Error) -> StoreError {
        if postgres::is_transient(&error) {
            return StoreError::Busy {
                detail: postgres::describe(&error),
            };
        }
        StoreError::Postgres(error)
    }
}

impl From<rusqlite::Error> for StoreError {
    /// Sorts SQLite's failures: a lock held past the busy timeout is `Busy`, a value that
    /// does not convert to its Rust type or a damaged file is `Corrupt`, the rest `Sqlite`.
    fn from(error: rusqlite::Error) -> StoreError {
        use rusqlite::Error as E;
        // A PostgreSQL failure that `db` carried through rusqlite's error type comes back out.
        let error = match error {
            E::ToSqlConversionFailure(carried) => match carried.downcast::<tokio_postgres::Error>()
            {
                Ok(postgres) => return StoreError::Postgres(*postgres),
                Err(other) => E::ToSqlConversionFailure(other),
            },
            other => other,
        };
        match &error {
            E::SqliteFailure(failure, _) if is_busy_code(failure.code) => StoreError::Busy {
                detail: error.to_string(),
            },
            E::SqliteFailure(failure, _)
                if matches!(
                    failure.code,
                    rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
                ) =>
            {
                StoreError::corrupt("the database file", error.to_string())
            }
            E::FromSqlConversionFailure(..)
            | E::InvalidColumnType(..)
            | E::IntegralValueOutOfRange(..)
            | E::Utf8Error(..) => StoreError::corrupt("a stored row", error.to_string()),
            _ => StoreError::Sqlite(error),
        }
    }
}

fn is_busy_code(code: rusqlite::ErrorCode) -> bool {
    matches!(
        code,
        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
    )
}

impl StoreError {
    pub(crate) fn not_found(what: impl Into<String>) -> StoreError {
        StoreError::NotFound { what: what.into() }
    }

    pub(crate) fn already_exists(what: impl Into<String>) -> StoreError {
        StoreError::AlreadyExists { what: what.into() }
    }

    pub(crate) fn invalid_input(field: &'static str, reason: impl Into<String>) -> StoreError {
        StoreError::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl ToString) -> StoreError {
        StoreError::Corrupt {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    /// Whether waiting and trying again may succeed: `Busy`, or a busy SQLite error
    /// wrapped without `From` (as `IntakeError` and `BridgeError` do).
    pub(crate) fn is_busy(&self) -> bool {
        match self {
            StoreError::Busy { .. } => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => {
                is_busy_code(failure.code)
            }
            _ => false,
        }
    }
}

/// Which database engine holds the gateway's data (`store` in the configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Engine {
    /// `gateway.sqlite` and `xapi.sqlite` in the data dir: the embedded default.
    #[default]
    Sqlite,
    /// One PostgreSQL database at `database_url`, for several instances serving it at once
    /// (issue 12; `postgres::engine`).
    Postgres,
}

/// How durable a commit is before the sender is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Durability {
    /// Survives power loss: `serve`'s core writer commits with `synchronous=NORMAL` and its
    /// sync thread `fdatasync`s the WAL before anyone learns of the commit (pipelined
    /// commits); every other connection, a CLI process's writers included, runs
    /// `synchronous=FULL`.
    Full,
    /// `synchronous=NORMAL`: survives a crash of the gateway, not of the machine.
    Normal,
}

type Completion = Box<dyn FnOnce(Result<(), GroupFailure>) + Send>;
/// A job gets the connection inside the group's transaction, or why there is none.
type Job = Box<dyn FnOnce(Result<&mut Connection, GroupFailure>) -> Completion + Send>;

/// Why a group transaction did not begin or commit, as each of its jobs is told; a lock
/// held past the busy timeout stays `Busy` for the caller instead of a bare message.
#[derive(Clone, Debug)]
struct GroupFailure {
    busy: bool,
    message: String,
}

impl GroupFailure {
    fn of(error: &rusqlite::Error) -> GroupFailure {
        let busy = matches!(error, rusqlite::Error::SqliteFailure(failure, _) if is_busy_code(failure.code));
        GroupFailure {
            busy,
            message: error.to_string(),
        }
    }

    fn into_error(self) -> StoreError {
        match self.busy {
            true => StoreError::Busy {
                detail: self.message,
            },
            false => StoreError::Commit(self.message),
        }
    }
}

/// The most jobs one group commit takes.
const GROUP_LIMIT: usize = 512;

/// Handle to the databases; cheap to clone.
///
/// Two SQLite files, each with its own writer thread, so that writing xAPI statements
/// never holds up the commits of the intake (SQLite has one write lock per file):
/// `gateway.sqlite` (the core: everything a message changes, and the change log) and
/// `xapi.sqlite` (what the bridge derives from the change log: statements, the
/// publisher's cursor, LRS subscriptions and dead letters). Readers and one-off
/// connections see both (`xapi.sqlite` is attached as `xapi`; table names are unique
/// across the two, so queries need no schema prefix); each writer sees only its own file.
#[derive(Clone)]
pub(crate) struct Store {
    engine: Kind,
}

/// The engine behind a `Store`: the SQLite files of a data dir, or a PostgreSQL database.
#[derive(Clone)]
enum Kind {
    Sqlite(Arc<Inner>),
    Postgres(Arc<postgres::engine::Engine>),
}

struct Inner {
    core: Database,
    xapi: Database,
    durability: Durability,
    wal_restart_bytes: u64,
    readers: Mutex<Vec<Connection>>,
    /// The data-dir lock of a serving store (`Store::open_serving`), held until the store
    /// is dropped or the process ends. Only a serving store pipelines its commits: a CLI
    /// process has no readers that wait for its syncs, so it commits at FULL.
    serving: Option<data_dir_lock::DataDirLock>,
}

/// One database file and its writer thread.
struct Database {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    /// Numbers the groups whose COMMIT has begun, raised before the COMMIT runs: a reader's
    /// snapshot can hold no group above the value read after the snapshot.
    begun: Arc<AtomicU64>,
    /// The number of the last group that is durable (or failed), so that followers
    /// (publisher, outbox worker) wake when there is news and `Store::synced` can wait;
    /// it never names a group whose changes could still be lost.
    commits: Arc<tokio::sync::watch::Sender<u64>>,
    /// Set for good once a sync of the WAL failed: Linux may have dropped the pages it could
    /// not write and reports that once, so no later sync can vouch for them; every later
    /// group fails and `Store::synced` errs until the gateway restarts (and recovers).
    sync_failed: Arc<AtomicBool>,
    /// Set by the checkpoint thread when the writer should checkpoint after its next commit.
    restart_wal: Arc<AtomicBool>,
}

impl Database {
    fn new(path: PathBuf) -> Database {
        Database {
            path,
            writer: Mutex::new(None),
            begun: Arc::new(AtomicU64::new(0)),
            commits: Arc::new(tokio::sync::watch::channel(0).0),
            sync_failed: Arc::new(AtomicBool::new(false)),
            restart_wal: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The PostgreSQL advisory lock key that orders instances' startup work (`on_side_transaction`).
const STARTUP_LOCK_KEY: i64 = 0x7577_6c73;

/// The alias of `xapi.sqlite` on core connections.
pub(crate) const XAPI_SCHEMA: &str = "xapi";

/// Attaches another database file under `alias`.
fn attach(connection: &Connection, path: &Path, alias: &str) -> Result<(), StoreError> {
    connection.execute(
        &format!("ATTACH DATABASE ?1 AS {alias}"),
        [path.to_string_lossy()],
    )?;
    // Pragmas are per schema: the attached file gets the same journal and durability.
    let synchronous: String =
        connection.query_row("PRAGMA main.synchronous", rusqlite::params![], |row| {
            row.get::<_, i64>(0).map(|value| value.to_string())
        })?;
    let schema = Some(rusqlite::DatabaseName::Attached(alias));
    connection.pragma_update(schema, "journal_mode", "WAL")?;
    connection.pragma_update(schema, "synchronous", synchronous)?;
    Ok(())
}

/// The database files of a data dir, with the WAL and shared-memory files beside them.
const DATABASE_FILES: [&str; 6] = [
    "gateway.sqlite",
    "gateway.sqlite-wal",
    "gateway.sqlite-shm",
    "xapi.sqlite",
    "xapi.sqlite-wal",
    "xapi.sqlite-shm",
];

/// Creates a directory (and missing parents) readable by its owner only (0700), whatever the
/// umask; an existing directory is left as the operator set it.
pub(crate) fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Makes the database files of `data_dir` readable by their owner only (0600): they hold
/// learners' names, ECK iDs and results. Files made wider (an older version under umask 022,
/// a copy by hand) are narrowed, with a warning.
fn restrict_database_files(data_dir: &Path) -> std::io::Result<()> {
    for name in DATABASE_FILES {
        let path = data_dir.join(name);
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), mode = format!("{:o}", metadata.permissions().mode() & 0o777), "database file was readable by others; narrowed to 0600");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Fails with `NoDatabase` unless `data_dir` holds `gateway.sqlite`.
fn require_database(data_dir: &Path) -> Result<(), StoreError> {
    if data_dir.join("gateway.sqlite").is_file() {
        Ok(())
    } else {
        Err(StoreError::NoDatabase {
            path: data_dir.to_path_buf(),
        })
    }
}

/// A read-only connection to both files of an existing data dir, for the subcommands that
/// only look (`list`, `show`, `audit`, `outbox status`): opened with `SQLITE_OPEN_READ_ONLY`
/// and `query_only`, it never creates, migrates or writes anything, so it works on a copy
/// the gateway's user may not write (a backup being inspected) and beside a running gateway.
///
/// A file with a `-wal` beside it may have a live writer, so it is opened read-only with
/// locking (SQLite then needs the `-shm`); a file without one has no writer (a gateway holds
/// its WAL open while it runs), so it is opened `immutable`: no lock, no `-shm` or `-wal`
/// created, which a read-only directory would not allow and a copy should not get.
pub(crate) fn open_read_only(data_dir: &Path) -> Result<Connection, StoreError> {
    require_database(data_dir)?;
    if !data_dir.join("xapi.sqlite").is_file() {
        return Err(StoreError::DataDirUnusable {
            path: data_dir.to_path_buf(),
            reason: "holds no xapi.sqlite: run `uwlr-gateway migrate` (or start `serve`) on it once (it creates the file; `serve` regenerates the statements)".into(),
        });
    }
    let (connection, versions) = open_read_only_any_version(data_dir)?;
    migrations::SchemaVersions::from(versions).require_current(data_dir)?;
    Ok(connection)
}

/// `open_read_only` without its version check, and with an in-memory `xapi` when the data
/// dir holds no `xapi.sqlite` (which `serve` would create at version 0): the connection and
/// the `user_version` of both files, for `migrate` to report.
pub(crate) fn open_read_only_any_version(
    data_dir: &Path,
) -> Result<(Connection, [usize; 2]), StoreError> {
    require_database(data_dir)?;
    let beside = |file: &str, suffix: &str| {
        let mut path = data_dir.join(file).into_os_string();
        path.push(suffix);
        Path::new(&path).exists()
    };
    let uri = |file: &str| {
        let path = data_dir.join(file);
        let immutable = if beside(file, "-wal") {
            ""
        } else {
            "&immutable=1"
        };
        let path = std::path::absolute(&path).unwrap_or(path);
        format!(
            "file:{}?mode=ro{immutable}",
            percent_encoding::utf8_percent_encode(&path.to_string_lossy(), URI_PATH)
        )
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let opened = (|| -> rusqlite::Result<(Connection, [usize; 2])> {
        let connection = Connection::open_with_flags(uri("gateway.sqlite"), flags)?;
        connection.busy_timeout(std::time::Duration::from_secs(30))?;
        let xapi = if data_dir.join("xapi.sqlite").is_file() {
            uri("xapi.sqlite")
        } else {
            ":memory:".to_string()
        };
        connection.execute(&format!("ATTACH DATABASE ?1 AS {XAPI_SCHEMA}"), [xapi])?;
        connection.pragma_update(None, "query_only", true)?;
        let version = |schema: &str| {
            connection.query_row(
                &format!("PRAGMA {schema}.user_version"),
                rusqlite::params![],
                |row| row.get::<_, i64>(0).map(|version| version as usize),
            )
        };
        let versions = [version("main")?, version(XAPI_SCHEMA)?];
        Ok((connection, versions))
    })();
    let (connection, versions) = match opened {
        Ok(opened) => opened,
        // A WAL left by a gateway that did not stop cleanly needs its -shm to be read; a
        // user who may not write the folder cannot create one.
        Err(_)
            if ["gateway.sqlite", "xapi.sqlite"]
                .iter()
                .any(|file| beside(file, "-wal") && !beside(file, "-shm")) =>
        {
            return Err(StoreError::DataDirUnusable {
                path: data_dir.to_path_buf(),
                reason: "holds a -wal without its -shm (a gateway stopped without closing it), which only a user who may write the folder can read: run this as the data dir's owner, or start `serve` on it once".into(),
            });
        }
        Err(error) => return Err(error.into()),
    };
    Ok((connection, versions))
}

/// Characters escaped in a `file:` URI path: those SQLite would read as query or fragment.
const URI_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b'?')
    .add(b'#')
    .add(b'%')
    .add(b' ');

/// Opens a connection with the pragmas every connection needs.
pub(crate) fn open_connection(
    path: &Path,
    durability: Durability,
) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(std::time::Duration::from_secs(30))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        },
    )?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// Copies both database files into the directory `destination` (as `gateway.sqlite` and
/// `xapi.sqlite`, so the directory is a data dir to restore) with SQLite's online backup
/// API, while a gateway may be writing to them. `source` is a `Store::connect` connection.
///
/// Each file is copied in a single backup step, that is inside one read transaction: in WAL
/// mode that never blocks the writers, and it sees one committed state, whereas a
/// step-by-step backup restarts whenever another connection commits and might never finish
/// under load. The bridge's file is copied first, so its publisher cursor never points past
/// the copied change log (the restored publisher regenerates what the copy lacks).
/// Everything is written to `destination` plus `.partial`, checked with
/// `PRAGMA quick_check`, synced and then renamed, so `destination` is whole or absent.
pub(crate) fn backup(source: &db::Db, destination: &Path) -> Result<(), StoreError> {
    let Some(source) = source.as_sqlite() else {
        return Err(StoreError::invalid_input(
            "store",
            "backup copies SQLite files; on PostgreSQL use pg_dump or a base backup",
        ));
    };
    let io = |source: std::io::Error| StoreError::Backup {
        path: destination.to_path_buf(),
        source,
    };
    if destination.exists() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the backup directory exists already",
        )));
    }
    let mut partial = destination.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let _ = std::fs::remove_dir_all(&partial);
    create_private_dir(&partial).map_err(io)?;
    let copied = copy_database(
        source,
        rusqlite::DatabaseName::Attached(XAPI_SCHEMA),
        &partial.join("xapi.sqlite"),
    )
    .and_then(|()| {
        copy_database(
            source,
            rusqlite::DatabaseName::Main,
            &partial.join("gateway.sqlite"),
        )
    });
    if let Err(error) = copied {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(error);
    }
    let sync = |path: &Path| std::fs::File::open(path).and_then(|file| file.sync_all());
    for file in ["xapi.sqlite", "gateway.sqlite"] {
        let path = partial.join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        sync(&path).map_err(io)?;
    }
    sync(&partial).map_err(io)?;
    std::fs::rename(&partial, destination).map_err(io)?;
    if let Some(parent) = destination
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        let _ = sync(parent);
    }
    Ok(())
}

/// One file of `backup`: every page of `schema` in one step, then checked.
fn copy_database(
    source: &Connection,
    schema: rusqlite::DatabaseName<'_>,
    file: &Path,
) -> Result<(), StoreError> {
    let mut copy = Connection::open(file)?;
    {
        let backup = rusqlite::backup::Backup::new_with_names(
            source,
            schema,
            &mut copy,
            rusqlite::DatabaseName::Main,
        )?;
        // -1: every page in one step. Busy or Locked (a checkpoint holding a lock) is retried.
        let mut attempts = 0;
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ if attempts < 600 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => {
                    return Err(StoreError::Busy {
                        detail: "it stayed locked for 30 s".into(),
                    })
                }
            }
        }
    }
    // The copy holds everything in its main file: no WAL beside it to lose.
    copy.pragma_update(None, "journal_mode", "DELETE")?;
    let verdict: String =
        copy.query_row("PRAGMA quick_check", rusqlite::params![], |row| row.get(0))?;
    if verdict != "ok" {
        return Err(StoreError::corrupt(
            format!("the backup copy of {}", file.display()),
            format!("quick_check says {verdict}"),
        ));
    }
    Ok(())
}

/// Creates `data_dir` (private to the gateway's user) unless it exists.
fn create_data_dir(data_dir: &Path) -> Result<(), StoreError> {
    create_private_dir(data_dir).map_err(|source| StoreError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })
}

impl Store {
    /// Opens (creating and migrating) `gateway.sqlite` and `xapi.sqlite` in `data_dir`; only
    /// `serve` and `init` create a data dir.
    pub(crate) fn open(
        data_dir: &Path,
        durability: Durability,
        wal_restart_bytes: u64,
    ) -> Result<Store, StoreError> {
        create_data_dir(data_dir)?;
        Store::open_created(data_dir, durability, wal_restart_bytes, None)
    }

    /// `open` for `serve`: takes the data dir's lock before anything is migrated and holds it
    /// for the store's life, so a second `serve` on the same dir is refused (`InUse`).
    pub(crate) fn open_serving(
        data_dir: &Path,
        durability: Durability,
        wal_restart_bytes: u64,
    ) -> Result<Store, StoreError> {
        create_data_dir(data_dir)?;
        let lock = data_dir_lock::DataDirLock::acquire(data_dir)?;
        Store::open_created(data_dir, durability, wal_restart_bytes, Some(lock))
    }

    /// `uwlr-gateway migrate`: migrates an existing data dir under its lock (`InUse` while a
    /// `serve` runs on it; `TooNew` for a file a newer gateway migrated) and closes it again;
    /// the schema versions before and after.
    pub(crate) fn migrate_existing(
        data_dir: &Path,
        durability: Durability,
        wal_restart_bytes: u64,
    ) -> Result<(migrations::SchemaVersions, migrations::SchemaVersions), StoreError> {
        require_database(data_dir)?;
        let lock = data_dir_lock::DataDirLock::acquire(data_dir)?;
        let before = migrations::SchemaVersions::read(data_dir)?;
        before.refuse_newer(data_dir)?;
        let store = Store::open_created(data_dir, durability, wal_restart_bytes, Some(lock))?;
        let after = store
            .read(|db| migrations::SchemaVersions::of(db.as_sqlite().expect("a SQLite store")))?;
        store.close();
        Ok((before, after))
    }

    /// Opens (and migrates) the databases of a data dir that must exist already: every
    /// changing subcommand but `serve` and `init`, so a mistyped `--data-dir` fails instead
    /// of creating an empty database.
    pub(crate) fn open_existing(
        data_dir: &Path,
        durability: Durability,
        wal_restart_bytes: u64,
    ) -> Result<Store, StoreError> {
        require_database(data_dir)?;
        Store::open_created(data_dir, durability, wal_restart_bytes, None)
    }

    /// Opens and migrates; without the `serving` lock it takes the data-dir lock only while
    /// migrations are pending, so a changing subcommand runs beside a `serve` (SQLite's
    /// locks order their writes) but never changes the schema under one.
    fn open_created(
        data_dir: &Path,
        durability: Durability,
        wal_restart_bytes: u64,
        serving: Option<data_dir_lock::DataDirLock>,
    ) -> Result<Store, StoreError> {
        let migrating = serving.is_none();
        let store = Store {
            engine: Kind::Sqlite(Arc::new(Inner {
                core: Database::new(data_dir.join("gateway.sqlite")),
                xapi: Database::new(data_dir.join("xapi.sqlite")),
                durability,
                wal_restart_bytes,
                readers: Mutex::new(Vec::new()),
                serving,
            })),
        };
        let mut connection = store.connect_sqlite()?;
        let found = migrations::SchemaVersions::of(&connection)?;
        let _migration_lock = if migrating && found.pending() {
            match data_dir_lock::DataDirLock::acquire(data_dir) {
                Ok(lock) => Some(lock),
                Err(StoreError::InUse { path, holder }) => {
                    let (found, needed) = found.oldest_pending();
                    return Err(StoreError::ServedOlder {
                        path,
                        holder,
                        found,
                        needed,
                    });
                }
                Err(error) => return Err(error),
            }
        } else {
            None
        };
        migrations::migrate(&mut connection)?;
        restrict_database_files(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        Ok(store)
    }

    /// Connects to the PostgreSQL database at `url` and applies its pending migrations
    /// (`TooNew` for a database a newer gateway migrated); `pool_size` writer threads and
    /// as many pooled read sessions.
    pub(crate) fn open_postgres(
        url: &crate::secret::Secret,
        pool_size: usize,
    ) -> Result<Store, StoreError> {
        let database = postgres::Database::new(url)?;
        let engine = postgres::engine::Engine::start(
            postgres::parse_url(url.expose())?,
            database.shown().to_string(),
            pool_size,
        )?;
        engine.run(async move { database.migrate().await })??;
        Ok(Store {
            engine: Kind::Postgres(Arc::new(engine)),
        })
    }

    /// The SQLite files' state; only reached on the SQLite paths of the methods below.
    fn inner(&self) -> &Arc<Inner> {
        match &self.engine {
            Kind::Sqlite(inner) => inner,
            Kind::Postgres(_) => unreachable!("a SQLite-only path was taken on PostgreSQL"),
        }
    }

    /// Which engine this store runs on.
    pub(crate) fn engine(&self) -> Engine {
        match &self.engine {
            Kind::Sqlite(_) => Engine::Sqlite,
            Kind::Postgres(_) => Engine::Postgres,
        }
    }

    /// Where the data lives, for output: the core database file, or the redacted URL.
    pub(crate) fn location(&self) -> String {
        match &self.engine {
            Kind::Sqlite(inner) => inner.core.path.display().to_string(),
            Kind::Postgres(engine) => engine.shown().to_string(),
        }
    }

    /// The core database file; `None` on PostgreSQL.
    pub(crate) fn path(&self) -> Option<&Path> {
        match &self.engine {
            Kind::Sqlite(inner) => Some(&inner.core.path),
            Kind::Postgres(_) => None,
        }
    }

    /// Runs `job` on a connection of its own beside the writers (the core with the bridge's
    /// file attached), in autocommit: for startup work that runs before the writers carry
    /// traffic (the demo seed, resealing stored secrets, the xAPI id key). The caller passes
    /// store functions and never holds the connection.
    pub(crate) fn on_side_connection<R, E: From<StoreError>>(
        &self,
        job: impl FnOnce(&db::Db) -> Result<R, E>,
    ) -> Result<R, E> {
        let db = self.connect()?;
        job(&db)
    }

    /// `on_side_connection` with `job` in one write transaction that no other process's
    /// such transaction runs beside (SQLite: IMMEDIATE; PostgreSQL: under a transaction
    /// advisory lock), for startup work that reads and then writes, such as the demo seed,
    /// which several instances starting at once would otherwise each write.
    pub(crate) fn on_side_transaction<R, E: From<StoreError>>(
        &self,
        job: impl FnOnce(&db::Db) -> Result<R, E>,
    ) -> Result<R, E> {
        let db = self.connect()?;
        connection::in_write_transaction(&db, |db| {
            if db.is_postgres() {
                db.query_row(
                    "SELECT pg_advisory_xact_lock(?1)",
                    [STARTUP_LOCK_KEY],
                    |_| Ok(()),
                )
                .map_err(StoreError::from)?;
            }
            job(db)
        })
    }

    /// A connection of its own: on SQLite the core with the bridge's file attached, for
    /// one-off work (CLI sessions, `on_side_connection`) and the reader pool; private to
    /// the store.
    fn connect(&self) -> Result<db::Db<'static>, StoreError> {
        match &self.engine {
            Kind::Sqlite(_) => Ok(db::Db::owned_sqlite(self.connect_sqlite()?)),
            Kind::Postgres(engine) => Ok(db::Db::owned_postgres(engine.session()?)),
        }
    }

    fn connect_sqlite(&self) -> Result<Connection, StoreError> {
        let connection = open_connection(&self.inner().core.path, self.inner().durability)?;
        attach(&connection, &self.inner().xapi.path, XAPI_SCHEMA)?;
        Ok(connection)
    }

    /// Runs `job` on a pooled read connection (both files visible).
    pub(crate) fn read<R>(
        &self,
        job: impl FnOnce(&db::Db) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let inner = match &self.engine {
            Kind::Sqlite(inner) => inner,
            Kind::Postgres(engine) => return engine.read(job),
        };
        let pooled = inner.readers.lock().expect("reader pool").pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => self.connect_sqlite()?,
        };
        let result = job(&db::Db::sqlite(&connection));
        let mut readers = inner.readers.lock().expect("reader pool");
        if readers.len() < 16 {
            readers.push(connection);
        }
        result
    }

    /// `read` on the blocking pool, for async callers (the delivery worker).
    pub(crate) async fn read_blocking<R: Send + 'static>(
        &self,
        job: impl FnOnce(&db::Db) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.read(job)).await {
            Ok(read) => read,
            // A read job that panicked is a bug: it surfaces here as it would have inline.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only a runtime shutting down cancels a blocking task before it runs; the
            // caller stops with it, and a later start reads again.
            Err(_) => Err(StoreError::Busy {
                detail: "the read was cancelled: the runtime is shutting down".into(),
            }),
        }
    }

    /// `write_xapi` with the job in its own savepoint of the group, so its writes are atomic.
    pub(crate) async fn write_xapi_atomic<
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    >(
        &self,
        job: impl FnOnce(&db::Db) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        self.write_xapi(move |db| connection::in_savepoint(db, job))
            .await?
    }

    /// Whether the core database answers a read (`/health`).
    pub(crate) fn ping(&self) -> Result<(), StoreError> {
        self.read(|db| Ok(db.query_row("SELECT 1", rusqlite::params![], |_| Ok(()))?))
    }

    fn writer(&self, which: Which) -> Result<mpsc::Sender<Job>, StoreError> {
        let database = self.database(which);
        let mut slot = database.writer.lock().expect("writer slot");
        if let Some(sender) = slot.as_ref() {
            return Ok(sender.clone());
        }
        // Each writer sees only its own file: BEGIN IMMEDIATE locks every attached file, and
        // a snapshot of the other file held through a write transaction would keep that
        // file's WAL from starting over.
        let connection = open_connection(&database.path, self.inner().durability)?;
        let (name, background, label) = match which {
            Which::Core => ("store-writer", false, "core"),
            Which::Xapi => ("xapi-writer", true, "xapi"),
        };
        // The writer checkpoints only when the checkpoint thread asks it to (see `checkpoint_loop`).
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        connection.pragma_update(
            None,
            "journal_size_limit",
            self.inner().wal_restart_bytes as i64,
        )?;
        // The core writer's cache holds the hot index pages of the intake; the xAPI writer
        // mostly appends and keeps a smaller one (both count toward a large message's memory).
        let cache_kib = match which {
            Which::Core => 32768,
            Which::Xapi => 8192,
        };
        connection.pragma_update(None, "cache_size", -cache_kib)?;
        // Savepoint journals (one per job) stay in memory instead of spilling to temp files.
        connection.pragma_update(None, "temp_store", "MEMORY")?;
        // Pipelined commits: at `full` the serving core writer's COMMIT only appends to the
        // WAL, and a sync thread makes each group durable while the writer already runs the
        // next one. (A CLI process commits at FULL: `serve`'s readers could not wait for its
        // syncs, so its groups must be durable when they become visible.)
        // The xAPI writer keeps `synchronous=FULL`: it is off the intake's path, and what it
        // commits (statements for the delivery worker and the xAPI API) is durable when seen.
        let syncer = match (which, self.inner().durability) {
            (Which::Core, Durability::Full) if self.inner().serving.is_some() => {
                connection.pragma_update(None, "synchronous", "NORMAL")?;
                let (sender, receiver) = mpsc::channel::<Committed>();
                let wal = wal_path(&database.path);
                let commits = database.commits.clone();
                let failed = database.sync_failed.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-sync"))
                    .spawn(move || sync_loop(|| sync_file(&wal), receiver, commits, failed))
                    .map_err(|error| StoreError::Commit(error.to_string()))?;
                Some(sender)
            }
            _ => None,
        };
        let (sender, receiver) = mpsc::channel::<Job>();
        let counters = Counters {
            begun: database.begun.clone(),
            commits: database.commits.clone(),
            sync_failed: database.sync_failed.clone(),
        };
        let restart = database.restart_wal.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if background {
                    lower_priority();
                }
                writer_loop(connection, receiver, counters, syncer, restart, label)
            })
            .map_err(|error| StoreError::Commit(error.to_string()))?;
        let checkpointer = open_connection(&database.path, self.inner().durability)?;
        let alive = Arc::downgrade(self.inner());
        let path = database.path.clone();
        let restart = database.restart_wal.clone();
        let restart_bytes = self.inner().wal_restart_bytes;
        std::thread::Builder::new()
            .name(format!("{name}-checkpoint"))
            .spawn(move || {
                lower_priority();
                checkpoint_loop(checkpointer, path, alive, restart, restart_bytes)
            })
            .map_err(|error| StoreError::Commit(error.to_string()))?;
        *slot = Some(sender.clone());
        Ok(sender)
    }

    fn database(&self, which: Which) -> &Database {
        match which {
            Which::Core => &self.inner().core,
            Which::Xapi => &self.inner().xapi,
        }
    }

    /// Runs `job` on the core writer thread inside the current group transaction and
    /// resolves once that transaction has committed. The job must keep its own
    /// changes atomic (a savepoint) and must not commit. On PostgreSQL the job has a
    /// transaction of its own on one of the writer threads.
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        job: impl FnOnce(&db::Db) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        match &self.engine {
            Kind::Sqlite(_) => self.write_to(Which::Core, job).await,
            Kind::Postgres(engine) => engine.write(job).await,
        }
    }

    /// Like `write`, on the xAPI writer thread, whose connection holds only the bridge's
    /// file: what a job needs from the core is read beforehand through `read`. (On
    /// PostgreSQL both are one database and this is `write`.)
    pub(crate) async fn write_xapi<R: Send + 'static>(
        &self,
        job: impl FnOnce(&db::Db) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        match &self.engine {
            Kind::Sqlite(_) => self.write_to(Which::Xapi, job).await,
            Kind::Postgres(engine) => engine.write(job).await,
        }
    }

    async fn write_to<R: Send + 'static>(
        &self,
        which: Which,
        job: impl FnOnce(&db::Db) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (sender, receiver) = oneshot::channel::<Result<R, GroupFailure>>();
        let boxed: Job = Box::new(move |connection: Result<&mut Connection, GroupFailure>| {
            let result = connection.map(|connection| job(&db::Db::sqlite(connection)));
            Box::new(move |committed: Result<(), GroupFailure>| {
                let _ = sender.send(committed.and(result));
            })
        });
        self.writer(which)?
            .send(boxed)
            .map_err(|_| StoreError::WriterGone)?;
        match receiver.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(failure)) => Err(failure.into_error()),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    /// A receiver that changes after every durable group commit of this process's core
    /// writer (on PostgreSQL: after every commit of this process's writers).
    pub(crate) fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        match &self.engine {
            Kind::Sqlite(inner) => inner.core.commits.subscribe(),
            Kind::Postgres(engine) => engine.commits(),
        }
    }

    /// Resolves once every core group whose COMMIT began before this call is durable.
    /// At `durability = full` a group is visible to readers before its sync, so every read
    /// that hands out what it saw awaits this after its snapshot: a replay answer, a receipt,
    /// the publisher's round, and every read API answer (LAS feed, xAPI, which also tells
    /// consistent-through from the core; their audit row commits on the xAPI writer, which
    /// does not wait for the core). Then no answer shows a change a power loss could take
    /// back. An error once a sync has failed: nothing read since can be vouched for.
    /// (PostgreSQL's COMMIT returns once durable: nothing to wait for.)
    pub(crate) async fn synced(&self) -> Result<(), StoreError> {
        let database = match &self.engine {
            Kind::Sqlite(inner) => &inner.core,
            Kind::Postgres(_) => return Ok(()),
        };
        let target = database.begun.load(Ordering::SeqCst);
        let mut commits = database.commits.subscribe();
        let _ = commits.wait_for(|synced| *synced >= target).await;
        if database.sync_failed.load(Ordering::SeqCst) {
            return Err(StoreError::Commit(
                "a sync of the core's WAL failed; restart the gateway".into(),
            ));
        }
        Ok(())
    }

    /// A receiver that changes after every group commit of this process's xAPI writer.
    pub(crate) fn xapi_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        match &self.engine {
            Kind::Sqlite(inner) => inner.xapi.commits.subscribe(),
            Kind::Postgres(engine) => engine.commits(),
        }
    }

    /// Whether this process may run the background work that only one instance may run at
    /// a time (publisher, delivery, purge): always on SQLite, where the data-dir lock admits
    /// one `serve`; on PostgreSQL while it holds the lease (`postgres::engine::Engine::hold_lease`).
    pub(crate) async fn hold_background_lease(&self) -> Result<bool, StoreError> {
        let engine = match &self.engine {
            Kind::Sqlite(_) => return Ok(true),
            Kind::Postgres(engine) => engine.clone(),
        };
        tokio::task::spawn_blocking(move || engine.hold_lease())
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Gives the background lease up, if this process holds it.
    pub(crate) fn release_background_lease(&self) {
        if let Kind::Postgres(engine) = &self.engine {
            engine.release_lease();
        }
    }

    /// Stops the writer threads once queued jobs are done.
    pub(crate) fn close(&self) {
        match &self.engine {
            Kind::Sqlite(inner) => {
                inner.xapi.writer.lock().expect("writer slot").take();
                inner.core.writer.lock().expect("writer slot").take();
            }
            Kind::Postgres(engine) => engine.close(),
        }
    }
}

#[derive(Clone, Copy)]
enum Which {
    Core,
    Xapi,
}

/// Gives the calling thread a lower CPU priority (nice 10), for work that can wait: the
/// xAPI writer and the checkpointers. On two cores under a full drip the intake threads
/// then get the CPU first (5,748 instead of 4,918 messages/s, p99 23.7 instead of 29.6 ms),
/// and the background work catches up in the gaps. Needs no privilege; on failure nothing changes.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread; no memory is shared with them.
    unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, 10);
    }
}

/// A writer's group numbers: begun (a COMMIT started) and durable (`Database::commits`),
/// and whether a sync of its WAL has failed (`Database::sync_failed`).
struct Counters {
    begun: Arc<AtomicU64>,
    commits: Arc<tokio::sync::watch::Sender<u64>>,
    sync_failed: Arc<AtomicBool>,
}

/// A group whose COMMIT has run, on its way to the sync thread.
struct Committed {
    group: u64,
    committed: Result<(), GroupFailure>,
    completions: Vec<Completion>,
}

fn writer_loop(
    mut connection: Connection,
    receiver: mpsc::Receiver<Job>,
    counters: Counters,
    syncer: Option<mpsc::Sender<Committed>>,
    restart_wal: Arc<AtomicBool>,
    label: &'static str,
) {
    while let Ok(first) = receiver.recv() {
        let started = std::time::Instant::now();
        let mut jobs = vec![first];
        while jobs.len() < GROUP_LIMIT {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // After a failed sync nothing more is committed: a group committed now would be
        // visible, and durable after a restart, while its jobs are told it failed.
        let began = if counters.sync_failed.load(Ordering::SeqCst) {
            Err(sync_failed("an earlier sync of the WAL failed"))
        } else {
            connection
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|error| GroupFailure::of(&error))
        };
        let mut completions: Vec<Completion> = Vec::with_capacity(jobs.len());
        if let Err(failure) = began {
            tracing::error!(error = %failure.message, "cannot begin a write transaction");
            if !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK");
            }
            // Each job is told why it did not run (a busy database stays `Busy`).
            for job in jobs {
                job(Err(failure.clone()))(Err(failure.clone()));
            }
            continue;
        }
        for job in jobs {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(&mut connection))));
            match outcome {
                Ok(completion) => completions.push(completion),
                Err(_) => tracing::error!("a store job panicked; its savepoint was rolled back"),
            }
        }
        // Raised before the COMMIT, so no snapshot holds a group above what `begun` says.
        let group = counters.begun.fetch_add(1, Ordering::SeqCst) + 1;
        let committed = connection
            .execute_batch("COMMIT")
            .map_err(|error| GroupFailure::of(&error));
        if let Err(failure) = &committed {
            tracing::error!(error = %failure.message, "group commit failed");
            let _ = connection.execute_batch("ROLLBACK");
        }
        if committed.is_ok() {
            crate::metrics::metrics().group_commit(label, completions.len(), started.elapsed());
        }
        let committed = Committed {
            group,
            committed,
            completions,
        };
        match &syncer {
            // The sync thread answers once the group is durable; this thread goes on.
            Some(syncer) => {
                if let Err(mpsc::SendError(unsent)) = syncer.send(committed) {
                    // No sync thread: nothing after this group can be vouched for either.
                    counters.sync_failed.store(true, Ordering::SeqCst);
                    finish_groups(vec![unsent], Err(sync_gone()), &counters.commits);
                }
            }
            None => finish_groups(vec![committed], Ok(()), &counters.commits),
        }
        // After answering: the frames since the background checkpoint's last pass are few.
        if restart_wal.swap(false, Ordering::Relaxed) {
            if let Err(error) = connection.query_row(
                "PRAGMA main.wal_checkpoint(PASSIVE)",
                rusqlite::params![],
                |_| Ok(()),
            ) {
                tracing::warn!(%error, "checkpoint before a WAL restart failed");
            }
        }
    }
}

/// Answers groups and advances the durable counter, in commit order; `synced` is the
/// outcome of the sync that covers them.
fn finish_groups(
    groups: Vec<Committed>,
    synced: Result<(), GroupFailure>,
    commits: &tokio::sync::watch::Sender<u64>,
) {
    let Some(last) = groups.last().map(|group| group.group) else {
        return;
    };
    // The counter first: a follower woken by an answer finds the group counted.
    commits.send_modify(|count| *count = (*count).max(last));
    for group in groups {
        let outcome = group.committed.and(synced.clone());
        for completion in group.completions {
            completion(outcome.clone());
        }
    }
}

fn sync_gone() -> GroupFailure {
    GroupFailure {
        busy: false,
        message: "the sync thread is gone".into(),
    }
}

/// The core's sync thread at `durability = full`: takes every group the writer has
/// committed since its last sync, `fdatasync`s the WAL once for all of them (`sync`), and
/// only then answers their jobs and advances `Database::commits`.
///
/// Why this is enough:
/// - With `synchronous=NORMAL` a COMMIT appends the group's frames to the WAL (`write`, no
///   sync) and makes them visible; a sync that starts after that COMMIT returned covers
///   them, through any descriptor of the file. Committed frames are never overwritten in
///   place, except after a WAL restart (below).
/// - WAL frames carry cumulative checksums, so after a power loss recovery keeps a prefix of
///   the groups: a later group never survives without an earlier one, and groups are
///   answered in commit order.
/// - Checkpoints: SQLite's checkpoint syncs the WAL before it copies frames into the
///   database file (at NORMAL too, and the checkpoint thread's connection runs FULL), so no
///   unsynced frame reaches the database file; it records the WAL as fully copied only
///   after syncing the database file.
/// - WAL restart: the writer starts the WAL over only once every frame is copied, which a
///   synced database file backs; the new header is synced before new frames follow.
///   A WAL deleted and created anew (no connection of this process open) gets a descriptor
///   of its own in `sync_file`.
/// - Readers see a group before it is durable. Every reader of this process that hands out
///   what it saw awaits `Store::synced` after its snapshot. A looking CLI command in another
///   process does not: it can show a group up to one `fdatasync` (a few ms) before it is
///   durable. A writing CLI command commits at FULL, which syncs the WAL, earlier groups
///   included.
/// - A failed sync fails every job of its groups (the sender gets a Server fault and resends)
///   and every later group (`Database::sync_failed`): after a failed `fdatasync` Linux may
///   have dropped the dirty pages and a retry can succeed without them, so no later sync
///   can vouch for what was visible. From then on the writer commits nothing (each job is
///   failed before it runs); the groups it committed while the failed sync ran are answered
///   as failed although their rows may survive (a resend is then a replay or UWLR-VOLGORDE,
///   as after a crash between COMMIT and answer). The gateway is not ready until restarted.
fn sync_loop(
    mut sync: impl FnMut() -> std::io::Result<()>,
    receiver: mpsc::Receiver<Committed>,
    commits: Arc<tokio::sync::watch::Sender<u64>>,
    failed: Arc<AtomicBool>,
) {
    while let Ok(first) = receiver.recv() {
        let mut groups = vec![first];
        while let Ok(more) = receiver.try_recv() {
            groups.push(more);
        }
        let synced = if failed.load(Ordering::SeqCst) {
            Err(sync_failed("an earlier sync of the WAL failed"))
        } else if groups.iter().any(|group| group.committed.is_ok()) {
            sync().map_err(|error| {
                tracing::error!(%error, "cannot sync the WAL; its groups and every later one fail until a restart");
                failed.store(true, Ordering::SeqCst);
                sync_failed(&format!("cannot sync the WAL: {error}"))
            })
        } else {
            Ok(())
        };
        finish_groups(groups, synced, &commits);
    }
}

fn sync_failed(message: &str) -> GroupFailure {
    GroupFailure {
        busy: false,
        message: message.into(),
    }
}

/// The WAL file of a database file.
fn wal_path(path: &Path) -> PathBuf {
    path.with_extension("sqlite-wal")
}

/// Copies the WAL back into the database file every 200 ms without blocking the writer
/// (PASSIVE), and asks the writer to finish the job once the WAL holds more than
/// `wal_restart_bytes` of frames.
///
/// Why the writer: SQLite starts the WAL over from its beginning only when a write
/// transaction begins with every frame checkpointed, which a background checkpoint of a
/// busy writer never sees (the writer has always committed more by then). Without that, a
/// drip of 5,000 messages/s grew the WAL by ~130 MB/s, and the TRUNCATE checkpoint that
/// bounded it stopped the writer for up to half a second. The writer's own PASSIVE
/// checkpoint right after a commit copies only the frames since this thread's last one,
/// and its next transaction restarts the WAL (then cut to that size).
/// TRUNCATE, which waits for readers and blocks the writer, is kept for a WAL that grew
/// past `WAL_TRUNCATE_BYTES` (or twice the restart size) all the same (a reader that held a snapshot for long).
fn checkpoint_loop(
    connection: Connection,
    path: PathBuf,
    alive: std::sync::Weak<Inner>,
    restart: Arc<AtomicBool>,
    restart_bytes: u64,
) {
    let wal = wal_path(&path);
    let restart_frames = (restart_bytes / PAGE_BYTES) as i64;
    let truncate_bytes = WAL_TRUNCATE_BYTES.max(2 * restart_bytes);
    while alive.strong_count() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let wal_bytes = std::fs::metadata(&wal)
            .map(|metadata| metadata.len())
            .unwrap_or(0);
        let mode = if wal_bytes > truncate_bytes {
            "TRUNCATE"
        } else {
            "PASSIVE"
        };
        let checkpointed = connection.query_row(
            &format!("PRAGMA wal_checkpoint({mode})"),
            rusqlite::params![],
            |row| row.get::<_, i64>(1),
        );
        match checkpointed {
            Ok(frames) if frames > restart_frames => {
                // SQLite syncs the database file only when a checkpoint reaches the end of the
                // WAL, which under a steady drip only the writer's does: it then flushed every
                // page copied since the last restart (15–35 ms with the writer waiting).
                // Flushing them here first leaves the writer a few pages.
                if let Err(error) = sync_file(&path) {
                    tracing::warn!(%error, "cannot sync the database file before a WAL restart");
                }
                restart.store(true, Ordering::Relaxed)
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "checkpoint failed"),
        }
    }
}

/// Flushes a database or WAL file's written pages to disk through a descriptor that stays
/// open until the process ends. Closing any descriptor of a file drops every POSIX lock this
/// process holds on it, SQLite's included: another process (a CLI command) closing its
/// connection would then take the database for unused, checkpoint it and delete the WAL
/// that this process is still writing to. (Seen: a `File::open` + drop here did exactly that.)
/// A file replaced under the same name (a WAL deleted and created anew while no connection of
/// this process had it open) gets a descriptor of its own; the old one is kept open too.
fn sync_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    type Files = Mutex<std::collections::HashMap<PathBuf, Arc<std::fs::File>>>;
    static FILES: std::sync::OnceLock<Files> = std::sync::OnceLock::new();
    static REPLACED: Mutex<Vec<Arc<std::fs::File>>> = Mutex::new(Vec::new());
    let mut files = FILES
        .get_or_init(Default::default)
        .lock()
        .expect("open database files");
    let inode = std::fs::metadata(path)?.ino();
    let file = match files.entry(path.to_path_buf()) {
        std::collections::hash_map::Entry::Occupied(mut entry) => {
            if entry.get().metadata()?.ino() != inode {
                let replaced = entry.insert(Arc::new(std::fs::File::open(path)?));
                REPLACED.lock().expect("replaced files").push(replaced);
            }
            entry.into_mut()
        }
        std::collections::hash_map::Entry::Vacant(entry) => {
            entry.insert(Arc::new(std::fs::File::open(path)?))
        }
    };
    // Synced after the map's lock is let go: the core's sync thread (which answers every
    // message) must not wait for a checkpointer's flush of a whole database file. The map
    // (or `REPLACED`) keeps the descriptor open, so dropping this handle closes nothing.
    let file = Arc::clone(file);
    drop(files);
    file.sync_data()
}

/// The WAL size after which the writer checkpoints once itself, so the WAL starts over;
/// `wal_restart_mib` in the configuration. 512 MiB restarts every ~5 s under a full drip.
/// Each restart costs the writer a few ms; a larger WAL makes every page lookup of the
/// readers slower (with 1 GiB the drip's p50 went from ~6 to ~9 ms), a smaller one restarts
/// more often (64 MiB: 2–3 times a second). A restarted WAL file is cut back to this size.
pub(crate) const DEFAULT_WAL_RESTART_BYTES: u64 = 512 << 20;
/// SQLite's page size here: WAL frames per byte of WAL.
const PAGE_BYTES: u64 = 4096;
/// A WAL file this large (at least twice the restart size) is truncated even if that
/// blocks the writer.
const WAL_TRUNCATE_BYTES: u64 = 1 << 30;

/// The current time as stored: RFC 3339 UTC with milliseconds.
pub(crate) fn now_text() -> String {
    crate::domain::Clock::System
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Hex SHA-256 of bytes, as stored for content hashes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Helpers for the store's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::db::Db as Connection;
    use super::{migrations, StoreError};

    /// An in-memory database at the newest schema, with an in-memory bridge database attached.
    pub(crate) fn database() -> Result<Connection<'static>, StoreError> {
        let mut connection = rusqlite::Connection::open_in_memory()?;
        connection.execute_batch(&format!(
            "ATTACH DATABASE ':memory:' AS {}",
            super::XAPI_SCHEMA
        ))?;
        migrations::migrate(&mut connection)?;
        Ok(Connection::owned_sqlite(connection))
    }

    /// A scored afname of learner `leerlingid` on toets `T` (`toets_id`), as a sender writes it.
    pub(crate) fn afname_state(
        key: &str,
        leerlingid: &str,
        toets_id: i64,
        score: i64,
    ) -> super::intake::AfnameState {
        super::intake::AfnameState {
            afname_key: key.into(),
            leerlingid: leerlingid.into(),
            eckid: None,
            resultaatverwerkerid: None,
            toets_id,
            toetscode: "T".into(),
            versie: String::new(),
            toetsonderdeelcode: None,
            afnamedatum: "2026-10-01".into(),
            score: Some(score),
            derived: false,
            result: format!("{{\"uitslag\":{{\"score\":{score}}}}}"),
        }
    }

    /// The ids in `xapi_statements`, by afname.
    pub(crate) fn statement_ids(connection: &Connection) -> Result<Vec<String>, StoreError> {
        Ok(connection
            .prepare("SELECT id FROM xapi_statements ORDER BY afname_id")?
            .query_map(rusqlite::params![], |row| row.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// A lost `xapi.sqlite`: no statements, the publisher at the start of the change log.
    pub(crate) fn forget_statements(connection: &Connection) -> Result<(), StoreError> {
        Ok(connection.execute_batch(
            "DELETE FROM xapi_statements; UPDATE xapi_publisher SET cursor_seq = 0;",
        )?)
    }

    /// Marks a client's afnames as stored before ownership (before core migration 6).
    pub(crate) fn mark_legacy_statement_ids(
        connection: &Connection,
        client_id: i64,
    ) -> Result<(), StoreError> {
        connection.execute(
            "UPDATE toetsafnames SET legacy_statement_id = 1 WHERE client_id = ?1",
            [client_id],
        )?;
        Ok(())
    }

    /// A date written YYYY-MM-DD.
    pub(crate) fn date(text: &str) -> chrono::NaiveDate {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a YYYY-MM-DD date")
    }
}

#[cfg(test)]
mod afname_tests;

#[cfg(test)]
mod tests {
    use super::testing::database;
    use super::*;

    /// The variant and the Display (what the CLI prints) of a failed store call.
    fn check(result: Result<(), StoreError>, variant: &str, display: &str) {
        let error = result.expect_err("a store error");
        let name = format!("{error:?}");
        assert!(name.starts_with(variant), "{name} is not {variant}");
        assert_eq!(error.to_string(), display);
    }

    /// One committed group of one job, whose answer arrives on the returned channel.
    fn committed_group(group: u64) -> (Committed, mpsc::Receiver<Result<(), GroupFailure>>) {
        let (answer, answered) = mpsc::channel();
        let completion: Completion = Box::new(move |outcome| {
            let _ = answer.send(outcome);
        });
        let committed = Committed {
            group,
            committed: Ok(()),
            completions: vec![completion],
        };
        (committed, answered)
    }

    /// Pipelined commits: a job is answered, and `commits` names its group, only after the
    /// sync that covers it has returned.
    #[test]
    fn a_group_is_answered_only_after_its_sync() {
        let (gate, gated) = mpsc::channel::<()>();
        let (groups, received) = mpsc::channel();
        let commits = Arc::new(tokio::sync::watch::channel(0).0);
        let failed = Arc::new(AtomicBool::new(false));
        let follower = commits.subscribe();
        let (for_thread, failed_for_thread) = (commits.clone(), failed.clone());
        let syncer = std::thread::spawn(move || {
            sync_loop(
                || gated.recv().map_err(std::io::Error::other),
                received,
                for_thread,
                failed_for_thread,
            )
        });
        let (group, answered) = committed_group(1);
        groups.send(group).unwrap();
        let wait = std::time::Duration::from_millis(200);
        assert!(
            answered.recv_timeout(wait).is_err(),
            "answered before the sync"
        );
        assert_eq!(*follower.borrow(), 0);
        gate.send(()).unwrap();
        assert!(answered.recv_timeout(wait * 10).unwrap().is_ok());
        assert_eq!(*follower.borrow(), 1);
        drop(groups);
        syncer.join().unwrap();
    }

    /// A failed sync fails the jobs of its groups, and of every later group even when a
    /// later sync would succeed: Linux reports a lost page once.
    #[test]
    fn a_failed_sync_fails_its_jobs_and_every_later_group() {
        let (groups, received) = mpsc::channel();
        let commits = Arc::new(tokio::sync::watch::channel(0).0);
        let failed = Arc::new(AtomicBool::new(false));
        let (for_thread, failed_for_thread) = (commits.clone(), failed.clone());
        let syncer = std::thread::spawn(move || {
            let mut first = true;
            sync_loop(
                move || {
                    let result = if first {
                        Err(std::io::Error::other("EIO"))
                    } else {
                        Ok(())
                    };
                    first = false;
                    result
                },
                received,
                for_thread,
                failed_for_thread,
            )
        });
        let wait = std::time::Duration::from_secs(2);
        let (group, answered) = committed_group(1);
        groups.send(group).unwrap();
        let failure = answered
            .recv_timeout(wait)
            .unwrap()
            .expect_err("a failed job");
        assert!(failure.message.contains("EIO"), "{}", failure.message);
        assert!(failed.load(Ordering::SeqCst));
        let (group, answered) = committed_group(2);
        groups.send(group).unwrap();
        assert!(answered.recv_timeout(wait).unwrap().is_err());
        assert_eq!(*commits.borrow(), 2);
        drop(groups);
        syncer.join().unwrap();
    }

    /// Through the real writer and sync thread at `full`: a write is answered once durable,
    /// `synced` resolves; after a failed sync writes fail and `synced` errs.
    #[tokio::test]
    async fn after_a_failed_sync_the_store_refuses_writes_and_synced_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open_serving(&dir.path().join("data"), Durability::Full, 64 << 20).unwrap();
        let write = || {
            store.write(|connection| {
                connection
                    .execute_batch("SAVEPOINT job; CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1); RELEASE job")
                    .map_err(StoreError::from)
            })
        };
        write().await.unwrap().unwrap();
        store.synced().await.unwrap();
        store.inner().core.sync_failed.store(true, Ordering::SeqCst);
        assert!(write().await.is_err());
        assert!(store.synced().await.is_err());
        // The refused write committed nothing: a job told it failed leaves no row behind.
        let rows: i64 = store
            .read(|connection| {
                Ok(
                    connection.query_row("SELECT count(*) FROM t", rusqlite::params![], |row| {
                        row.get(0)
                    })?,
                )
            })
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn store_errors_say_what_happened() -> Result<(), StoreError> {
        let connection = database()?;
        admin::add_client(&connection, "EA", "Uitgever", "sleutel-123")?;
        let school = crate::domain::SchoolCode::parse("99XX01").expect("a school code");
        check(
            admin::add_client(&connection, "EA", "Uitgever", "sleutel-123"),
            "AlreadyExists",
            "client EA already exists",
        );
        check(
            admin::revoke_client(&connection, "ONBEKEND"),
            "NotFound",
            "no active client ONBEKEND",
        );
        check(
            admin::activate(
                &connection,
                "EA",
                &school,
                "DPA-1",
                "2026-01-01",
                Some("31-12-2026"),
            ),
            "InvalidInput",
            "valid_until: 31-12-2026 is not a date (YYYY-MM-DD)",
        );
        check(
            readers::revoke_reader(&connection, "lezer"),
            "NotFound",
            "no active reader lezer",
        );
        Ok(())
    }

    #[test]
    fn sqlite_failures_are_sorted_into_busy_and_corrupt() -> Result<(), StoreError> {
        let connection = database()?;
        let unreadable: Result<i64, StoreError> = connection
            .query_row("SELECT 'geen getal'", rusqlite::params![], |row| row.get(0))
            .map_err(StoreError::from);
        assert!(matches!(unreadable, Err(StoreError::Corrupt { .. })));

        let folder = tempfile::tempdir().expect("a temporary folder");
        let path = folder.path().join("busy.sqlite");
        let holder = Connection::open(&path)?;
        holder.execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")?;
        let other = Connection::open(&path)?;
        other.busy_timeout(std::time::Duration::ZERO)?;
        let busy = other
            .execute("INSERT INTO t VALUES (2)", rusqlite::params![])
            .map_err(StoreError::from)
            .expect_err("the file is locked");
        assert!(matches!(busy, StoreError::Busy { .. }), "{busy:?}");
        assert!(busy.is_busy());
        let wrapped = other
            .execute("INSERT INTO t VALUES (3)", rusqlite::params![])
            .map_err(StoreError::Sqlite)
            .expect_err("the file is locked");
        assert!(
            wrapped.is_busy(),
            "a busy error wrapped without From is busy too"
        );
        assert!(!StoreError::WriterGone.is_busy());
        Ok(())
    }
}
