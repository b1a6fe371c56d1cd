//! The PostgreSQL engine behind `Store`: a pool of writer threads (one message per transaction, ordered by row locks) and a pool of read sessions, all driven by one small runtime.
//!
//! Where SQLite has one writer with group commit, PostgreSQL takes many writers at once:
//! each write job runs in a transaction of its own on one of `database_pool_size` writer
//! threads, and what SQLite's single writer ordered by itself (an aanmaakdatum per
//! client and school, a school's feed numbers, the statement numbers) is ordered by row
//! locks held to COMMIT (`store::intake`, `store::feed`, ARCHITECTURE.md "PostgreSQL").
//! A commit is durable when COMMIT returns (`synchronous_commit = on`), so `synced` has
//! nothing to wait for.

use super::session::Session;
use crate::store::db::Db;
use crate::store::StoreError;
use std::sync::{mpsc, Arc, Mutex};

/// A write job: runs on a writer thread with its session, or learns why there is none.
type Job = Box<dyn FnOnce(Result<&Session, StoreError>) + Send>;

/// A connected engine; dropping it ends its threads and connections.
pub(crate) struct Engine {
    config: tokio_postgres::Config,
    shown: String,
    runtime: Option<tokio::runtime::Runtime>,
    readers: Mutex<Vec<Session>>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    pool_size: usize,
    commits: Arc<tokio::sync::watch::Sender<u64>>,
    /// The session that holds the background lease (`hold_lease`), while this instance has it.
    lease: Mutex<Option<Session>>,
}

/// The advisory lock key of the background lease ("uwlr" in ASCII).
const LEASE_KEY: i64 = 0x7577_6c72;

impl Engine {
    /// Starts the runtime and `pool_size` writer threads; connects lazily, so a server
    /// that is down is reported by the first job (and `open` checks with one session).
    pub(crate) fn start(
        config: tokio_postgres::Config,
        shown: String,
        pool_size: usize,
    ) -> Result<Engine, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("postgres-io")
            .enable_all()
            .build()
            .map_err(|error| {
                StoreError::Commit(format!("cannot start the PostgreSQL runtime: {error}"))
            })?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..pool_size.max(1) {
            let receiver = receiver.clone();
            let config = config.clone();
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name(format!("pg-writer-{index}"))
                .spawn(move || writer_loop(&config, &handle, &receiver))
                .map_err(|error| StoreError::Commit(error.to_string()))?;
        }
        Ok(Engine {
            config,
            shown,
            runtime: Some(runtime),
            readers: Mutex::new(Vec::new()),
            jobs: Mutex::new(Some(sender)),
            pool_size: pool_size.max(1),
            commits: Arc::new(tokio::sync::watch::channel(0).0),
            lease: Mutex::new(None),
        })
    }

    /// "PostgreSQL database postgres://user:***@host/db", for output.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// A new session of its own (CLI commands, startup work).
    pub(crate) fn session(&self) -> Result<Session, StoreError> {
        Session::connect(&self.config, self.handle()?)
    }

    /// Runs `future` (migrations, which speak tokio-postgres directly) on the engine's
    /// runtime and waits for it, from any thread.
    pub(crate) fn run<R: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let task = self.handle()?.spawn(future);
        futures_executor::block_on(task).map_err(|_| StoreError::WriterGone)
    }

    fn handle(&self) -> Result<&tokio::runtime::Handle, StoreError> {
        match &self.runtime {
            Some(runtime) => Ok(runtime.handle()),
            None => Err(StoreError::WriterGone),
        }
    }

    /// Runs `job` on a pooled session in autocommit (each statement its own snapshot, as
    /// SQLite's pooled readers run), or in one snapshot when the job asks (`in_snapshot`).
    pub(crate) fn read<R>(
        &self,
        job: impl FnOnce(&Db) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let pooled = self.readers.lock().expect("reader pool").pop();
        let session = match pooled {
            Some(session) if !session.is_closed() => session,
            _ => self.session()?,
        };
        let result = job(&Db::postgres(&session));
        if session.in_transaction() {
            session.rollback();
        }
        let mut readers = self.readers.lock().expect("reader pool");
        if readers.len() < self.pool_size && !session.is_closed() {
            readers.push(session);
        }
        result
    }

    /// Runs `job` in a transaction of its own on a writer thread; resolves once it has
    /// committed (its result) or rolled back (the error).
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Db) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (sender, receiver) = tokio::sync::oneshot::channel::<Result<R, StoreError>>();
        let commits = self.commits.clone();
        let boxed: Job = Box::new(move |session: Result<&Session, StoreError>| {
            let started = std::time::Instant::now();
            let outcome = session.and_then(|session| run_in_transaction(session, job));
            if outcome.is_ok() {
                // One job per commit: the histogram SQLite's group commits feed.
                crate::metrics::metrics().group_commit("core", 1, started.elapsed());
                commits.send_modify(|count| *count += 1);
            }
            let _ = sender.send(outcome);
        });
        let jobs = self.jobs.lock().expect("writer queue").clone();
        jobs.ok_or(StoreError::WriterGone)?
            .send(boxed)
            .map_err(|_| StoreError::WriterGone)?;
        receiver.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Changes after every commit of this process's writers (other instances' commits
    /// are found by polling, see the publisher).
    pub(crate) fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Whether this instance holds the background lease (the publisher, delivery to the
    /// LRSs and the purge run on one instance at a time): a session-level advisory lock on
    /// a session of its own, taken when free and kept while that session lives. When the
    /// holder dies its connection closes, the server drops the lock, and the next instance
    /// that asks gets it. Blocks on the server: call it off the async threads.
    pub(crate) fn hold_lease(&self) -> Result<bool, StoreError> {
        let mut slot = self.lease.lock().expect("lease slot");
        if let Some(session) = slot.as_ref() {
            if !session.is_closed() && session.batch("SELECT 1").is_ok() {
                return Ok(true);
            }
            tracing::warn!("the session holding the background lease broke: the lease is lost");
            *slot = None;
        }
        let session = self.session()?;
        let held: bool = Db::postgres(&session).query_row(
            "SELECT pg_try_advisory_lock(?1)",
            [LEASE_KEY],
            |row| row.get(0),
        )?;
        if held {
            *slot = Some(session);
        }
        Ok(held)
    }

    /// Gives the background lease up (a clean stop), so another instance takes over at once.
    pub(crate) fn release_lease(&self) {
        self.lease.lock().expect("lease slot").take();
    }

    /// Stops taking write jobs; queued ones still run.
    pub(crate) fn close(&self) {
        self.jobs.lock().expect("writer queue").take();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.close();
        self.readers.lock().expect("reader pool").clear();
        // Dropping a runtime blocks, which an async caller may not do: let it go in the
        // background (its sockets close as their clients are gone).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// BEGIN, the job, COMMIT; a job that panics is rolled back and the panic goes on to the caller.
fn run_in_transaction<R>(session: &Session, job: impl FnOnce(&Db) -> R) -> Result<R, StoreError> {
    session.begin()?;
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&Db::postgres(session))));
    match outcome {
        Ok(result) => {
            session.commit()?;
            Ok(result)
        }
        Err(panic) => {
            session.rollback();
            std::panic::resume_unwind(panic)
        }
    }
}

/// One writer thread: takes jobs while the engine lives, reconnecting when its session broke.
fn writer_loop(
    config: &tokio_postgres::Config,
    handle: &tokio::runtime::Handle,
    receiver: &Mutex<mpsc::Receiver<Job>>,
) {
    // Connected at once, so the first messages after a start pay no connection setup
    // (a server that is down is retried at the first job).
    let mut session: Option<Session> = Session::connect(config, handle).ok();
    loop {
        let job = match receiver.lock().expect("writer queue").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if session.as_ref().is_none_or(Session::is_closed) {
            session = match Session::connect(config, handle) {
                Ok(connected) => Some(connected),
                Err(error) => {
                    job(Err(error));
                    continue;
                }
            };
        }
        let current = session.as_ref().expect("connected above");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(current))));
        if outcome.is_err() {
            tracing::error!("a store job panicked; its transaction was rolled back");
            session = None;
        }
    }
}
