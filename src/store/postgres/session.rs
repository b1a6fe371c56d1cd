//! One PostgreSQL connection as the store functions use it through `Db`: SQL in SQLite's placeholder style, values and errors converted between the two engines' vocabularies.
//!
//! The socket is driven by a task on the engine's runtime; the calls here block the
//! calling thread on the client's futures (which need no runtime of their own), so a
//! store function runs the same on a writer thread, a blocking task or the CLI.

use crate::store::StoreError;
use futures_executor::block_on;
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

/// A connected client, its prepared statements (keyed by the SQLite-style text) and
/// whether a statement failed since the last savepoint rollback (PostgreSQL then refuses
/// everything until the transaction ends, and a COMMIT would quietly roll back).
pub(crate) struct Session {
    client: tokio_postgres::Client,
    statements: RefCell<HashMap<String, tokio_postgres::Statement>>,
    failed: Cell<bool>,
    in_transaction: Cell<bool>,
}

impl Session {
    /// Connects, with the socket driven on `runtime`.
    pub(crate) fn connect(
        config: &tokio_postgres::Config,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Session, StoreError> {
        let config = config.clone();
        let connecting = runtime.spawn(async move {
            let (client, _driver) = super::tls::connect(&config).await?;
            Ok::<_, StoreError>(client)
        });
        let client = match block_on(connecting) {
            Ok(connected) => connected?,
            // The runtime is shutting down (or the task panicked): no connection.
            Err(_) => return Err(StoreError::WriterGone),
        };
        Ok(Session {
            client,
            statements: RefCell::new(HashMap::new()),
            failed: Cell::new(false),
            in_transaction: Cell::new(false),
        })
    }

    /// Whether the connection is gone (the server restarted, the network broke).
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The prepared statement for `sql` (written with `?N` placeholders).
    pub(crate) fn prepare(&self, sql: &str) -> rusqlite::Result<tokio_postgres::Statement> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.watch(block_on(self.client.prepare(&translate(sql))))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(crate) fn execute(
        &self,
        sql: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> rusqlite::Result<usize> {
        let statement = self.prepare(sql)?;
        self.execute_prepared(&statement, values)
    }

    pub(crate) fn execute_prepared(
        &self,
        statement: &tokio_postgres::Statement,
        values: &[&dyn rusqlite::ToSql],
    ) -> rusqlite::Result<usize> {
        let params = parameters(values)?;
        let count = self.watch(block_on(
            self.client
                .execute_raw(statement, params.iter().map(|p| p as &dyn ToSql)),
        ))?;
        Ok(count as usize)
    }

    /// The first row, if any (the rest are read and dropped, as SQLite's `query_row` does).
    pub(crate) fn query_first(
        &self,
        statement: &tokio_postgres::Statement,
        values: &[&dyn rusqlite::ToSql],
    ) -> rusqlite::Result<Option<tokio_postgres::Row>> {
        let mut rows = self.query_stream(statement, values)?;
        let first = rows.next().transpose()?;
        for rest in rows {
            rest?;
        }
        Ok(first)
    }

    /// The rows as they arrive.
    pub(crate) fn query_stream(
        &self,
        statement: &tokio_postgres::Statement,
        values: &[&dyn rusqlite::ToSql],
    ) -> rusqlite::Result<impl Iterator<Item = rusqlite::Result<tokio_postgres::Row>> + '_> {
        let params = parameters(values)?;
        let stream = self.watch(block_on(
            self.client
                .query_raw(statement, params.iter().map(|p| p as &dyn ToSql)),
        ))?;
        // Fused: a row stream polled again after its end reports a closed connection.
        Ok(futures_executor::block_on_stream(Box::pin(stream))
            .fuse()
            .map(|row| self.watch(row)))
    }

    /// Statements without parameters, in one round trip.
    pub(crate) fn batch(&self, sql: &str) -> rusqlite::Result<()> {
        self.watch(block_on(self.client.batch_execute(sql)))
    }

    /// Starts a transaction (READ COMMITTED: row locks order the writers).
    pub(crate) fn begin(&self) -> rusqlite::Result<()> {
        self.batch("BEGIN")?;
        self.in_transaction.set(true);
        self.failed.set(false);
        Ok(())
    }

    /// Starts a read-only transaction on one snapshot.
    pub(crate) fn begin_snapshot(&self) -> rusqlite::Result<()> {
        self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        self.in_transaction.set(true);
        self.failed.set(false);
        Ok(())
    }

    /// Commits, or rolls back and fails when a statement failed that no savepoint took back.
    pub(crate) fn commit(&self) -> rusqlite::Result<()> {
        if self.failed.get() {
            self.rollback();
            return Err(rusqlite::Error::ToSqlConversionFailure(
                "a statement failed inside the transaction: it was rolled back".into(),
            ));
        }
        let committed = self.batch("COMMIT");
        self.in_transaction.set(false);
        committed
    }

    /// Rolls back (an error here leaves nothing to undo: the server ends the transaction).
    pub(crate) fn rollback(&self) {
        let _ = block_on(self.client.batch_execute("ROLLBACK"));
        self.in_transaction.set(false);
        self.failed.set(false);
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.in_transaction.get()
    }

    /// Whether a statement failed since the transaction (or the savepoint) began.
    pub(crate) fn failed(&self) -> bool {
        self.failed.get()
    }

    /// After a rollback to a savepoint the transaction is usable again.
    pub(crate) fn set_failed(&self, failed: bool) {
        self.failed.set(failed);
    }

    /// Notes a failure (see `failed`) and converts the error.
    fn watch<T>(&self, result: Result<T, tokio_postgres::Error>) -> rusqlite::Result<T> {
        result.map_err(|error| {
            self.failed.set(true);
            into_rusqlite(error)
        })
    }
}

/// PostgreSQL's failures in SQLite's vocabulary: one that waiting may cure (a serialization
/// failure, a deadlock, a lock or statement timeout) is `SQLITE_BUSY`, so `StoreError::Busy`
/// and every retry built on it apply; the rest travel whole and come back out as
/// `StoreError::Postgres` (`StoreError::from`).
pub(crate) fn into_rusqlite(error: tokio_postgres::Error) -> rusqlite::Error {
    if super::is_transient(&error) {
        let detail = error
            .as_db_error()
            .map(|db| db.message().to_string())
            .unwrap_or_else(|| error.to_string());
        return rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some(detail),
        );
    }
    rusqlite::Error::ToSqlConversionFailure(Box::new(error))
}

/// SQLite's `?N` (and bare `?`) placeholders as PostgreSQL's `$N`, outside quoted text.
pub(crate) fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut highest = 0usize;
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(open) = quote {
            out.push(c);
            if c == open {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            // A `--` comment runs to the end of its line: copied as it is.
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for next in chars.by_ref() {
                    out.push(next);
                    if next == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let number = match digits.parse::<usize>() {
                    Ok(number) => number,
                    Err(_) => highest + 1,
                };
                highest = highest.max(number);
                out.push('$');
                out.push_str(&number.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// rusqlite's values as PostgreSQL parameters.
fn parameters<'v>(values: &'v [&dyn rusqlite::ToSql]) -> rusqlite::Result<Vec<Parameter<'v>>> {
    values
        .iter()
        .map(|value| value.to_sql().map(Parameter))
        .collect()
}

/// A SQLite value bound to a PostgreSQL parameter of whatever type the server inferred:
/// an integer fits `int2`/`int4`/`int8`, `bool` (0 or not), a float or text; text fits text
/// types and `json`; a blob fits `bytea`. Anything else is refused with the type named.
#[derive(Debug)]
struct Parameter<'v>(ToSqlOutput<'v>);

impl ToSql for Parameter<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let value = match &self.0 {
            ToSqlOutput::Borrowed(value) => *value,
            ToSqlOutput::Owned(value) => ValueRef::from(value),
            other => return Err(format!("unsupported SQLite value {other:?}").into()),
        };
        let text_type = [
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::UNKNOWN,
        ]
        .contains(ty);
        match value {
            ValueRef::Null => Ok(IsNull::Yes),
            ValueRef::Integer(integer) => match *ty {
                Type::INT8 => integer.to_sql(ty, out),
                Type::INT4 => i32::try_from(integer)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(integer)?.to_sql(ty, out),
                Type::BOOL => (integer != 0).to_sql(ty, out),
                Type::FLOAT8 => (integer as f64).to_sql(ty, out),
                Type::FLOAT4 => (integer as f32).to_sql(ty, out),
                _ if text_type => integer.to_string().as_str().to_sql(&Type::TEXT, out),
                _ => Err(format!("an integer cannot bind a {ty} parameter").into()),
            },
            ValueRef::Real(real) => match *ty {
                Type::FLOAT8 => real.to_sql(ty, out),
                Type::FLOAT4 => (real as f32).to_sql(ty, out),
                _ if text_type => real.to_string().as_str().to_sql(&Type::TEXT, out),
                _ => Err(format!("a real cannot bind a {ty} parameter").into()),
            },
            ValueRef::Text(bytes) => {
                let text = std::str::from_utf8(bytes)?;
                match *ty {
                    _ if text_type => text.to_sql(&Type::TEXT, out),
                    Type::JSON => {
                        out.extend_from_slice(bytes);
                        Ok(IsNull::No)
                    }
                    Type::JSONB => {
                        out.extend_from_slice(&[1]);
                        out.extend_from_slice(bytes);
                        Ok(IsNull::No)
                    }
                    Type::INT8 => text.parse::<i64>()?.to_sql(ty, out),
                    _ => Err(format!("text cannot bind a {ty} parameter").into()),
                }
            }
            ValueRef::Blob(blob) => match *ty {
                Type::BYTEA => blob.to_sql(ty, out),
                _ => Err(format!("a blob cannot bind a {ty} parameter").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// One column's type and bytes, undecoded.
struct Raw<'r> {
    ty: Type,
    bytes: Option<&'r [u8]>,
}

impl<'r> FromSql<'r> for Raw<'r> {
    fn from_sql(
        ty: &Type,
        raw: &'r [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw {
            ty: ty.clone(),
            bytes: Some(raw),
        })
    }

    fn from_sql_null(ty: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw {
            ty: ty.clone(),
            bytes: None,
        })
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Column `index` of `row` as the SQLite value it stands for: integers (and `bool` as
/// 0/1) are INTEGER, floats REAL, text types TEXT, `bytea` BLOB, and a `numeric` (what
/// `SUM` of `bigint` gives) INTEGER when whole, REAL otherwise.
pub(crate) fn column(row: &tokio_postgres::Row, index: usize) -> rusqlite::Result<ValueRef<'_>> {
    let raw: Raw<'_> = row.try_get(index).map_err(into_rusqlite)?;
    let Some(bytes) = raw.bytes else {
        return Ok(ValueRef::Null);
    };
    let failed = |error: Box<dyn std::error::Error + Sync + Send>| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Null, error)
    };
    Ok(match raw.ty {
        Type::INT8 => ValueRef::Integer(i64::from_sql(&raw.ty, bytes).map_err(failed)?),
        Type::INT4 => ValueRef::Integer(i32::from_sql(&raw.ty, bytes).map_err(failed)?.into()),
        Type::INT2 => ValueRef::Integer(i16::from_sql(&raw.ty, bytes).map_err(failed)?.into()),
        Type::OID => ValueRef::Integer(u32::from_sql(&raw.ty, bytes).map_err(failed)?.into()),
        Type::BOOL => ValueRef::Integer(bool::from_sql(&raw.ty, bytes).map_err(failed)?.into()),
        Type::FLOAT8 => ValueRef::Real(f64::from_sql(&raw.ty, bytes).map_err(failed)?),
        Type::FLOAT4 => ValueRef::Real(f32::from_sql(&raw.ty, bytes).map_err(failed)?.into()),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
            ValueRef::Text(bytes)
        }
        Type::JSONB => ValueRef::Text(bytes.get(1..).unwrap_or_default()),
        Type::BYTEA => ValueRef::Blob(bytes),
        Type::NUMERIC => numeric(bytes).map_err(failed)?,
        ref other => {
            return Err(failed(
                format!("column {index} has type {other}, which the store does not read").into(),
            ))
        }
    })
}

/// A binary `numeric`: digits in base 10,000 with a weight, a sign and a display scale.
fn numeric(bytes: &[u8]) -> Result<ValueRef<'static>, Box<dyn std::error::Error + Sync + Send>> {
    let word = |at: usize| -> Result<i16, Box<dyn std::error::Error + Sync + Send>> {
        let pair = bytes.get(at..at + 2).ok_or("a numeric too short")?;
        Ok(i16::from_be_bytes([pair[0], pair[1]]))
    };
    let digits = word(0)?.max(0) as usize;
    let weight = i32::from(word(2)?);
    let sign = word(4)? as u16;
    let scale = word(6)?;
    if sign == 0xC000 {
        return Err("a numeric NaN".into());
    }
    let mut whole: i128 = 0;
    let mut real = 0f64;
    let mut exact = scale == 0;
    for index in 0..digits {
        let digit = i128::from(word(8 + index * 2)?);
        let power = weight - index as i32;
        real += digit as f64 * 10000f64.powi(power);
        if power >= 0 {
            let term = 10000i128
                .checked_pow(power as u32)
                .and_then(|unit| unit.checked_mul(digit))
                .ok_or("a numeric too large")?;
            whole = whole.checked_add(term).ok_or("a numeric too large")?;
        } else if digit != 0 {
            exact = false;
        }
    }
    let negative = sign == 0x4000;
    match i64::try_from(whole) {
        Ok(whole) if exact => Ok(ValueRef::Integer(if negative { -whole } else { whole })),
        _ => Ok(ValueRef::Real(if negative { -real } else { real })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollar_numbers_outside_quotes() {
        assert_eq!(
            translate("SELECT a FROM t WHERE b = ?1 AND c = ?2 AND d = '?' AND e = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = $2 AND d = '?' AND e = $3"
        );
        assert_eq!(translate("VALUES (?, ?, ?10)"), "VALUES ($1, $2, $10)");
        assert_eq!(
            translate("SELECT 1 -- the afname's key ?2\nWHERE a = ?1"),
            "SELECT 1 -- the afname's key ?2\nWHERE a = $1"
        );
    }

    #[test]
    fn numerics_read_as_integers_when_whole() {
        // 123456789 = 1·10000² + 2345·10000 + 6789: ndigits 3, weight 2, sign 0, scale 0.
        let bytes = [0, 3, 0, 2, 0, 0, 0, 0, 0, 1, 0x09, 0x29, 0x1A, 0x85];
        assert_eq!(numeric(&bytes).unwrap(), ValueRef::Integer(123_456_789));
        let negative = [0, 1, 0, 0, 0x40, 0, 0, 0, 0, 7];
        assert_eq!(numeric(&negative).unwrap(), ValueRef::Integer(-7));
        let zero = [0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(numeric(&zero).unwrap(), ValueRef::Integer(0));
    }
}
