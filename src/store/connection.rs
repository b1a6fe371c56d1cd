//! The savepoint or transaction around a store job, on either engine, so that no module outside `store/` names the database engine.
//!
//! Callers outside `store/` hand jobs to `Store::read`, `Store::write` and
//! `Store::write_xapi` and call store functions with the `Db` they get; the unit of
//! atomicity they need (a savepoint in the writer's transaction, one snapshot for several
//! reads, a write transaction of a CLI command) comes from here.

use super::db::Db;
use super::StoreError;

/// Runs `job` in a savepoint of the writer's transaction, so its writes are atomic: on an
/// error they are rolled back and the transaction goes on (on PostgreSQL too, which
/// otherwise refuses every later statement of a transaction in which one failed).
pub(crate) fn in_savepoint<R, E: From<StoreError>>(
    db: &Db,
    job: impl FnOnce(&Db) -> Result<R, E>,
) -> Result<R, E> {
    let session = db.as_postgres();
    if session.is_some_and(|session| !session.in_transaction()) {
        return in_write_transaction(db, job);
    }
    let failed_before = session.is_some_and(|session| session.failed());
    db.execute_batch("SAVEPOINT job")
        .map_err(StoreError::from)?;
    match job(db) {
        Ok(result) => {
            db.execute_batch("RELEASE SAVEPOINT job")
                .map_err(StoreError::from)?;
            Ok(result)
        }
        Err(error) => {
            let rolled_back = db.execute_batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job");
            if let (Some(session), Ok(())) = (session, &rolled_back) {
                session.set_failed(failed_before);
            }
            Err(error)
        }
    }
}

/// Runs `job`'s reads in one read transaction: one snapshot, ended when the job returns.
/// Inside a transaction already (a PostgreSQL writer's job) the job reads in that one.
pub(crate) fn in_snapshot<R, E: From<StoreError>>(
    db: &Db,
    job: impl FnOnce(&Db) -> Result<R, E>,
) -> Result<R, E> {
    match db.as_postgres() {
        Some(session) if session.in_transaction() => job(db),
        Some(session) => {
            session.begin_snapshot().map_err(StoreError::from)?;
            let result = job(db);
            session.rollback();
            result
        }
        None => {
            db.execute_batch("BEGIN DEFERRED")
                .map_err(StoreError::from)?;
            let result = job(db);
            let _ = db.execute_batch("ROLLBACK");
            result
        }
    }
}

/// Runs `job` in a write transaction of its own (a CLI command's or the admin API's write
/// over both files), committed only when `job` returns `Ok`. On SQLite it is IMMEDIATE: it
/// holds the write lock from its start, so its change numbers cannot interleave with a
/// running gateway's; on PostgreSQL the row locks of the statements order it.
pub(crate) fn in_write_transaction<R, E: From<StoreError>>(
    db: &Db,
    job: impl FnOnce(&Db) -> Result<R, E>,
) -> Result<R, E> {
    match db.as_postgres() {
        Some(session) => {
            session.begin().map_err(StoreError::from)?;
            match job(db) {
                Ok(result) => {
                    session.commit().map_err(StoreError::from)?;
                    Ok(result)
                }
                Err(error) => {
                    session.rollback();
                    Err(error)
                }
            }
        }
        None => {
            db.execute_batch("BEGIN IMMEDIATE")
                .map_err(StoreError::from)?;
            match job(db) {
                Ok(result) => {
                    if let Err(error) = db.execute_batch("COMMIT") {
                        let _ = db.execute_batch("ROLLBACK");
                        return Err(E::from(StoreError::from(error)));
                    }
                    Ok(result)
                }
                Err(error) => {
                    let _ = db.execute_batch("ROLLBACK");
                    Err(error)
                }
            }
        }
    }
}

/// A savepoint that a value holds open (one message's pass): released by `commit`, rolled
/// back when dropped without it.
pub(crate) struct Savepoint<'c> {
    db: &'c Db<'c>,
    failed_before: bool,
    open: bool,
}

impl<'c> Savepoint<'c> {
    pub(crate) fn begin(db: &'c Db<'c>) -> Result<Savepoint<'c>, StoreError> {
        let failed_before = db.as_postgres().is_some_and(|session| session.failed());
        db.execute_batch("SAVEPOINT pass")?;
        Ok(Savepoint {
            db,
            failed_before,
            open: true,
        })
    }

    pub(crate) fn db(&self) -> &'c Db<'c> {
        self.db
    }

    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.db.execute_batch("RELEASE SAVEPOINT pass")?;
        Ok(())
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if self.open {
            let rolled_back = self
                .db
                .execute_batch("ROLLBACK TO SAVEPOINT pass; RELEASE SAVEPOINT pass");
            if let (Some(session), Ok(())) = (self.db.as_postgres(), rolled_back) {
                session.set_failed(self.failed_before);
            }
        }
    }
}

/// One read snapshot that a function holds while it reads (`in_snapshot` as a value): on
/// SQLite a deferred read transaction, on PostgreSQL a REPEATABLE READ one (or the
/// writer's transaction it already runs in); ended by `finish` or when dropped.
pub(crate) struct Snapshot<'c> {
    db: &'c Db<'c>,
    open: bool,
}

impl<'c> Snapshot<'c> {
    pub(crate) fn begin(db: &'c Db<'c>) -> Result<Snapshot<'c>, StoreError> {
        let open = match db.as_postgres() {
            Some(session) if session.in_transaction() => false,
            Some(session) => {
                session.begin_snapshot()?;
                true
            }
            None => {
                db.execute_batch("BEGIN DEFERRED")?;
                true
            }
        };
        Ok(Snapshot { db, open })
    }

    pub(crate) fn db(&self) -> &'c Db<'c> {
        self.db
    }

    pub(crate) fn finish(mut self) -> Result<(), StoreError> {
        self.end();
        Ok(())
    }

    fn end(&mut self) {
        if std::mem::take(&mut self.open) {
            match self.db.as_postgres() {
                Some(session) => session.rollback(),
                None => {
                    let _ = self.db.execute_batch("ROLLBACK");
                }
            }
        }
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        self.end();
    }
}
