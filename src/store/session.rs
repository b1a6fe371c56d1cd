//! An operator's session on the store: the one connection a CLI command runs on, and its write transaction.
//!
//! The CLI holds a `Session`, never a connection of its own: it passes the session to the
//! store functions of each kind of data (they take the `Db` it derefs to) and changes
//! data only through `Session::write`, so SQL, transactions and the engine stay in `store`.

use super::db::Db;
use super::{Store, StoreError};
use std::path::Path;

/// One connection to the store (on SQLite the core with the bridge's file attached).
pub(crate) struct Session {
    db: Db<'static>,
    /// The store the session came from, kept open as long as the session: on PostgreSQL
    /// its engine's runtime drives the session's socket.
    _store: Option<Store>,
}

impl Session {
    /// A session that may change data, on a store already opened (and migrated).
    pub(crate) fn open(store: &Store) -> Result<Session, StoreError> {
        Ok(Session {
            db: store.connect()?,
            _store: Some(store.clone()),
        })
    }

    /// A session that only looks, opened as `open_read_only` explains: it never creates,
    /// migrates or writes anything.
    pub(crate) fn open_read_only(data_dir: &Path) -> Result<Session, StoreError> {
        Ok(Session {
            db: Db::owned_sqlite(super::open_read_only(data_dir)?),
            _store: None,
        })
    }

    /// Runs `job` in one write transaction (on SQLite one that takes the write lock first,
    /// so change seqs cannot interleave with a running gateway's), committed only when
    /// `job` returns `Ok`.
    pub(crate) fn write<R, E: From<StoreError>>(
        &mut self,
        job: impl FnOnce(&Db) -> Result<R, E>,
    ) -> Result<R, E> {
        super::connection::in_write_transaction(&self.db, job)
    }
}

impl std::ops::Deref for Session {
    type Target = Db<'static>;

    fn deref(&self) -> &Db<'static> {
        &self.db
    }
}

#[cfg(test)]
mod tests {
    use super::Session;
    use crate::store::{admin, clients, Durability, Store};

    /// A command's writes commit together or, when the command fails part-way, not at all.
    #[test]
    fn a_write_commits_whole_or_leaves_nothing() -> anyhow::Result<()> {
        let data_dir = tempfile::tempdir()?;
        let store = Store::open(data_dir.path(), Durability::Normal, 64 << 20)?;
        let mut session = Session::open(&store)?;
        let failed = session.write(|transaction| -> anyhow::Result<()> {
            admin::add_client(transaction, "EA-1", "Uitgever", "sleutel-1")?;
            anyhow::bail!("the command fails after its first write")
        });
        assert!(failed.is_err());
        assert!(!clients::client_known(&session, "EA-1")?);
        session.write(|transaction| -> anyhow::Result<()> {
            admin::add_client(transaction, "EA-1", "Uitgever", "sleutel-1")?;
            admin::add_client(transaction, "EA-2", "Uitgever", "sleutel-2")?;
            Ok(())
        })?;
        assert!(clients::client_known(&session, "EA-1")?);
        let looking = Session::open_read_only(data_dir.path())?;
        assert!(clients::client_known(&looking, "EA-2")?);
        Ok(())
    }
}
