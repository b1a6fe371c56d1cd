//! The data-dir lock: at most one `serve` (or migration) at a time on a SQLite data dir.
//!
//! SQLite's own locks keep two processes from corrupting a file, but not two gateways from
//! serving the same data dir: both would run a single writer, a publisher and a delivery
//! worker, and the invariants that rest on "one writer thread" would no longer hold. So
//! `serve` takes an advisory `flock` on `serve.lock` in the data dir for its whole life, and
//! a migration takes it while it changes the schema. The kernel drops the lock when the
//! process ends, SIGKILL included, so a stale file never blocks a restart. CLI subcommands
//! that only read or write rows do not take it: SQLite's locking serves them.

use super::StoreError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// The file in the data dir that is locked; it holds the holder's pid, for the refusal.
pub(crate) const LOCK_FILE: &str = "serve.lock";

/// The held lock; released when dropped or when the process ends.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    /// The open file that carries the `flock`; never read again, only kept open.
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` (which must exist) without waiting, and writes this
    /// process's pid into the lock file; `InUse`, naming the holder's pid when it wrote one,
    /// if another process holds it.
    pub(crate) fn acquire(data_dir: &Path) -> Result<DataDirLock, StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let failed = |source: std::io::Error| StoreError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .mode(0o600)
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // The holder writes its pid right after it took the lock.
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse::<u32>().ok())
                    // A holder caught before it wrote its pid leaves the previous holder's
                    // there, maybe of a process long gone: only a live one is named.
                    .filter(|pid| Path::new(&format!("/proc/{pid}")).exists());
                return Err(StoreError::InUse {
                    path: data_dir.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(source)) => return Err(failed(source)),
        }
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        Ok(DataDirLock { _file: file })
    }
}

/// "pid N" of a lock's holder, or that it is not known.
pub(crate) fn describe_holder(holder: &Option<u32>) -> String {
    match holder {
        Some(pid) => format!("pid {pid}"),
        None => "pid not known".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{DataDirLock, LOCK_FILE};
    use crate::store::StoreError;

    /// A second lock on the same dir is refused with the first holder's pid, and free again
    /// once the first is dropped; the file then names the new holder.
    #[test]
    fn one_holder_at_a_time() -> Result<(), StoreError> {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let first = DataDirLock::acquire(data_dir.path())?;
        match DataDirLock::acquire(data_dir.path()) {
            Err(StoreError::InUse { path, holder }) => {
                assert_eq!(path, data_dir.path());
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("a second lock was not refused: {other:?}"),
        }
        drop(first);
        let _second = DataDirLock::acquire(data_dir.path())?;
        let text = std::fs::read_to_string(data_dir.path().join(LOCK_FILE)).expect("lock file");
        assert_eq!(text, format!("{}\n", std::process::id()));
        Ok(())
    }
}
