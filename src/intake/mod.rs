//! The intake pipeline: a spooled message goes through every check in order and is stored whole or not at all.
//!
//! The stages, in the order a message meets them:
//! - `head`: the head scan, the message read up to its school block (shared with offline
//!   `validate` and the fuzz targets);
//! - `sender`: identify the sender (envelope, mustUnderstand, autorisatie, activation) and
//!   the school-level checks (xsdversie, aanmaakdatum, ordering);
//! - `definitions` (phase 1, a blocking worker thread): replay detection, toets
//!   definitions, the libxml2 schema verdict and the checks that need no store;
//! - `store_pass` (phase 2, the store's writer thread): toets versioning and one streaming
//!   pass over the results that checks each rule and upserts each afname, in one savepoint;
//! - `derived`: the toets total of a sitting, added up from its onderdeel scores;
//! - `offline`: `uwlr-gateway validate`, the store-free checks of every stage.
//!
//! Every refusal leaves through `place`, where its violations get their line and column.

mod definitions;
mod derived;
pub(crate) mod head;
mod offline;
mod sender;
mod store_pass;

pub(crate) use offline::validate_offline;
pub(crate) use sender::{check_school, school_code};
pub(crate) use sender::{Identification, Identity, Scope};

use crate::domain::rules::UnknownVocabularies;
use crate::domain::violation::Violations;
use crate::domain::Clock;
use crate::domain::{Rule, Violation};
use crate::http::body::Body;
use crate::schema::SchemaSet;
use crate::store::intake::{self as store_intake, Counts, Receipt};
use crate::store::{Store, StoreError};
use crate::vdex::Vocabularies;
use definitions::Phase1;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;
use store_pass::Pass;

/// The most toets definitions one message may carry (they are held in memory).
pub(crate) const MAX_TOETSEN: usize = 10_000;

/// Messages up to this size are schema-checked before the store pass; larger ones
/// are checked on a second thread while the store pass runs, and the store pass
/// waits for that verdict before it commits.
pub(crate) const INLINE_VALIDATION_BYTES: u64 = 1 << 20;

/// What to do with results for a leerling the store does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UnknownLeerlingPolicy {
    /// The standard's rule: the message is refused (UWLR-LEERLING).
    Reject,
    /// Stored but held back from the bridge and queries until the learner is imported.
    Quarantine,
}

/// Settings the checks depend on.
#[derive(Clone, Debug)]
pub(crate) struct IntakeConfig {
    pub(crate) xsd_versions: Vec<String>,
    pub(crate) unknown_leerling: UnknownLeerlingPolicy,
    /// How far an aanmaakdatum may lie ahead of `clock` (UWLR-TOEKOMST).
    pub(crate) aanmaakdatum_max_skew: chrono::Duration,
    /// The time mandates and the aanmaakdatum are checked against.
    pub(crate) clock: Clock,
}

/// A request body with what was learned while receiving it.
pub(crate) struct Received {
    pub(crate) body: Body,
    pub(crate) size: u64,
    pub(crate) sha256: String,
    /// The sender's address, for the failed-authentication limit.
    pub(crate) peer: Option<std::net::IpAddr>,
    /// The sender, when it was authenticated on the prefix while the body arrived.
    pub(crate) identity: Option<Box<Identity>>,
}

/// How a message ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Accepted {
        receipt_id: String,
        counts: Counts,
        /// The same bytes were accepted before; nothing changed.
        replay: bool,
        /// The authenticated sender.
        klantcode: String,
    },
    Rejected {
        /// None when the sender could not be identified (no receipt is kept then).
        receipt_id: Option<String>,
        violations: Violations,
        klantcode: Option<String>,
    },
}

/// Failures on our side; the sender gets Server.InterneFout and nothing is stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the spooled message: {0}")]
    Spool(#[from] std::io::Error),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

/// The pipeline, shared by all requests.
#[derive(Clone)]
pub(crate) struct Intake {
    pub(crate) store: Store,
    pub(crate) schemas: SchemaSet,
    pub(crate) vocabularies: Arc<Vocabularies>,
    pub(crate) config: Arc<IntakeConfig>,
    /// Failed authentications per API, klantcode and source network.
    pub(crate) auth_limit: Arc<crate::auth_limit::AuthLimiter>,
}

impl Intake {
    /// Runs every check on a received message and stores it whole or not at all.
    pub(crate) async fn receive(&self, received: Received) -> Result<Outcome, IntakeError> {
        let started = Instant::now();
        let (size, sha256, peer) = (received.size, received.sha256.clone(), received.peer);
        let identity = received.identity;
        // A drip message is checked right here (well under a millisecond); a large
        // one on the blocking pool, so it never holds up the async workers.
        let phase1 = match &received.body {
            Body::Memory(_) => self.phase1(&received.body, size, &sha256, peer, identity)?,
            _ => {
                let this = self.clone();
                let body = received.body.clone();
                tokio::task::spawn_blocking(move || {
                    this.phase1(&body, size, &sha256, peer, identity)
                })
                .await
                .map_err(|error| IntakeError::Worker(error.to_string()))??
            }
        };
        match phase1 {
            Phase1::Refused(violations, klantcode) => Ok(Outcome::Rejected {
                receipt_id: None,
                violations: place(&received.body, violations),
                klantcode,
            }),
            Phase1::Replay(receipt_id, klantcode) => {
                // The receipt read may be of a group not yet durable: answer once it is.
                self.store.synced().await?;
                Ok(Outcome::Accepted {
                    receipt_id,
                    counts: Counts::default(),
                    replay: true,
                    klantcode,
                })
            }
            Phase1::RejectEarly(prepared) => {
                self.write_refusal(*prepared, &received.body, started).await
            }
            Phase1::Ready(prepared) => {
                let vocabularies = self.vocabularies.clone();
                let config = self.config.clone();
                let body = received.body.clone();
                let pass = store_intake::write_message(&self.store, move |writer| {
                    store_pass::run(writer, *prepared, &body, &vocabularies, &config, started)
                })
                .await??;
                match pass {
                    Pass::Done(outcome) => Ok(outcome),
                    Pass::OutOfOrder(prepared, volgorde) => {
                        let this = self.clone();
                        let body = received.body.clone();
                        let prepared = tokio::task::spawn_blocking(move || {
                            this.refuse_before_store_pass(&body, *prepared, vec![volgorde])
                        })
                        .await
                        .map_err(|error| IntakeError::Worker(error.to_string()))??;
                        self.write_refusal(prepared, &received.body, started).await
                    }
                }
            }
        }
    }

    /// Writes the receipt of a message refused before the store pass, nothing else.
    async fn write_refusal(
        &self,
        mut prepared: definitions::Prepared,
        body: &Body,
        started: Instant,
    ) -> Result<Outcome, IntakeError> {
        prepared.receipt.duration_ms = started.elapsed().as_millis() as u64;
        let klantcode = prepared.sender.klantcode.clone();
        let receipt = rejected_receipt(
            prepared.receipt,
            prepared.violations,
            &prepared.unknown_vocabularies,
            body,
        );
        let outcome = Outcome::Rejected {
            receipt_id: Some(receipt.id.clone()),
            violations: receipt.violations.clone(),
            klantcode: Some(klantcode),
        };
        store_intake::write_message(&self.store, move |writer| writer.insert_receipt(&receipt))
            .await??;
        Ok(outcome)
    }
}

/// A receipt as kept: accepted when no rule was broken, else with its faultcode.
fn finish_receipt(
    mut receipt: Receipt,
    violations: Violations,
    unknown: &UnknownVocabularies,
) -> Receipt {
    receipt.accepted = violations.is_empty();
    receipt.faultcode =
        (!violations.is_empty()).then(|| violations.leading_rule().faultcode().to_string());
    receipt.violations = violations;
    receipt.unknown_vocabularies = unknown.iter().cloned().collect();
    receipt
}

/// The receipt of a refused message, its violations placed in `body`.
fn rejected_receipt(
    receipt: Receipt,
    violations: Violations,
    unknown: &UnknownVocabularies,
    body: &Body,
) -> Receipt {
    finish_receipt(receipt, place(body, violations), unknown)
}

/// The one exit of every refusal: violations get their line and column in the message
/// here, with one read of it, and nowhere else.
fn place(body: &Body, mut violations: Violations) -> Violations {
    if let Ok(reader) = body.reader() {
        fill_positions(reader, &mut violations);
    }
    violations
}

/// Turns byte offsets into 1-based line and column numbers, reading the message from `file`.
fn fill_positions(mut file: impl Read, violations: &mut Violations) {
    let mut wanted: Vec<(u64, usize)> = violations
        .items
        .iter()
        .enumerate()
        .filter(|(_, violation)| violation.line.is_none())
        .filter_map(|(index, violation)| violation.offset.map(|offset| (offset, index)))
        .collect();
    if wanted.is_empty() {
        return;
    }
    wanted.sort_unstable();
    let mut buffer = vec![0u8; 256 * 1024];
    let (mut position, mut line, mut line_start) = (0u64, 1u64, 0u64);
    let mut next = 0usize;
    'read: while let Ok(read) = file.read(&mut buffer) {
        if read == 0 {
            break;
        }
        for &byte in &buffer[..read] {
            while next < wanted.len() && wanted[next].0 <= position {
                let violation = &mut violations.items[wanted[next].1];
                violation.line = Some(line);
                violation.column = Some(position - line_start + 1);
                next += 1;
            }
            if next == wanted.len() {
                break 'read;
            }
            position += 1;
            if byte == b'\n' {
                line += 1;
                line_start = position;
            }
        }
    }
    for &(_, index) in &wanted[next..] {
        violations.items[index].line = Some(line);
        violations.items[index].column = Some(position - line_start + 1);
    }
}

/// A rule broken where the message broke off: not well-formed XML at `offset`.
fn broken_off(error: &crate::uwlr::scan::ScanError) -> Violation {
    Violation::new(Rule::Bericht, error.error.to_string()).at_offset(error.offset)
}

/// More toetsen than one message may carry (they are held in memory).
fn too_many_toetsen() -> Violation {
    Violation::new(
        Rule::Bericht,
        format!("more than {MAX_TOETSEN} toetsen in one message; send them in several messages"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_lines_and_columns() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, b"ab\ncde\n\nfg").unwrap();
        let mut violations = Violations::default();
        for offset in [0, 4, 7, 9, 100] {
            violations.push(Violation::new(Rule::Xsd, "x").at_offset(offset));
        }
        let violations = place(&Body::Path(file.path().to_path_buf()), violations);
        let positions: Vec<_> = violations
            .items
            .iter()
            .map(|v| (v.line.unwrap(), v.column.unwrap()))
            .collect();
        assert_eq!(positions, [(1, 1), (2, 2), (3, 1), (4, 2), (4, 3)]);
    }
}
