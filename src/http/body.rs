//! Request bodies: received within their limits, kept in memory when small, spooled to a file when large.
//!
//! Either way it is read in forward passes through `reader`, so no stage needs the
//! whole message in memory; only bodies up to `MEMORY_LIMIT` ever are.

use super::AppState;
use crate::budget::{Exceeded, Held};
use crate::config::Config;
use crate::domain::violation::Violations;
use crate::intake::{Identification, Identity, IntakeError, Received, Scope};
use crate::soap::fault::Refusal;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::io::{BufRead, BufReader, Cursor};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bodies up to this size stay in memory (drip messages); larger ones go to disk.
pub(crate) const MEMORY_LIMIT: usize = 1 << 20;

/// The bytes of one request.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    Memory(bytes::Bytes),
    /// A spooled body, deleted when the last clone is dropped.
    File(Arc<tempfile::TempPath>),
    /// A file that belongs to someone else (offline tools); never deleted.
    Path(std::path::PathBuf),
}

/// A buffered reader over either kind of body.
pub(crate) type BodyReader = Box<dyn BufRead + Send>;

/// The longest run of bytes without `<` or `>` a reader passes on. An XML parser
/// buffers a whole text node or tag before it can report it, so a hostile 100 MB
/// text node or a tag with a million attributes would otherwise be held in memory
/// whole; no UWLR value comes near this.
pub(crate) const MAX_MARKUP_FREE_RUN: u64 = 8 << 20;

/// The most `=` signs one tag may hold. Attribute parsers (libxml2's and
/// quick-xml's duplicate checks) take time quadratic in a tag's attribute count:
/// libxml2 needs 7 s for 50,000 attributes. No UWLR element has more than a few.
pub(crate) const MAX_ATTRIBUTES_PER_TAG: u32 = 1000;

/// Refuses input whose markup-free runs exceed `MAX_MARKUP_FREE_RUN`, or a tag
/// with more than `MAX_ATTRIBUTES_PER_TAG` attributes.
pub(crate) struct MarkupGuard<R> {
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
    pub(crate) fn new(inner: R) -> Self {
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
    pub(crate) fn reader(&self) -> std::io::Result<BodyReader> {
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
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            Body::Memory(_) => None,
            Body::File(path) => Some(path.as_ref()),
            Body::Path(path) => Some(path),
        }
    }

    pub(crate) fn len(&self) -> std::io::Result<u64> {
        Ok(match self {
            Body::Memory(bytes) => bytes.len() as u64,
            Body::File(path) => std::fs::metadata(path.as_ref() as &Path)?.len(),
            Body::Path(path) => std::fs::metadata(path)?.len(),
        })
    }
}

pub(super) enum SpoolError {
    Refused(Refusal),
    /// The prefix named no valid sender (or no envelope): refused before the rest was read.
    Unidentified(Violations, Option<String>),
    Identify(IntakeError),
    Io(std::io::Error),
}

/// A received body and the spool space it holds until the intake is done with it.
pub(super) struct Spooled {
    pub(super) received: Received,
    pub(super) spool_space: Option<Held>,
}

/// Prefixes up to this size are identified on the request's own task (well under a
/// millisecond); longer ones on the blocking pool.
const INLINE_IDENTIFY_BYTES: usize = 64 << 10;

/// What a body may cost while it arrives, from the configuration.
struct SpoolLimits {
    max_bytes: u64,
    idle: Duration,
    whole: Duration,
    preauth: Duration,
    preauth_max_bytes: usize,
    min_bytes_per_sec: u64,
    rate_window: Duration,
}

impl SpoolLimits {
    fn of(config: &Config) -> SpoolLimits {
        SpoolLimits {
            max_bytes: config.max_body_bytes,
            idle: Duration::from_secs(config.body_idle_timeout_secs),
            whole: Duration::from_secs(config.body_timeout_secs),
            preauth: Duration::from_secs(config.preauth_timeout_secs),
            preauth_max_bytes: config.preauth_max_bytes as usize,
            min_bytes_per_sec: config.min_body_bytes_per_sec,
            rate_window: Duration::from_secs(config.body_rate_window_secs),
        }
    }
}

fn busy(exceeded: Exceeded, what: &str) -> SpoolError {
    SpoolError::Refused(Refusal::Busy(match exceeded {
        Exceeded::PerAddress => format!("your address holds too much {what}"),
        Exceeded::Total => format!("all senders together hold too much {what}"),
    }))
}

/// Receives the body, hashing it on the way (from authentication on).
///
/// Until the sender is authenticated the body stays in memory, within
/// `preauth_max_bytes`, `preauth_timeout_secs` and the gateway-wide pre-authentication
/// budget: as the prefix grows it is handed to `Intake::identify`, and a prefix that
/// names no valid sender is answered at once. After that, a body that grows past
/// `MEMORY_LIMIT` is spooled to a temporary file within the spool budget.
pub(super) async fn spool(
    state: &AppState,
    mut body: Incoming,
    peer: SocketAddr,
    drain_refused: bool,
) -> Result<Spooled, SpoolError> {
    let spooled = receive_body(state, &mut body, peer, drain_refused).await;
    if drain_refused
        && matches!(
            spooled,
            Err(SpoolError::Unidentified(..) | SpoolError::Refused(Refusal::Busy(_)))
        )
    {
        // The answer goes out now, before the rest of the body; a bounded drain on the
        // side lets the client read it instead of a reset connection.
        tokio::spawn(async move { drain(&mut body).await });
    }
    spooled
}

async fn receive_body(
    state: &AppState,
    body: &mut Incoming,
    peer: SocketAddr,
    drain_refused: bool,
) -> Result<Spooled, SpoolError> {
    let mut pacing = Pacing::new(SpoolLimits::of(&state.config));
    // Until authentication: the prefix, in memory only. None once the sender is known.
    let mut prefix = Some(Prefix::new(state, peer)?);
    let mut sink = Sink::default();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut identity: Option<Box<Identity>> = None;
    // A body refused while it arrives leaves its memory here; one that is received
    // is counted when the intake is done with it.
    let mut refused_memory = ReleasedOnDrop {
        released: &state.released_bytes,
        bytes: 0,
    };
    loop {
        let frame = tokio::time::timeout_at(pacing.wait_until(), body.frame()).await;
        let now = tokio::time::Instant::now();
        pacing.check(now, identity.is_some())?;
        let frame = match frame {
            Err(_) if pacing.idle(now) => {
                return Err(incomplete(format!(
                    "no data for {} seconds",
                    pacing.limits.idle.as_secs()
                )))
            }
            Err(_) => continue,
            Ok(None) => break,
            Ok(Some(Err(error))) => return Err(incomplete(error.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pacing.received(now, data.len());
        size += data.len() as u64;
        refused_memory.bytes = size.min(8 * MEMORY_LIMIT as u64);
        if size > pacing.limits.max_bytes {
            if drain_refused {
                drain(body).await;
            }
            return Err(SpoolError::Refused(Refusal::TooLarge(
                pacing.limits.max_bytes,
            )));
        }
        let Some(unauthenticated) = prefix.as_mut() else {
            hasher.update(&data);
            sink.write(state, peer, &data)?;
            continue;
        };
        if !unauthenticated.push(&data, pacing.limits.preauth_max_bytes)? {
            continue;
        }
        match unauthenticated
            .identify(state, peer, pacing.limits.preauth_max_bytes)
            .await?
        {
            Identification::Incomplete => {}
            Identification::Refused(violations, klantcode) => {
                return Err(SpoolError::Unidentified(violations, klantcode));
            }
            Identification::Sender(sender) => {
                // Hashed only now: a body refused before this costs no hashing.
                let known = prefix.take().expect("the prefix").bytes;
                hasher.update(&known);
                sink.memory = known;
                identity = Some(sender);
                pacing.authenticated();
            }
        }
    }
    if let Some(unauthenticated) = prefix {
        // The whole body came before its sender could be identified: phase 1 does it.
        hasher.update(&unauthenticated.bytes);
        sink.memory = unauthenticated.bytes;
    }
    refused_memory.bytes = 0;
    let (body, spool_space) = sink.finish()?;
    Ok(Spooled {
        received: Received {
            body,
            size,
            sha256: hex::encode(hasher.finalize()),
            peer: Some(peer.ip()),
            identity,
        },
        spool_space,
    })
}

fn incomplete(reason: String) -> SpoolError {
    SpoolError::Refused(Refusal::IncompleteBody(reason))
}

/// When a body must arrive: the deadlines, the idle timeout and the minimum rate.
struct Pacing {
    limits: SpoolLimits,
    started: tokio::time::Instant,
    /// The pre-authentication deadline until the sender is known, then the whole-body one.
    deadline: tokio::time::Instant,
    last_data: tokio::time::Instant,
    window_start: tokio::time::Instant,
    window_bytes: u64,
}

impl Pacing {
    fn new(limits: SpoolLimits) -> Pacing {
        let started = tokio::time::Instant::now();
        Pacing {
            deadline: started + limits.preauth.min(limits.whole),
            limits,
            started,
            last_data: started,
            window_start: started,
            window_bytes: 0,
        }
    }

    /// How long to wait for the next frame before looking at the clock again.
    fn wait_until(&self) -> tokio::time::Instant {
        let wait_until = self.deadline.min(self.last_data + self.limits.idle);
        if self.limits.min_bytes_per_sec > 0 {
            wait_until.min(self.window_start + self.limits.rate_window)
        } else {
            wait_until
        }
    }

    /// Refuses a body past its deadline, or one that arrived slower than the minimum
    /// rate over the window that just ended.
    fn check(&mut self, now: tokio::time::Instant, authenticated: bool) -> Result<(), SpoolError> {
        let limits = &self.limits;
        if now >= self.deadline {
            return Err(incomplete(
                if !authenticated && limits.preauth < limits.whole {
                    format!(
                    "the autorisatie header and the school block did not arrive within {} seconds",
                    limits.preauth.as_secs()
                )
                } else {
                    format!(
                        "the body took longer than {} seconds",
                        limits.whole.as_secs()
                    )
                },
            ));
        }
        if limits.min_bytes_per_sec > 0 && now >= self.window_start + limits.rate_window {
            let window_secs = limits.rate_window.as_secs().max(1);
            if self.window_bytes < limits.min_bytes_per_sec * window_secs {
                return Err(incomplete(format!(
                    "the body arrived at {} bytes per second, slower than {} bytes per second",
                    self.window_bytes / window_secs,
                    limits.min_bytes_per_sec
                )));
            }
            (self.window_start, self.window_bytes) = (now, 0);
        }
        Ok(())
    }

    fn idle(&self, now: tokio::time::Instant) -> bool {
        now >= self.last_data + self.limits.idle
    }

    fn received(&mut self, now: tokio::time::Instant, bytes: usize) {
        self.last_data = now;
        self.window_bytes += bytes as u64;
    }

    /// From now on the whole-body deadline applies.
    fn authenticated(&mut self) {
        self.deadline = self.started + self.limits.whole;
    }
}

/// The start of a body whose sender is not yet authenticated: in memory only, within
/// `preauth_max_bytes` and the gateway-wide pre-authentication budget.
struct Prefix {
    bytes: Vec<u8>,
    held: Held,
    next_identify_at: usize,
    school_seen: bool,
}

impl Prefix {
    fn new(state: &AppState, peer: SocketAddr) -> Result<Prefix, SpoolError> {
        Ok(Prefix {
            bytes: Vec::new(),
            held: state
                .preauth_memory
                .take(peer.ip(), 0)
                .map_err(|exceeded| busy(exceeded, "unauthenticated data"))?,
            next_identify_at: 0,
            school_seen: false,
        })
    }

    /// Adds `data`; says whether the prefix is now worth identifying. The school block
    /// ends the part identification needs: scanning only once "school" has arrived, and
    /// then only after a quarter more, keeps the work linear in the prefix however the
    /// sender splits it.
    fn push(&mut self, data: &[u8], max_bytes: usize) -> Result<bool, SpoolError> {
        self.held
            .grow(data.len() as u64)
            .map_err(|exceeded| busy(exceeded, "unauthenticated data"))?;
        let overlap = self.bytes.len().saturating_sub(b"school".len() - 1);
        self.bytes.extend_from_slice(data);
        self.school_seen |= memchr::memmem::find(&self.bytes[overlap..], b"school").is_some();
        Ok(self.bytes.len() >= max_bytes
            || (self.school_seen && self.bytes.len() >= self.next_identify_at))
    }

    /// Hands the prefix (at most `max_bytes` of it) to `Intake::identify`.
    async fn identify(
        &mut self,
        state: &AppState,
        peer: SocketAddr,
        max_bytes: usize,
    ) -> Result<Identification, SpoolError> {
        let (length, scope) = if self.bytes.len() >= max_bytes {
            let length = max_bytes as u64;
            (max_bytes, Scope::LastPrefix { length })
        } else {
            (self.bytes.len(), Scope::Prefix)
        };
        let identification = if length <= INLINE_IDENTIFY_BYTES {
            state
                .intake
                .identify(&self.bytes[..length], scope, Some(peer.ip()))
        } else {
            // A long prefix is scanned on the blocking pool, as large bodies are,
            // so that many of them at once do not hold up every other connection.
            let _slot = state.identify_slots.acquire().await;
            let intake = state.intake.clone();
            let scanned = std::mem::take(&mut self.bytes);
            let (identification, scanned) = tokio::task::spawn_blocking(move || {
                (
                    intake.identify(&scanned[..length], scope, Some(peer.ip())),
                    scanned,
                )
            })
            .await
            .map_err(|error| SpoolError::Identify(IntakeError::Worker(error.to_string())))?;
            self.bytes = scanned;
            identification
        }
        .map_err(SpoolError::Identify)?;
        if let Identification::Incomplete = identification {
            self.next_identify_at = self.bytes.len() + (self.bytes.len() / 4).max(4096);
            self.school_seen = false;
        }
        Ok(identification)
    }
}

/// Where an authenticated body goes: memory up to `MEMORY_LIMIT`, then a temporary
/// file within the spool quotas.
#[derive(Default)]
struct Sink {
    memory: Vec<u8>,
    file: Option<(std::io::BufWriter<std::fs::File>, tempfile::TempPath)>,
    space: Option<Held>,
}

impl Sink {
    fn write(&mut self, state: &AppState, peer: SocketAddr, data: &[u8]) -> Result<(), SpoolError> {
        match self.file.as_mut() {
            Some((writer, _)) => {
                if let Some(held) = self.space.as_mut() {
                    held.grow(data.len() as u64)
                        .map_err(|exceeded| busy(exceeded, "spooled data"))?;
                }
                writer.write_all(data).map_err(SpoolError::Io)
            }
            None if self.memory.len() + data.len() <= MEMORY_LIMIT => {
                self.memory.extend_from_slice(data);
                Ok(())
            }
            None => {
                self.space = Some(
                    state
                        .spool_space
                        .take(peer.ip(), (self.memory.len() + data.len()) as u64)
                        .map_err(|exceeded| busy(exceeded, "spooled data"))?,
                );
                let spooled = tempfile::Builder::new()
                    .prefix("body-")
                    .tempfile_in(&state.spool_dir)
                    .map_err(SpoolError::Io)?;
                let (handle, path) = spooled.into_parts();
                let mut writer = std::io::BufWriter::with_capacity(256 * 1024, handle);
                writer.write_all(&self.memory).map_err(SpoolError::Io)?;
                writer.write_all(data).map_err(SpoolError::Io)?;
                self.memory = Vec::new();
                self.file = Some((writer, path));
                Ok(())
            }
        }
    }

    /// The received body, and the spool space it holds.
    fn finish(self) -> Result<(Body, Option<Held>), SpoolError> {
        let body = match self.file {
            Some((mut writer, path)) => {
                writer.flush().map_err(SpoolError::Io)?;
                Body::File(Arc::new(path))
            }
            None => Body::Memory(Bytes::from(self.memory)),
        };
        Ok((body, self.space))
    }
}

/// Adds `bytes` to the released-memory count when dropped.
struct ReleasedOnDrop<'a> {
    released: &'a AtomicU64,
    bytes: u64,
}

impl Drop for ReleasedOnDrop<'_> {
    fn drop(&mut self) {
        self.released.fetch_add(self.bytes, Ordering::Relaxed);
    }
}

/// How much of a refused request body is still read, and discarded, before the refusal is sent.
const DRAIN_MAX_BYTES: u64 = 16 << 20;

const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// Whether the client waits for `100 Continue` before sending its body; such a client
/// reads a refusal without sending the body, so nothing needs draining.
pub(super) fn expects_continue(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(hyper::header::EXPECT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"))
}

/// Reads and discards what is left of a refused body, within bounds. A connection
/// closed with request bytes still unread is reset by TCP, and the client then loses
/// the refusal already sent (it sees a broken pipe instead of the 413 fault).
/// Past the bounds the connection is closed anyway.
pub(super) async fn drain(body: &mut Incoming) {
    let deadline = tokio::time::Instant::now() + DRAIN_MAX_TIME;
    let mut drained = 0u64;
    while drained <= DRAIN_MAX_BYTES {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    drained += data.len() as u64;
                }
            }
            _ => break,
        }
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
        long_text.extend(std::iter::repeat_n(
            b'x',
            MAX_MARKUP_FREE_RUN as usize + 100_000,
        ));
        long_text.extend_from_slice(b"</a>");
        assert!(read_all(long_text).is_err());
        let mut many_short = Vec::new();
        for _ in 0..(MAX_MARKUP_FREE_RUN / 1000 + 10) {
            many_short.extend_from_slice(b"<b>");
            many_short.extend(std::iter::repeat_n(b'y', 1000));
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
