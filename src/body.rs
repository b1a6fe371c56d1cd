//! A received request body: kept in memory when small, spooled to a file when large.
//!
//! Either way it is read in forward passes through `reader`, so no stage needs the
//! whole message in memory; only bodies up to `MEMORY_LIMIT` ever are.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor};
use std::path::Path;
use std::sync::Arc;

/// Bodies up to this size stay in memory (drip messages); larger ones go to disk.
pub const MEMORY_LIMIT: usize = 1 << 20;

/// The bytes of one request.
#[derive(Clone, Debug)]
pub enum Body {
    Memory(bytes::Bytes),
    /// A spooled body, deleted when the last clone is dropped.
    File(Arc<tempfile::TempPath>),
    /// A file that belongs to someone else (offline tools); never deleted.
    Path(std::path::PathBuf),
}

/// A buffered reader over either kind of body.
pub type BodyReader = Box<dyn BufRead + Send>;

impl Body {
    /// A fresh reader from the first byte.
    pub fn reader(&self) -> std::io::Result<BodyReader> {
        Ok(match self {
            Body::Memory(bytes) => Box::new(Cursor::new(bytes.clone())),
            Body::File(path) => Box::new(BufReader::with_capacity(256 * 1024, File::open(path.as_ref() as &Path)?)),
            Body::Path(path) => Box::new(BufReader::with_capacity(256 * 1024, File::open(path)?)),
        })
    }

    /// The file behind the body, if it is on disk.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Body::Memory(_) => None,
            Body::File(path) => Some(path.as_ref()),
            Body::Path(path) => Some(path),
        }
    }

    pub fn len(&self) -> std::io::Result<u64> {
        Ok(match self {
            Body::Memory(bytes) => bytes.len() as u64,
            Body::File(path) => std::fs::metadata(path.as_ref() as &Path)?.len(),
            Body::Path(path) => std::fs::metadata(path)?.len(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len().map(|length| length == 0).unwrap_or(true)
    }
}
