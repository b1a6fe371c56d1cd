//! Definitions and the schema verdict (phase 1): replay detection, the toets definitions of an identified message, its libxml2 check, and the rules that need no store, all before the writer is asked.

use super::sender::{check_school, Identification, Identity, Scope};
use super::{
    broken_off, too_many_toetsen, Intake, IntakeError, INLINE_VALIDATION_BYTES, MAX_TOETSEN,
};
use crate::domain::rules::{self, UnknownVocabularies};
use crate::domain::violation::Violations;
use crate::domain::{Rule, Violation};
use crate::http::body::Body;
use crate::schema::SchemaError;
use crate::store::admin::Sender;
use crate::store::intake::{self as store_intake, Receipt, ToetsDefinition};
use crate::store::now_text;
use crate::uwlr::results::{Parsed, ResultStream};
use crate::uwlr::scan::{Item, Pass, Scanner};
use crate::uwlr::{School, Toets};
use std::io::BufRead;
use std::sync::mpsc;

/// A schema verdict still being computed on a thread of its own (large messages).
pub(super) type PendingVerdict = mpsc::Receiver<Result<Violations, SchemaError>>;

/// Everything phase 1 learned about an authenticated message.
pub(super) struct Prepared {
    /// The schema verdict still being computed on another thread (large messages).
    pub(crate) pending_validation: Option<PendingVerdict>,
    pub(crate) sender: Sender,
    pub(crate) school: School,
    pub(crate) aanmaakdatum_us: Option<i64>,
    /// UWLR-XSDVERSIE, kept apart: a late schema verdict replaces every other finding but this.
    pub(crate) xsdversie: Option<Violation>,
    pub(crate) toetsen: Vec<ToetsDefinition>,
    /// The results of a small message, parsed on the request's worker so that the
    /// writer thread only does SQL; large messages stream instead.
    pub(crate) parsed_results: Option<Vec<Parsed>>,
    pub(crate) violations: Violations,
    pub(crate) unknown_vocabularies: UnknownVocabularies,
    pub(crate) receipt: Receipt,
}

pub(super) enum Phase1 {
    /// Refused before the sender was identified: no receipt.
    Refused(Violations, Option<String>),
    /// These bytes were accepted before from this client (receipt id, klantcode).
    Replay(String, String),
    /// Identified sender, message refused before the store pass (schema, structure).
    RejectEarly(Box<Prepared>),
    Ready(Box<Prepared>),
}

impl Prepared {
    fn new(sender: Sender, school: School, size: u64, sha256: &str) -> Prepared {
        let receipt = Receipt {
            // Time-ordered (UUIDv7): receipts are appended at the end of their id index
            // instead of dirtying a random page of it in every commit (−18 % WAL volume in a drip).
            id: uuid::Uuid::now_v7().to_string(),
            client_id: sender.client_id,
            school_id: Some(sender.school_id),
            aanmaakdatum: Some(school.aanmaakdatum.clone()),
            schooljaar: Some(school.schooljaar.clone()),
            xsdversie: Some(school.xsdversie.clone()),
            received_at: now_text(),
            size,
            sha256: sha256.to_string(),
            ..Receipt::default()
        };
        Prepared {
            pending_validation: None,
            sender,
            school,
            aanmaakdatum_us: None,
            xsdversie: None,
            toetsen: Vec::new(),
            parsed_results: None,
            violations: Violations::default(),
            unknown_vocabularies: UnknownVocabularies::new(),
            receipt,
        }
    }

    /// Waits for a schema verdict still being computed.
    pub(crate) fn wait_for_verdict(pending: PendingVerdict) -> Result<Violations, IntakeError> {
        pending
            .recv()
            .map_err(|_| IntakeError::Worker("the schema check stopped".into()))?
            .map_err(IntakeError::from)
    }
}

impl Intake {
    /// Phase 1 on a blocking thread (or the request's worker for a drip message).
    pub(super) fn phase1(
        &self,
        body: &Body,
        size: u64,
        sha256: &str,
        peer: Option<std::net::IpAddr>,
        identity: Option<Box<Identity>>,
    ) -> Result<Phase1, IntakeError> {
        let mut scanner = Scanner::new(body.reader()?, Pass::SkipToetsafnames);
        let identity = match self.identity_of(&mut scanner, identity, peer)? {
            Ok(identity) => identity,
            Err(refused) => return Ok(refused),
        };
        let Identity {
            sender,
            school,
            school_node,
        } = *identity;
        if let Some(receipt_id) =
            store_intake::find_accepted(&self.store, sender.client_id, sha256)?
        {
            return Ok(Phase1::Replay(receipt_id, sender.klantcode.clone()));
        }
        let mut prepared = Prepared::new(sender, school, size, sha256);
        let not_well_formed = read_toetsen(&mut scanner, &mut prepared);
        drop(scanner);
        let toetsen: Vec<Toets> = prepared
            .toetsen
            .iter()
            .map(|definition| definition.toets.clone())
            .collect();
        prepared
            .violations
            .extend(rules::check_toetsen_identity(&toetsen));
        self.schema_verdict(body, size, not_well_formed, &mut prepared)?;
        if !prepared.violations.is_empty() {
            if let Some(pending) = prepared.pending_validation.take() {
                let verdict = Prepared::wait_for_verdict(pending)?;
                prepared.violations.extend(verdict.items);
            }
            // Content rules run only on schema-valid messages: on a broken tree they report noise.
            return Ok(Phase1::RejectEarly(Box::new(prepared)));
        }
        let checks = check_school(
            &prepared.school,
            &school_node,
            &self.config.xsd_versions,
            self.config.clock.now(),
            self.config.aanmaakdatum_max_skew,
        );
        prepared.aanmaakdatum_us = checks.aanmaakdatum_us;
        prepared.xsdversie = checks.xsdversie.clone();
        for definition in &prepared.toetsen {
            let found = rules::check_toets(
                &definition.toets,
                &self.vocabularies,
                &mut prepared.unknown_vocabularies,
            );
            prepared.violations.extend(found);
        }
        let school_block: Vec<Violation> = checks.violations().collect();
        if !school_block.is_empty() {
            // The school block condemns the whole message: refused before the store pass.
            let prepared = self.refuse_before_store_pass(body, prepared, school_block)?;
            return Ok(Phase1::RejectEarly(Box::new(prepared)));
        }
        if let Body::Memory(_) = body {
            prepared.parsed_results = Some(ResultStream::open(body, false)?.collect());
        }
        Ok(Phase1::Ready(Box::new(prepared)))
    }

    /// Completes the violations of a message refused before the store pass, by a rule
    /// decided on its school block alone (`school_block`: xsdversie, aanmaakdatum, or the
    /// ordering rule on the writer), without holding the writer. What no store pass will
    /// find now is asked of libxml2: a large message's streaming verdict is waited for, a
    /// small one is checked again with the full contract for the identity constraints on
    /// its results (kResultaat, krAfnameToets), which the store pass would have found.
    /// As for a late verdict, on a schema-invalid message only the schema findings count,
    /// beside the school block's own; the results' business rules stay unknown.
    pub(super) fn refuse_before_store_pass(
        &self,
        body: &Body,
        mut prepared: Prepared,
        school_block: Vec<Violation>,
    ) -> Result<Prepared, IntakeError> {
        let verdict = match prepared.pending_validation.take() {
            Some(pending) => Prepared::wait_for_verdict(pending)?,
            None if matches!(body, Body::Memory(_)) => {
                crate::schema::validate(&self.schemas.full, body)?
            }
            None => Violations::default(),
        };
        let mut violations: Violations = Violations::default();
        violations.extend(school_block);
        if verdict.is_empty() {
            violations.extend(std::mem::take(&mut prepared.violations).items);
        } else {
            violations.extend(verdict.items);
        }
        prepared.violations = violations;
        Ok(prepared)
    }

    /// The sender: identified on the prefix while the body arrived (the scanner is then
    /// moved past the school block), or now, on the whole body.
    fn identity_of<R: BufRead>(
        &self,
        scanner: &mut Scanner<R>,
        identity: Option<Box<Identity>>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Result<Box<Identity>, Phase1>, IntakeError> {
        let Some(identity) = identity else {
            return Ok(match self.identify_with(scanner, Scope::Whole, peer)? {
                Identification::Sender(identity) => Ok(identity),
                Identification::Refused(violations, klantcode) => {
                    Err(Phase1::Refused(violations, klantcode))
                }
                Identification::Incomplete => {
                    return Err(IntakeError::Worker(
                        "a whole body was read as a prefix".into(),
                    ))
                }
            });
        };
        loop {
            match scanner.next() {
                Ok(Some(Item::School(_))) => return Ok(Ok(identity)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    let violation = Violation::new(
                        Rule::Bericht,
                        "the message could not be read again up to its school block",
                    );
                    return Ok(Err(Phase1::Refused(
                        Violations::single(violation),
                        Some(identity.sender.klantcode),
                    )));
                }
            }
        }
    }

    /// The libxml2 check with the streaming contract: now for a small message or one
    /// already refused, else on a thread of its own while the store pass runs.
    fn schema_verdict(
        &self,
        body: &Body,
        size: u64,
        not_well_formed: bool,
        prepared: &mut Prepared,
    ) -> Result<(), IntakeError> {
        if not_well_formed {
            // libxml2 would only repeat that the body is broken, and some broken
            // bodies the scanner refuses (a tag with a million attributes) take
            // libxml2 quadratic time.
        } else if size <= INLINE_VALIDATION_BYTES || !prepared.violations.is_empty() {
            prepared
                .violations
                .extend(crate::schema::validate(&self.schemas.streaming, body)?.items);
        } else {
            let (verdict, receiver) = mpsc::sync_channel(1);
            let driver = self.schemas.streaming.clone();
            let body = body.clone();
            std::thread::Builder::new()
                .name("schema-check".into())
                .spawn(move || {
                    let _ = verdict.send(crate::schema::validate(&driver, &body));
                })?;
            prepared.pending_validation = Some(receiver);
        }
        Ok(())
    }
}

/// The rest of the definitions pass: toets definitions (results are skipped). True when
/// the message broke off (not well-formed).
fn read_toetsen<R: BufRead>(scanner: &mut Scanner<R>, prepared: &mut Prepared) -> bool {
    loop {
        match scanner.next() {
            Ok(Some(Item::Toets(node))) => {
                if prepared.toetsen.len() >= MAX_TOETSEN {
                    prepared
                        .violations
                        .push(too_many_toetsen().at_offset(node.offset));
                    return false;
                }
                prepared
                    .toetsen
                    .push(ToetsDefinition::new(Toets::from_node(&node)));
            }
            Ok(Some(_)) => {}
            Ok(None) => return false,
            Err(error) => {
                prepared.violations.push(broken_off(&error));
                return true;
            }
        }
    }
}
