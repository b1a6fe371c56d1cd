//! The handle a store job runs on, and the savepoint or transaction around a job, so that no module outside `store/` names the database engine.
//!
//! Callers outside `store/` hand jobs to `Store::read`, `Store::write` and
//! `Store::write_xapi` and call store functions with the `Connection` they get; the
//! unit of atomicity they need (a savepoint in the writer's group transaction, one
//! snapshot for several reads, an IMMEDIATE transaction of a CLI command) comes from here.

use super::StoreError;

pub(crate) use rusqlite::Connection;

/// Runs `job` in a savepoint of the writer's group transaction, so its writes are atomic.
pub(crate) fn in_savepoint<R, E: From<StoreError>>(
    connection: &mut Connection,
    job: impl FnOnce(&Connection) -> Result<R, E>,
) -> Result<R, E> {
    let savepoint = connection.savepoint().map_err(StoreError::from)?;
    let result = job(&savepoint)?;
    savepoint.commit().map_err(StoreError::from)?;
    Ok(result)
}

/// Runs `job`'s reads in one read transaction: one snapshot, ended when the job returns.
pub(crate) fn in_snapshot<R, E: From<StoreError>>(
    connection: &Connection,
    job: impl FnOnce(&Connection) -> Result<R, E>,
) -> Result<R, E> {
    let snapshot = connection
        .unchecked_transaction()
        .map_err(StoreError::from)?;
    let result = job(&snapshot)?;
    snapshot.finish().map_err(StoreError::from)?;
    Ok(result)
}

/// Runs `job` in an IMMEDIATE transaction of its own (a CLI command's or the admin API's
/// write over both files): it holds the write lock from its start and commits at its end.
pub(crate) fn in_immediate_transaction<R, E: From<StoreError>>(
    connection: &mut Connection,
    job: impl FnOnce(&Connection) -> Result<R, E>,
) -> Result<R, E> {
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    let result = job(&transaction)?;
    transaction.commit().map_err(StoreError::from)?;
    Ok(result)
}
