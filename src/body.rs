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

/// The longest run of bytes without `<` or `>` a reader passes on. An XML parser
/// buffers a whole text node or tag before it can report it, so a hostile 100 MB
/// text node or a tag with a million attributes would otherwise be held in memory
/// whole; no UWLR value comes near this.
pub const MAX_MARKUP_FREE_RUN: u64 = 8 << 20;

/// The most `=` signs one tag may hold. Attribute parsers (libxml2's and
/// quick-xml's duplicate checks) take time quadratic in a tag's attribute count:
/// libxml2 needs 7 s for 50,000 attributes. No UWLR element has more than a few.
pub const MAX_ATTRIBUTES_PER_TAG: u32 = 1000;

/// Refuses input whose markup-free runs exceed `MAX_MARKUP_FREE_RUN`, or a tag
/// with more than `MAX_ATTRIBUTES_PER_TAG` attributes.
pub struct MarkupGuard<R> {
    inner: R,
    run: u64,
    /// Whether the last `<` or `>` seen was a `<`.
    in_tag: bool,
    /// `=` signs since the last `<` (inside a tag).
    attributes: u32,
    /// Set once a tag had too many; stays set, as later bytes may close the tag.
    too_many: bool,
}

impl<R: BufRead> MarkupGuard<R> {
    pub fn new(inner: R) -> Self {
        MarkupGuard {
            inner,
            run: 0,
            in_tag: false,
            attributes: 0,
            too_many: false,
        }
    }

    fn exceeded() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "a text or tag longer than {} MiB",
                MAX_MARKUP_FREE_RUN >> 20
            ),
        )
    }

    fn too_many_attributes() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a tag with more than {MAX_ATTRIBUTES_PER_TAG} attributes"),
        )
    }
}

impl<R: BufRead> std::io::Read for MarkupGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(out.len());
        out[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl<R: BufRead> BufRead for MarkupGuard<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.run > MAX_MARKUP_FREE_RUN {
            return Err(Self::exceeded());
        }
        if self.too_many {
            return Err(Self::too_many_attributes());
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Ok(buffer) = self.inner.fill_buf() {
            let consumed = &buffer[..amount.min(buffer.len())];
            match memchr::memrchr2(b'<', b'>', consumed) {
                Some(last) => self.run = (consumed.len() - last - 1) as u64,
                None => self.run += consumed.len() as u64,
            }
            for index in memchr::memchr3_iter(b'<', b'>', b'=', consumed) {
                match consumed[index] {
                    b'<' => {
                        self.in_tag = true;
                        self.attributes = 0;
                    }
                    b'>' => self.in_tag = false,
                    _ if self.in_tag => {
                        self.attributes += 1;
                        self.too_many |= self.attributes > MAX_ATTRIBUTES_PER_TAG;
                    }
                    _ => {}
                }
            }
        }
        self.inner.consume(amount);
    }
}

impl Body {
    /// A fresh reader from the first byte.
    pub fn reader(&self) -> std::io::Result<BodyReader> {
        Ok(match self {
            Body::Memory(bytes) => Box::new(MarkupGuard::new(Cursor::new(bytes.clone()))),
            Body::File(path) => Box::new(MarkupGuard::new(BufReader::with_capacity(
                256 * 1024,
                File::open(path.as_ref() as &Path)?,
            ))),
            Body::Path(path) => Box::new(MarkupGuard::new(BufReader::with_capacity(
                256 * 1024,
                File::open(path)?,
            ))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read_all(input: Vec<u8>) -> std::io::Result<usize> {
        let mut reader = MarkupGuard::new(BufReader::with_capacity(4096, Cursor::new(input)));
        let mut sink = Vec::new();
        reader.read_to_end(&mut sink)
    }

    #[test]
    fn long_markup_free_runs_are_refused() {
        let mut long_text = b"<a>".to_vec();
        long_text.extend(std::iter::repeat(b'x').take(MAX_MARKUP_FREE_RUN as usize + 100_000));
        long_text.extend_from_slice(b"</a>");
        assert!(read_all(long_text).is_err());
        let mut many_short = Vec::new();
        for _ in 0..(MAX_MARKUP_FREE_RUN / 1000 + 10) {
            many_short.extend_from_slice(b"<b>");
            many_short.extend(std::iter::repeat(b'y').take(1000));
            many_short.extend_from_slice(b"</b>");
        }
        assert!(read_all(many_short).is_ok());
    }

    #[test]
    fn tags_with_too_many_attributes_are_refused() {
        let tag = |count: u32| {
            let mut xml = b"<a>x=y=z<b".to_vec();
            for index in 0..count {
                xml.extend_from_slice(format!(" a{index}=\"1\"").as_bytes());
            }
            xml.extend_from_slice(b"/>==========</a>");
            xml
        };
        assert!(read_all(tag(MAX_ATTRIBUTES_PER_TAG)).is_ok());
        assert!(read_all(tag(MAX_ATTRIBUTES_PER_TAG + 1)).is_err());
        // `=` in text does not count.
        let mut text = b"<a>".to_vec();
        text.extend(std::iter::repeat_n(b'=', 100_000));
        text.extend_from_slice(b"</a>");
        assert!(read_all(text).is_ok());
    }
}
