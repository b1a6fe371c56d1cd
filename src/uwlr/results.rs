//! The results of a message as a stream of parsed items, optionally parsed on a second thread.
//!
//! The store pass is the slowest stage of a large batch; parsing ahead on the
//! other core lets it spend its time on SQLite only. The channel is bounded, so
//! parsing never runs more than a few thousand results ahead.

use super::scan::{Item, Pass, ScanError, Scanner};
use super::xmltree::Node;
use super::Resultaat;
use crate::http::body::{Body, BodyReader};
use std::sync::mpsc;

/// One step of the results walk.
#[derive(Debug)]
pub(crate) enum Parsed {
    ToetsafnameStart {
        offset: u64,
    },
    /// leerlingid, eckid or resultaatverwerkerid of the current toetsafname.
    AfnameField(Node),
    Resultaat(Resultaat),
    ToetsafnameEnd,
    /// The document broke off; nothing follows.
    Failed(ScanError),
}

const CHUNK: usize = 512;
const CHUNKS_AHEAD: usize = 8;

/// Results in document order.
pub(crate) enum ResultStream {
    /// Boxed: a scanner is large, and the other variants are two pointers.
    Inline(Box<Scanner<BodyReader>>, bool),
    Threaded(mpsc::Receiver<Vec<Parsed>>, std::vec::IntoIter<Parsed>),
    /// Results parsed earlier (small messages).
    Parsed(std::vec::IntoIter<Parsed>),
}

fn next_parsed(scanner: &mut Scanner<BodyReader>) -> Option<Parsed> {
    loop {
        return match scanner.next() {
            Ok(None) => None,
            Err(error) => Some(Parsed::Failed(error)),
            Ok(Some(Item::ToetsafnameStart { offset })) => {
                Some(Parsed::ToetsafnameStart { offset })
            }
            Ok(Some(Item::AfnameField(node))) => Some(Parsed::AfnameField(node)),
            Ok(Some(Item::Resultaat(node))) => Some(Parsed::Resultaat(Resultaat::from_node(&node))),
            Ok(Some(Item::ToetsafnameEnd)) => Some(Parsed::ToetsafnameEnd),
            Ok(Some(_)) => continue,
        };
    }
}

impl ResultStream {
    /// Opens the results of a message; `ahead` parses on a thread of its own.
    pub(crate) fn open(body: &Body, ahead: bool) -> std::io::Result<ResultStream> {
        let mut scanner = Scanner::new(body.reader()?, Pass::Everything);
        if !ahead {
            return Ok(ResultStream::Inline(Box::new(scanner), false));
        }
        let (sender, receiver) = mpsc::sync_channel::<Vec<Parsed>>(CHUNKS_AHEAD);
        std::thread::Builder::new()
            .name("result-parser".into())
            .spawn(move || {
                let mut chunk = Vec::with_capacity(CHUNK);
                while let Some(parsed) = next_parsed(&mut scanner) {
                    let failed = matches!(parsed, Parsed::Failed(_));
                    chunk.push(parsed);
                    let full = chunk.len() == CHUNK || failed;
                    if full
                        && (sender
                            .send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                            .is_err()
                            || failed)
                    {
                        return;
                    }
                }
                let _ = sender.send(chunk);
            })?;
        Ok(ResultStream::Threaded(receiver, Vec::new().into_iter()))
    }
}

impl Iterator for ResultStream {
    type Item = Parsed;

    fn next(&mut self) -> Option<Parsed> {
        match self {
            ResultStream::Inline(scanner, done) => {
                if *done {
                    return None;
                }
                let parsed = next_parsed(scanner);
                *done = matches!(parsed, None | Some(Parsed::Failed(_)));
                parsed
            }
            ResultStream::Parsed(parsed) => parsed.next(),
            ResultStream::Threaded(receiver, current) => loop {
                if let Some(parsed) = current.next() {
                    return Some(parsed);
                }
                *current = receiver.recv().ok()?.into_iter();
            },
        }
    }
}
