//! The connection a store function runs on, on either engine, with rusqlite's calling conventions.
//!
//! Store functions take a `&Db` and call `execute`, `query_row`, `prepare_cached` …
//! with `rusqlite::params!` and row closures that `get` columns as rusqlite types, so one
//! function body serves SQLite and PostgreSQL. On SQLite every call passes straight to
//! rusqlite. On PostgreSQL (`postgres::session`) the SQL's `?N` placeholders become `$N`,
//! parameters and columns convert leniently between the two type systems, and PostgreSQL's
//! errors come back in SQLite's vocabulary (a serialization failure is `SQLITE_BUSY`), so
//! callers sort them as they always have. Where the dialects differ a function picks its
//! SQL with `Db::pick`; nothing here hides a statement.

use super::postgres::session::{self as pg, Session};
use super::StoreError;
use rusqlite::types::{FromSql, ToSql, ValueRef};
use std::sync::OnceLock;

/// A connection (or a PostgreSQL session), lent to a store function for one job or owned
/// by a CLI `Session`.
pub struct Db<'c> {
    engine: Engine<'c>,
}

enum Engine<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres(&'c Session),
    OwnedSqlite(rusqlite::Connection),
    OwnedPostgres(Session),
}

/// What a `Db` runs on, borrowed.
#[derive(Clone, Copy)]
enum Target<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(&'a Session),
}

/// Which engine a `Db` runs on, for the few statements written per dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The parameters of one statement: `rusqlite::params![…]`, an array or a `Vec` of values.
pub trait SqlParams {
    /// Calls `f` with the parameters as trait objects (without allocating for arrays).
    fn with<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R;
}

impl<T: ToSql, const N: usize> SqlParams for [T; N] {
    fn with<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        let refs = self.each_ref().map(|value| value as &dyn ToSql);
        f(&refs)
    }
}

impl<T: ToSql, const N: usize> SqlParams for &[T; N] {
    fn with<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        (*self).with(f)
    }
}

impl<T: ToSql> SqlParams for &[T] {
    fn with<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        let refs: Vec<&dyn ToSql> = self.iter().map(|value| value as &dyn ToSql).collect();
        f(&refs)
    }
}

impl<T: ToSql> SqlParams for Vec<T> {
    fn with<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        self.as_slice().with(f)
    }
}

impl<T: ToSql> SqlParams for &Vec<T> {
    fn with<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        self.as_slice().with(f)
    }
}

impl<'c> Db<'c> {
    pub(crate) fn sqlite(connection: &'c rusqlite::Connection) -> Db<'c> {
        Db {
            engine: Engine::Sqlite(connection),
        }
    }

    pub(crate) fn postgres(session: &'c Session) -> Db<'c> {
        Db {
            engine: Engine::Postgres(session),
        }
    }

    /// A connection of the caller's own (the integration tests open a gateway's files).
    pub fn owned_sqlite(connection: rusqlite::Connection) -> Db<'static> {
        Db {
            engine: Engine::OwnedSqlite(connection),
        }
    }

    pub(crate) fn owned_postgres(session: Session) -> Db<'static> {
        Db {
            engine: Engine::OwnedPostgres(session),
        }
    }

    fn target(&self) -> Target<'_> {
        match &self.engine {
            Engine::Sqlite(connection) => Target::Sqlite(connection),
            Engine::Postgres(session) => Target::Postgres(session),
            Engine::OwnedSqlite(connection) => Target::Sqlite(connection),
            Engine::OwnedPostgres(session) => Target::Postgres(session),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.target() {
            Target::Sqlite(_) => Dialect::Sqlite,
            Target::Postgres(_) => Dialect::Postgres,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.dialect() == Dialect::Postgres
    }

    /// The SQL of this engine, where the two dialects need different text.
    pub fn pick<'s>(&self, sqlite: &'s str, postgres: &'s str) -> &'s str {
        match self.dialect() {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }

    /// The SQLite connection underneath, for the engine-specific corners (pragmas, backup,
    /// the reader's WAL snapshot); `None` on PostgreSQL.
    pub(crate) fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match self.target() {
            Target::Sqlite(connection) => Some(connection),
            Target::Postgres(_) => None,
        }
    }

    /// The PostgreSQL session underneath; `None` on SQLite.
    pub(crate) fn as_postgres(&self) -> Option<&Session> {
        match self.target() {
            Target::Sqlite(_) => None,
            Target::Postgres(session) => Some(session),
        }
    }

    pub fn execute(&self, sql: &str, params: impl SqlParams) -> rusqlite::Result<usize> {
        match self.target() {
            Target::Sqlite(connection) => params.with(|values| connection.execute(sql, values)),
            Target::Postgres(session) => params.with(|values| session.execute(sql, values)),
        }
    }

    /// Runs several statements without parameters (one round trip on PostgreSQL).
    pub fn execute_batch(&self, sql: &str) -> rusqlite::Result<()> {
        match self.target() {
            Target::Sqlite(connection) => connection.execute_batch(sql),
            Target::Postgres(session) => session.batch(sql),
        }
    }

    /// The first row through `f`; `QueryReturnedNoRows` without one (`.optional()` works).
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl SqlParams,
        f: impl FnOnce(&Row<'_, '_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// A statement kept prepared on this connection (PostgreSQL: per session).
    pub fn prepare_cached(&self, sql: &str) -> rusqlite::Result<Statement<'_>> {
        Ok(Statement {
            inner: match self.target() {
                Target::Sqlite(connection) => {
                    StatementInner::Sqlite(connection.prepare_cached(sql)?)
                }
                Target::Postgres(session) => StatementInner::Postgres {
                    session,
                    statement: session.prepare(sql)?,
                },
            },
        })
    }

    /// `prepare_cached`, for statements built at run time (kept in the same caches).
    pub fn prepare(&self, sql: &str) -> rusqlite::Result<Statement<'_>> {
        self.prepare_cached(sql)
    }
}

/// A session of the caller's own on the PostgreSQL database at `url` (the integration
/// tests read and age a gateway's rows through it), its socket driven by a runtime of the
/// process's own.
pub fn connect_postgres(url: &str) -> Result<Db<'static>, StoreError> {
    let config = super::postgres::parse_url(url)?;
    Ok(Db::owned_postgres(Session::connect(
        &config,
        outside_runtime()?,
    )?))
}

/// The runtime that drives the sockets of sessions opened outside a `Store` (which has
/// an engine runtime of its own): one worker, started at the first such session and kept
/// for the life of the process.
fn outside_runtime() -> Result<&'static tokio::runtime::Handle, StoreError> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime.handle());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("postgres-outside-io")
        .enable_all()
        .build()
        .map_err(|error| {
            StoreError::Commit(format!("cannot start the PostgreSQL runtime: {error}"))
        })?;
    // A runtime built by a racing caller is dropped here, outside any runtime: harmless.
    Ok(RUNTIME.get_or_init(|| runtime).handle())
}

/// A prepared statement of either engine.
pub struct Statement<'c> {
    inner: StatementInner<'c>,
}

enum StatementInner<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Postgres {
        session: &'c Session,
        statement: tokio_postgres::Statement,
    },
}

impl Statement<'_> {
    /// How many columns a row of this statement has.
    pub fn column_count(&self) -> usize {
        match &self.inner {
            StatementInner::Sqlite(statement) => statement.column_count(),
            StatementInner::Postgres { statement, .. } => statement.columns().len(),
        }
    }

    pub fn execute(&mut self, params: impl SqlParams) -> rusqlite::Result<usize> {
        match &mut self.inner {
            StatementInner::Sqlite(statement) => params.with(|values| statement.execute(values)),
            StatementInner::Postgres { session, statement } => {
                params.with(|values| session.execute_prepared(statement, values))
            }
        }
    }

    pub fn query_row<T>(
        &mut self,
        params: impl SqlParams,
        f: impl FnOnce(&Row<'_, '_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        match &mut self.inner {
            StatementInner::Sqlite(statement) => {
                params.with(|values| statement.query_row(values, |row| f(&Row::Sqlite(row))))
            }
            StatementInner::Postgres { session, statement } => {
                let row = params.with(|values| session.query_first(statement, values))?;
                match row {
                    Some(row) => f(&Row::Postgres(&row)),
                    None => Err(rusqlite::Error::QueryReturnedNoRows),
                }
            }
        }
    }

    /// Each row through `f`, as rows arrive (neither engine holds the whole result).
    pub fn query_map<'s, T: 's>(
        &'s mut self,
        params: impl SqlParams,
        mut f: impl FnMut(&Row<'_, '_>) -> rusqlite::Result<T> + 's,
    ) -> rusqlite::Result<Box<dyn Iterator<Item = rusqlite::Result<T>> + 's>> {
        match &mut self.inner {
            StatementInner::Sqlite(statement) => {
                let rows = params
                    .with(|values| statement.query_map(values, move |row| f(&Row::Sqlite(row))))?;
                Ok(Box::new(rows))
            }
            StatementInner::Postgres { session, statement } => {
                let rows = params.with(|values| session.query_stream(statement, values))?;
                Ok(Box::new(rows.map(move |row| match row {
                    Ok(row) => f(&Row::Postgres(&row)),
                    Err(error) => Err(error),
                })))
            }
        }
    }
}

/// One result row of either engine.
pub enum Row<'r, 's> {
    Sqlite(&'r rusqlite::Row<'s>),
    Postgres(&'r tokio_postgres::Row),
}

impl Row<'_, '_> {
    /// Column `index` as `T`, converted as rusqlite converts a SQLite value.
    pub fn get<I: ColumnIndex, T: FromSql>(&self, index: I) -> rusqlite::Result<T> {
        let index = index.index();
        match self {
            Row::Sqlite(row) => row.get(index),
            Row::Postgres(row) => {
                let value = pg::column(row, index)?;
                T::column_result(value).map_err(|error| from_sql_error(index, value, error))
            }
        }
    }
}

/// A column position (what rusqlite's `RowIndex` is for `usize`).
pub trait ColumnIndex {
    fn index(self) -> usize;
}

impl ColumnIndex for usize {
    fn index(self) -> usize {
        self
    }
}

/// rusqlite's error for a column that does not convert (what `rusqlite::Row::get` gives).
fn from_sql_error(
    index: usize,
    value: ValueRef<'_>,
    error: rusqlite::types::FromSqlError,
) -> rusqlite::Error {
    use rusqlite::types::FromSqlError as E;
    match error {
        E::InvalidType => {
            rusqlite::Error::InvalidColumnType(index, index.to_string(), value.data_type())
        }
        E::OutOfRange(value) => rusqlite::Error::IntegralValueOutOfRange(index, value),
        E::Other(error) => {
            rusqlite::Error::FromSqlConversionFailure(index, value.data_type(), error)
        }
        other => {
            rusqlite::Error::FromSqlConversionFailure(index, value.data_type(), Box::new(other))
        }
    }
}
