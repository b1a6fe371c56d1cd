//! SQLite storage behind one boundary: a single writer thread with group commit, and pooled readers.
//!
//! Every write runs on the writer thread. Jobs that queue up together share one
//! transaction (group commit), each inside its own savepoint so that it is still
//! atomic on its own; callers are answered only after the shared COMMIT.

pub mod admin;
pub mod feed;
pub mod intake;
pub mod migrations;
pub mod outbox;
pub mod readers;
pub mod statements;

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

/// Why a store operation failed; always our side (Server.InterneFout), never the sender's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the writer thread is gone")]
    WriterGone,
    /// `backup` could not write, sync or rename its copy.
    #[error("cannot write the backup {path}: {source}")]
    Backup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("{0}")]
    Invalid(String),
}

/// How durable a commit is before the sender is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL`: survives power loss.
    Full,
    /// `synchronous=NORMAL`: survives a crash of the gateway, not of the machine.
    Normal,
}

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut Connection) -> Completion + Send>;

/// The most jobs one group commit takes.
const GROUP_LIMIT: usize = 512;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    durability: Durability,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    readers: Mutex<Vec<Connection>>,
    /// Counts group commits, so that the outbox worker wakes when new statements may be there.
    commits: Arc<tokio::sync::watch::Sender<u64>>,
}

/// Opens a connection with the pragmas every connection needs.
pub fn open_connection(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
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

/// Copies the database at `source` into `destination` with SQLite's online backup API,
/// while a gateway may be writing to it.
///
/// The copy is made in a single backup step, that is inside one read transaction:
/// in WAL mode that never blocks the writer, and it sees one committed state, whereas
/// a step-by-step backup restarts whenever another connection commits and might never
/// finish under load. It is written to `destination` plus `.partial`, checked with
/// `PRAGMA quick_check`, synced and then renamed, so `destination` is whole or absent.
pub fn backup(source: &Connection, destination: &Path) -> Result<(), StoreError> {
    let mut partial = destination.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    {
        let mut copy = Connection::open(&partial)?;
        {
            let backup = rusqlite::backup::Backup::new(source, &mut copy)?;
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
                        return Err(StoreError::Invalid(
                            "the database stayed locked for 30 s".into(),
                        ))
                    }
                }
            }
        }
        // The copy holds everything in its main file: no WAL beside it to lose.
        copy.pragma_update(None, "journal_mode", "DELETE")?;
        let verdict: String = copy.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
        if verdict != "ok" {
            let _ = std::fs::remove_file(&partial);
            return Err(StoreError::Invalid(format!(
                "the backup copy failed its check: {verdict}"
            )));
        }
    }
    let sync = |path: &Path| std::fs::File::open(path).and_then(|file| file.sync_all());
    let io = |source: std::io::Error| StoreError::Backup {
        path: destination.to_path_buf(),
        source,
    };
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

impl Store {
    /// Opens (creating and migrating) the database `gateway.sqlite` in `data_dir`.
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join("gateway.sqlite");
        let mut connection = open_connection(&path, durability)?;
        migrations::migrate(&mut connection)?;
        drop(connection);
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                durability,
                writer: Mutex::new(None),
                readers: Mutex::new(Vec::new()),
                commits: Arc::new(tokio::sync::watch::channel(0).0),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A plain connection for one-off work (CLI commands, tests).
    pub fn connect(&self) -> Result<Connection, StoreError> {
        open_connection(&self.inner.path, self.inner.durability)
    }

    /// Runs `job` on a pooled read connection.
    pub fn read<R>(
        &self,
        job: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let pooled = self.inner.readers.lock().expect("reader pool").pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => self.connect()?,
        };
        let result = job(&connection);
        let mut readers = self.inner.readers.lock().expect("reader pool");
        if readers.len() < 16 {
            readers.push(connection);
        }
        result
    }

    fn writer(&self) -> Result<mpsc::Sender<Job>, StoreError> {
        let mut slot = self.inner.writer.lock().expect("writer slot");
        if let Some(sender) = slot.as_ref() {
            return Ok(sender.clone());
        }
        let connection = self.connect()?;
        // The writer never checkpoints in the commit path; a background thread does.
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        connection.pragma_update(None, "cache_size", -32768)?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let commits = self.inner.commits.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(connection, receiver, commits))
            .map_err(|error| StoreError::Commit(error.to_string()))?;
        let checkpointer = self.connect()?;
        let alive = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, alive))
            .map_err(|error| StoreError::Commit(error.to_string()))?;
        *slot = Some(sender.clone());
        Ok(sender)
    }

    /// Runs `job` on the writer thread inside the current group transaction and
    /// resolves once that transaction has committed. The job must keep its own
    /// changes atomic (a savepoint) and must not commit.
    pub async fn write<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (sender, receiver) = oneshot::channel::<Result<R, String>>();
        let boxed: Job = Box::new(move |connection: &mut Connection| {
            let result = job(connection);
            Box::new(move |committed: Result<(), String>| {
                let _ = sender.send(committed.map(|()| result));
            })
        });
        self.writer()?
            .send(boxed)
            .map_err(|_| StoreError::WriterGone)?;
        match receiver.await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => Err(StoreError::Commit(error)),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    /// A receiver that changes after every group commit of this process's writer thread.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }

    /// Stops the writer thread once queued jobs are done.
    pub fn close(&self) {
        self.inner.writer.lock().expect("writer slot").take();
    }
}

fn writer_loop(
    mut connection: Connection,
    receiver: mpsc::Receiver<Job>,
    commits: Arc<tokio::sync::watch::Sender<u64>>,
) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_LIMIT {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let began = connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|error| error.to_string());
        let mut completions: Vec<Completion> = Vec::with_capacity(jobs.len());
        if let Err(error) = began {
            tracing::error!(%error, "cannot begin a write transaction");
            drop(jobs);
            continue;
        }
        for job in jobs {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut connection)));
            match outcome {
                Ok(completion) => completions.push(completion),
                Err(_) => tracing::error!("a store job panicked; its savepoint was rolled back"),
            }
        }
        let committed = connection
            .execute_batch("COMMIT")
            .map_err(|error| error.to_string());
        if let Err(error) = &committed {
            tracing::error!(%error, "group commit failed");
            let _ = connection.execute_batch("ROLLBACK");
        }
        if committed.is_ok() {
            commits.send_modify(|count| *count = count.wrapping_add(1));
        }
        for completion in completions {
            completion(committed.clone());
        }
    }
}

/// Copies the WAL back into the database file every 200 ms without blocking the
/// writer (PASSIVE); when the WAL has grown past 64 MiB it waits for readers and
/// truncates it, so the file stays bounded under constant load.
fn checkpoint_loop(connection: Connection, alive: std::sync::Weak<Inner>) {
    while alive.strong_count() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let wal_bytes = alive
            .upgrade()
            .and_then(|inner| std::fs::metadata(inner.path.with_extension("sqlite-wal")).ok())
            .map(|metadata| metadata.len())
            .unwrap_or(0);
        let mode = if wal_bytes > 64 << 20 {
            "TRUNCATE"
        } else {
            "PASSIVE"
        };
        if let Err(error) =
            connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
        {
            tracing::warn!(%error, "checkpoint failed");
        }
    }
}

/// The current time as stored: RFC 3339 UTC with milliseconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Hex SHA-256 of bytes, as stored for content hashes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Helpers for the store's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{migrations, StoreError};
    use rusqlite::Connection;

    /// An in-memory database at the newest schema.
    pub fn database() -> Result<Connection, StoreError> {
        let mut connection = Connection::open_in_memory()?;
        migrations::migrate(&mut connection)?;
        Ok(connection)
    }

    /// A date written YYYY-MM-DD.
    pub fn date(text: &str) -> chrono::NaiveDate {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a YYYY-MM-DD date")
    }
}
