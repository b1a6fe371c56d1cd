//! The intake pipeline: a spooled message goes through every check in order and is stored whole or not at all.
//!
//! Phase 1 (a blocking worker thread): envelope, autorisatie and activation, replay
//! detection, toets definitions, the libxml2 schema check and the checks that need
//! no store. Phase 2 (the store's writer thread): the ordering rule, toets
//! versioning, and one streaming pass over the results that checks each rule and
//! upserts each afname, all inside one savepoint.

use crate::auth_limit::{Api, Attempt};
use crate::body::{Body, MarkupGuard};
use crate::clock::Clock;
use crate::domain::rules::{self, UnknownVocabularies};
use crate::domain::violation::Violations;
use crate::domain::{Rule, SchoolCode, Violation};
use crate::schema::SchemaSet;
use crate::soap::envelope::{self, Framing};
use crate::store::admin::{self, Sender};
use crate::store::intake::{
    self as store_intake, AfnameChange, AfnameState, AfnameWrite, Counts, Owner, Receipt,
    StoredToets, ToetsDefinition,
};
use crate::store::{now_text, sha256_hex, Store, StoreError};
use crate::uwlr::results::{Parsed, ResultStream};
use crate::uwlr::scan::{Item, Pass, Root, Scanner};
use crate::uwlr::xmltree::Node;
use crate::uwlr::{Resultaat, School, Toets, ToetsafnameHead, Uitslag};
use crate::vdex::Vocabularies;
use rusqlite::Connection;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

/// The most toets definitions one message may carry (they are held in memory).
pub const MAX_TOETSEN: usize = 10_000;

/// Messages up to this size are schema-checked before the store pass; larger ones
/// are checked on a second thread while the store pass runs, and the store pass
/// waits for that verdict before it commits.
pub const INLINE_VALIDATION_BYTES: u64 = 1 << 20;

/// What to do with results for a leerling the store does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownLeerlingPolicy {
    /// The standard's rule: the message is refused (UWLR-LEERLING).
    Reject,
    /// Stored but held back from the bridge and queries until the learner is imported.
    Quarantine,
}

/// Settings the checks depend on.
#[derive(Clone, Debug)]
pub struct IntakeConfig {
    pub xsd_versions: Vec<String>,
    pub unknown_leerling: UnknownLeerlingPolicy,
    /// How far an aanmaakdatum may lie ahead of `clock` (UWLR-TOEKOMST).
    pub aanmaakdatum_max_skew: chrono::Duration,
    /// The time mandates and the aanmaakdatum are checked against.
    pub clock: Clock,
}

/// A request body with what was learned while receiving it.
pub struct Received {
    pub body: Body,
    pub size: u64,
    pub sha256: String,
    /// The sender's address, for the failed-authentication limit.
    pub peer: Option<std::net::IpAddr>,
    /// The sender, when it was authenticated on the prefix while the body arrived.
    pub identity: Option<Box<Identity>>,
}

/// How much of a message `Intake::identify` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The whole body.
    Whole,
    /// The start of a body still arriving; more may follow.
    Prefix,
    /// The most of a body that may be read before authentication (`preauth_max_bytes`).
    LastPrefix { length: u64 },
}

/// What the start of a message says about its sender.
pub enum Identification {
    /// The prefix ends before the autorisatie header and the school block.
    Incomplete,
    /// Refused before the sender was identified (no receipt is kept).
    Refused(Violations, Option<String>),
    /// Authenticated and activated for the school.
    Sender(Box<Identity>),
}

/// An authenticated sender and the school block it sends for.
pub struct Identity {
    pub sender: Sender,
    school: School,
    school_node: Node,
}

/// How a message ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
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
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the spooled message: {0}")]
    Spool(#[from] std::io::Error),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

impl From<rusqlite::Error> for IntakeError {
    fn from(error: rusqlite::Error) -> Self {
        IntakeError::Store(StoreError::Sqlite(error))
    }
}

/// Everything phase 1 learned about an authenticated message.
struct Prepared {
    /// The schema verdict still being computed on another thread (large messages).
    pending_validation: Option<mpsc::Receiver<Result<Violations, crate::schema::SchemaError>>>,
    sender: Sender,
    school: School,
    aanmaakdatum_us: Option<i64>,
    toetsen: Vec<ToetsDefinition>,
    /// The results of a small message, parsed on the request's worker so that the
    /// writer thread only does SQL; large messages stream instead.
    parsed_results: Option<Vec<Parsed>>,
    violations: Violations,
    unknown_vocabularies: UnknownVocabularies,
    receipt: Receipt,
}

enum Phase1 {
    /// Refused before the sender was identified: no receipt.
    Refused(Violations, Option<String>),
    /// These bytes were accepted before from this client (receipt id, klantcode).
    Replay(String, String),
    /// Identified sender, message refused before the store pass (schema, structure).
    RejectEarly(Box<Prepared>),
    Ready(Box<Prepared>),
}

/// The pipeline, shared by all requests.
#[derive(Clone)]
pub struct Intake {
    pub store: Store,
    pub schemas: SchemaSet,
    pub vocabularies: Arc<Vocabularies>,
    pub config: Arc<IntakeConfig>,
    /// Failed authentications per API, klantcode and source network.
    pub auth_limit: Arc<crate::auth_limit::AuthLimiter>,
}

impl Intake {
    /// Runs every check on a received message and stores it whole or not at all.
    pub async fn receive(&self, received: Received) -> Result<Outcome, IntakeError> {
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
                violations,
                klantcode,
            }),
            Phase1::Replay(receipt_id, klantcode) => Ok(Outcome::Accepted {
                receipt_id,
                counts: Counts::default(),
                replay: true,
                klantcode,
            }),
            Phase1::RejectEarly(prepared) => {
                let mut prepared = *prepared;
                prepared.receipt.duration_ms = started.elapsed().as_millis() as u64;
                let receipt = finish_receipt(
                    prepared.receipt,
                    prepared.violations,
                    &prepared.unknown_vocabularies,
                );
                let outcome = Outcome::Rejected {
                    receipt_id: Some(receipt.id.clone()),
                    violations: receipt.violations.clone(),
                    klantcode: Some(prepared.sender.klantcode.clone()),
                };
                self.store
                    .write(move |connection| store_intake::insert_receipt(connection, &receipt))
                    .await??;
                Ok(outcome)
            }
            Phase1::Ready(prepared) => {
                let vocabularies = self.vocabularies.clone();
                let config = self.config.clone();
                let body = received.body.clone();
                self.store
                    .write(move |connection| {
                        phase2(
                            connection,
                            *prepared,
                            &body,
                            &vocabularies,
                            &config,
                            started,
                        )
                    })
                    .await?
            }
        }
    }

    /// Reads the start of a message up to its school block and authenticates the sender.
    ///
    /// `http` calls this on the received prefix while the body is still arriving, so a
    /// wrong key is answered before the rest is read; phase 1 calls it on a whole body
    /// that arrived before it could. Either way the sender is authenticated once.
    pub fn identify(
        &self,
        prefix: &[u8],
        scope: Scope,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Identification, IntakeError> {
        let mut scanner = Scanner::new(MarkupGuard::new(prefix), Pass::SkipToetsafnames);
        let fill = |violations: &mut Violations| fill_positions_from(prefix, violations);
        self.identify_with(&mut scanner, &fill, scope, peer)
    }

    /// `fill` gives violations their line and column in the message.
    fn identify_with<R: std::io::BufRead>(
        &self,
        scanner: &mut Scanner<R>,
        fill: &dyn Fn(&mut Violations),
        scope: Scope,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Identification, IntakeError> {
        match read_sender_blocks(scanner, fill, scope) {
            Ok(blocks) => self.authenticate(blocks, peer),
            Err(identification) => Ok(identification),
        }
    }

    /// Checks the autorisatie header against the store: key, klant, activation for the school.
    fn authenticate(
        &self,
        blocks: SenderBlocks,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Identification, IntakeError> {
        let SenderBlocks {
            autorisatie,
            school,
            school_node,
            school_code,
        } = blocks;

        let attempt = Attempt {
            api: Api::Soap,
            klantcode: Some(&autorisatie.klantcode),
            address: peer,
        };
        if self.auth_limit.is_locked(&attempt) {
            // The same answer as a wrong key, and no key check: a locked-out guesser learns nothing.
            tracing::info!(klantcode = crate::logging::clip(&autorisatie.klantcode).as_ref(), peer = ?peer, "authentication locked out after repeated failures");
            return Ok(Identification::Refused(
                Violations::single(admin::wrong_key_violation()),
                Some(autorisatie.klantcode),
            ));
        }
        let today = self.config.clock.today();
        match self.store.read(|connection| {
            admin::authenticate(
                connection,
                &autorisatie.klantcode,
                &autorisatie.klantnaam,
                &autorisatie.autorisatiesleutel,
                &school_code,
                today,
            )
        })? {
            Ok(sender) => Ok(Identification::Sender(Box::new(Identity {
                sender,
                school,
                school_node,
            }))),
            Err(violation) => {
                if matches!(violation.rule, Rule::Klant | Rule::Autorisatie) {
                    self.auth_limit.record_failure(&attempt);
                }
                Ok(Identification::Refused(
                    Violations::single(violation),
                    Some(autorisatie.klantcode),
                ))
            }
        }
    }

    fn phase1(
        &self,
        body: &Body,
        size: u64,
        sha256: &str,
        peer: Option<std::net::IpAddr>,
        identity: Option<Box<Identity>>,
    ) -> Result<Phase1, IntakeError> {
        let mut scanner = Scanner::new(body.reader()?, Pass::SkipToetsafnames);
        let identity = match identity {
            // Identified on the prefix while the body arrived: move the scanner past the school block.
            Some(identity) => loop {
                match scanner.next() {
                    Ok(Some(Item::School(_))) => break identity,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        return Ok(Phase1::Refused(
                            Violations::single(Violation::new(
                                Rule::Bericht,
                                "the message could not be read again up to its school block",
                            )),
                            Some(identity.sender.klantcode),
                        ))
                    }
                }
            },
            None => match self.identify_with(
                &mut scanner,
                &|violations| fill_positions(body, violations),
                Scope::Whole,
                peer,
            )? {
                Identification::Sender(identity) => identity,
                Identification::Refused(violations, klantcode) => {
                    return Ok(Phase1::Refused(violations, klantcode))
                }
                Identification::Incomplete => {
                    return Err(IntakeError::Worker(
                        "a whole body was read as a prefix".into(),
                    ))
                }
            },
        };
        let Identity {
            sender,
            school,
            school_node,
        } = *identity;
        if let Some(receipt_id) = self.store.read(|connection| {
            store_intake::accepted_duplicate(connection, sender.client_id, sha256)
        })? {
            return Ok(Phase1::Replay(receipt_id, sender.klantcode.clone()));
        }
        let mut prepared = Prepared {
            pending_validation: None,
            receipt: Receipt {
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
            },
            sender,
            school,
            aanmaakdatum_us: None,
            toetsen: Vec::new(),
            parsed_results: None,
            violations: Violations::default(),
            unknown_vocabularies: UnknownVocabularies::new(),
        };
        // The rest of the definitions pass: toets definitions (results are skipped).
        let mut not_well_formed = false;
        loop {
            match scanner.next() {
                Ok(Some(Item::Toets(node))) => {
                    if prepared.toetsen.len() >= MAX_TOETSEN {
                        prepared.violations.push(too_many_toetsen());
                        break;
                    }
                    prepared
                        .toetsen
                        .push(ToetsDefinition::new(Toets::from_node(&node)));
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => {
                    prepared.violations.push(
                        Violation::new(Rule::Bericht, error.error.to_string())
                            .at_offset(error.offset),
                    );
                    not_well_formed = true;
                    break;
                }
            }
        }
        drop(scanner);
        let toetsen: Vec<Toets> = prepared
            .toetsen
            .iter()
            .map(|definition| definition.toets.clone())
            .collect();
        prepared
            .violations
            .extend(rules::check_toetsen_identity(&toetsen));
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
        if !prepared.violations.is_empty() {
            if let Some(pending) = prepared.pending_validation.take() {
                let verdict = pending
                    .recv()
                    .map_err(|_| IntakeError::Worker("the schema check stopped".into()))??;
                prepared.violations.extend(verdict.items);
            }
            // Content rules run only on schema-valid messages: on a broken tree they report noise.
            fill_positions(body, &mut prepared.violations);
            return Ok(Phase1::RejectEarly(Box::new(prepared)));
        }
        // A business rule: phase 2 still runs, so the identity constraints it checks
        // are reported too (the schema verdict never depends on the xsdversie).
        if let Some(violation) = rules::check_xsdversie(&prepared.school, &self.config.xsd_versions)
        {
            prepared
                .violations
                .push(at_child(violation, &school_node, "xsdversie"));
        }
        match rules::read_aanmaakdatum(&prepared.school) {
            Ok(micros) => {
                prepared.aanmaakdatum_us = Some(micros);
                if let Some(violation) = crate::domain::aanmaakdatum::check_not_future(
                    &prepared.school.aanmaakdatum,
                    micros,
                    self.config.clock.now(),
                    self.config.aanmaakdatum_max_skew,
                ) {
                    prepared
                        .violations
                        .push(at_child(violation, &school_node, "aanmaakdatum"));
                }
            }
            Err(violation) => prepared.violations.push(violation),
        }
        for definition in &prepared.toetsen {
            let found = rules::check_toets(
                &definition.toets,
                &self.vocabularies,
                &mut prepared.unknown_vocabularies,
            );
            prepared.violations.extend(found);
        }
        if let Body::Memory(_) = body {
            prepared.parsed_results = Some(ResultStream::open(body, false)?.collect());
        }
        Ok(Phase1::Ready(Box::new(prepared)))
    }
}

/// The blocks that say who sends a message and for which school.
struct SenderBlocks {
    autorisatie: crate::uwlr::Autorisatie,
    school: School,
    school_node: Node,
    school_code: SchoolCode,
}

/// Reads a message up to its school block: the envelope, mustUnderstand, the
/// autorisatie header and the school. Anything that ends identification before the
/// store is asked comes back as `Err`.
fn read_sender_blocks<R: std::io::BufRead>(
    scanner: &mut Scanner<R>,
    fill: &dyn Fn(&mut Violations),
    scope: Scope,
) -> Result<SenderBlocks, Identification> {
    let mut root: Option<Root> = None;
    let mut headers: Vec<Node> = Vec::new();
    let mut not_understood: Option<Violation> = None;
    let mut body_element: Option<(Option<String>, String)> = None;
    let mut school_node: Option<Node> = None;
    let mut violations = Violations::default();
    // Read up to the school block: enough to identify and authorise the sender.
    loop {
        match scanner.next() {
            Ok(Some(Item::Root(found))) => {
                // Anything but a SOAP 1.1 envelope is refused whatever follows.
                let refused = found != Root::Soap11Envelope;
                root = Some(found);
                if refused {
                    break;
                }
            }
            Ok(Some(Item::HeaderElement(node))) => {
                if headers.len() < 16 {
                    headers.push(node);
                }
            }
            Ok(Some(Item::UnknownHeader {
                namespace,
                name,
                must_understand: true,
                offset,
            })) => {
                not_understood.get_or_insert_with(|| {
                    envelope::not_understood(namespace.as_deref(), &name).at_offset(offset)
                });
            }
            Ok(Some(Item::BodyElement {
                namespace, name, ..
            })) => {
                let refused = namespace.as_deref() != Some(crate::uwlr::NS_LEERRESULTATEN)
                    || name != envelope::BODY_ELEMENT;
                body_element = Some((namespace, name));
                if refused {
                    break;
                }
            }
            Ok(Some(Item::School(node))) => {
                school_node = Some(node);
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error) => {
                match scope {
                    Scope::Prefix => return Err(Identification::Incomplete),
                    // The prefix may end inside a construct: an error at its very end says nothing.
                    Scope::LastPrefix { length } if error.offset + 1024 >= length => {
                        violations.push(envelope::identity_not_in_prefix(length));
                    }
                    _ => violations.push(
                        Violation::new(Rule::Bericht, error.error.to_string())
                            .at_offset(error.offset),
                    ),
                }
                break;
            }
        }
    }
    if !violations.is_empty() {
        fill(&mut violations);
        return Err(Identification::Refused(violations, None));
    }
    if let Err(violation) = envelope::check_root(
        root.as_ref(),
        body_element
            .as_ref()
            .map(|(namespace, name)| (namespace, name.as_str())),
        Framing::SoapOnly,
    ) {
        return Err(Identification::Refused(Violations::single(violation), None));
    }
    if let Some(violation) = not_understood {
        let mut violations = Violations::single(violation);
        fill(&mut violations);
        return Err(Identification::Refused(violations, None));
    }
    let autorisatie = match envelope::autorisatie(&headers) {
        Ok(autorisatie) => autorisatie,
        Err(found) => {
            violations.extend(found);
            fill(&mut violations);
            return Err(Identification::Refused(violations, None));
        }
    };
    let Some(school_node) = school_node else {
        return Err(Identification::Refused(
            Violations::single(
                Violation::new(Rule::Xsd, "the verzoek has no school block").at_path("school"),
            ),
            Some(autorisatie.klantcode),
        ));
    };
    let school = School::from_node(&school_node);
    let Some(school_code) = SchoolCode::from_parts(
        school.brincode.as_deref(),
        school.dependancecode.as_deref(),
        school.schoolkey.as_deref(),
    ) else {
        return Err(Identification::Refused(
            Violations::single(
                Violation::new(Rule::Xsd, "the school has neither brincode nor schoolkey")
                    .at_path("school"),
            ),
            Some(autorisatie.klantcode),
        ));
    };
    Ok(SenderBlocks {
        autorisatie,
        school,
        school_node,
        school_code,
    })
}

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

/// Notes the key of a result skipped for a rule it broke, and reports it when the
/// message holds that key already (kResultaat must not depend on the other rules).
fn note_skipped(
    savepoint: &rusqlite::Savepoint,
    write: &AfnameWrite,
    skipped_keys: &mut bool,
    head: &ToetsafnameHead,
    resultaat: &Resultaat,
    violations: &mut Violations,
) -> Result<(), IntakeError> {
    if !*skipped_keys {
        store_intake::begin_skipped_keys(savepoint)?;
        *skipped_keys = true;
    }
    if store_intake::note_skipped_key(savepoint, write, &resultaat.key)? {
        violations.push(duplicate_key_violation(head, resultaat));
    }
    Ok(())
}

fn duplicate_key_violation(head: &ToetsafnameHead, resultaat: &Resultaat) -> Violation {
    Violation::new(
        Rule::Xsd,
        format!(
            "key kResultaat: resultaat key {} occurs more than once in this message",
            resultaat.key
        ),
    )
    .at_path(rules::resultaat_path(&head.leerlingid, resultaat))
    .with_value(&resultaat.key)
    .at_offset(resultaat.offset)
}

/// Phase 2, on the writer thread inside the group transaction.
fn phase2(
    connection: &mut Connection,
    prepared: Prepared,
    body: &Body,
    vocabularies: &Vocabularies,
    config: &IntakeConfig,
    started: Instant,
) -> Result<Outcome, IntakeError> {
    let Prepared {
        pending_validation,
        sender,
        school,
        aanmaakdatum_us,
        toetsen,
        parsed_results,
        mut violations,
        mut unknown_vocabularies,
        mut receipt,
    } = prepared;
    // A twin of this message may have been accepted while this one waited.
    if let Some(receipt_id) =
        store_intake::accepted_duplicate(connection, sender.client_id, &receipt.sha256)?
    {
        return Ok(Outcome::Accepted {
            receipt_id,
            counts: Counts::default(),
            replay: true,
            klantcode: sender.klantcode.clone(),
        });
    }
    let mut counts = Counts {
        toetsen: toetsen.len() as u64,
        ..Counts::default()
    };
    let savepoint = connection.savepoint()?;
    if let Some(micros) = aanmaakdatum_us {
        if let Some((last_micros, last_text)) =
            store_intake::last_aanmaakdatum(&savepoint, sender.client_id, sender.school_id)?
        {
            if micros <= last_micros {
                violations.push(
                    Violation::new(
                        Rule::Volgorde,
                        format!(
                            "aanmaakdatum must be later than that of the last accepted message for this school ({last_text})"
                        ),
                    )
                    .at_path("school/aanmaakdatum")
                    .with_value(&school.aanmaakdatum),
                );
            }
        }
    }
    // Toetsen and afnames belong to the sender: another client's rows are never looked at.
    let owner = Owner {
        school_id: sender.school_id,
        client_id: sender.client_id,
    };
    // Step 6: toets definitions. Each message toets pins its own version.
    let mut message_versions: HashMap<String, String> = HashMap::new();
    let mut pinned: HashMap<(String, String), Option<Arc<StoredToets>>> = HashMap::new();
    for definition in toetsen {
        let (id, _change) =
            store_intake::upsert_toets(&savepoint, owner, &definition, &receipt.id)?;
        let code = definition.toets.toetscode.waarde.clone();
        let versie = definition.toets.versie_text().to_string();
        message_versions.insert(code.clone(), versie.clone());
        pinned.insert(
            (code, versie),
            Some(Arc::new(StoredToets {
                id,
                definition: definition.toets,
            })),
        );
    }
    // Step 4 and 7: every result, streamed.
    let mut change_seq = store_intake::read_change_seq(&savepoint)?;
    let feed_offset = store_intake::feed_offset(&savepoint, sender.school_id, change_seq)?;
    let stream = match parsed_results {
        Some(parsed) => ResultStream::Parsed(parsed.into_iter()),
        None => ResultStream::open(body, body.len()? > INLINE_VALIDATION_BYTES)?,
    };
    let mut head = ToetsafnameHead::default();
    let mut leerling_state: Option<bool> = None;
    // Per toets version and afnamedatum: a sitting (README, Derived sums).
    let mut sums: BTreeMap<(String, String, String), rules::DerivedSum> = BTreeMap::new();
    // Whether some result was skipped for a rule it broke; see `store_intake::begin_skipped_keys`.
    let mut skipped_keys = false;
    let aanmaakdatum_text = school.aanmaakdatum.clone();
    let receipt_id = receipt.id.clone();
    let write_for = |quarantined: bool| AfnameWrite {
        owner,
        aanmaakdatum: &aanmaakdatum_text,
        receipt_id: &receipt_id,
        quarantined,
        feed_offset,
    };
    for parsed in stream {
        match parsed {
            Parsed::Failed(error) => {
                violations.push(
                    Violation::new(Rule::Bericht, error.error.to_string()).at_offset(error.offset),
                );
                break;
            }
            Parsed::ToetsafnameStart { offset } => {
                head = ToetsafnameHead {
                    offset,
                    ..ToetsafnameHead::default()
                };
                leerling_state = None;
                sums.clear();
                counts.toetsafnames += 1;
            }
            Parsed::AfnameField(node) => head.set_field(&node),
            Parsed::Resultaat(resultaat) => {
                counts.resultaten += 1;
                let quarantined = match leerling_state {
                    Some(known) => !known,
                    None => {
                        let known = admin::leerling_known(
                            &savepoint,
                            sender.school_id,
                            &head.leerlingid,
                            head.eckid.as_deref(),
                        )?;
                        leerling_state = Some(known);
                        if !known && config.unknown_leerling == UnknownLeerlingPolicy::Reject {
                            violations.push(
                                Violation::new(
                                    Rule::Leerling,
                                    "leerling is not known for this school",
                                )
                                .at_path(format!(
                                    "toetsafname[leerlingid={}]/leerlingid",
                                    head.leerlingid
                                ))
                                .with_value(&head.leerlingid)
                                .at_offset(head.offset),
                            );
                        }
                        !known
                    }
                };
                if !message_versions.contains_key(&resultaat.toetscode) {
                    violations.push(
                        Violation::new(
                            Rule::Xsd,
                            format!(
                                "keyref krAfnameToets: toetscode {} is not defined in the toetsen of this message",
                                resultaat.toetscode
                            ),
                        )
                        .at_path(format!("{}/toetscode", rules::resultaat_path(&head.leerlingid, &resultaat)))
                        .with_value(&resultaat.toetscode)
                        .at_offset(resultaat.offset),
                    );
                    // kResultaat must not depend on the other rules: its key still counts.
                    note_skipped(
                        &savepoint,
                        &write_for(quarantined),
                        &mut skipped_keys,
                        &head,
                        &resultaat,
                        &mut violations,
                    )?;
                    continue;
                }
                let versie = rules::pinned_versie(&resultaat, &message_versions);
                let pin_key = (resultaat.toetscode.clone(), versie.clone());
                let definition = match pinned.get(&pin_key) {
                    Some(found) => found.clone(),
                    None => {
                        let loaded =
                            store_intake::load_toets(&savepoint, owner, &pin_key.0, &pin_key.1)?
                                .map(Arc::new);
                        if pinned.len() < 100_000 {
                            pinned.insert(pin_key.clone(), loaded.clone());
                        }
                        loaded
                    }
                };
                let Some(definition) = definition else {
                    note_skipped(
                        &savepoint,
                        &write_for(quarantined),
                        &mut skipped_keys,
                        &head,
                        &resultaat,
                        &mut violations,
                    )?;
                    violations.push(
                        Violation::new(
                            Rule::ToetsVersie,
                            format!(
                                "toets {} has no versie '{versie}' in this message or in earlier ones",
                                resultaat.toetscode
                            ),
                        )
                        .at_path(format!("{}/versie", rules::resultaat_path(&head.leerlingid, &resultaat)))
                        .with_value(&versie)
                        .at_offset(resultaat.offset),
                    );
                    continue;
                };
                let found = rules::check_resultaat(
                    &head.leerlingid,
                    &resultaat,
                    &definition.definition,
                    vocabularies,
                    &mut unknown_vocabularies,
                );
                if !found.is_empty() {
                    violations.extend(found);
                    note_skipped(
                        &savepoint,
                        &write_for(quarantined),
                        &mut skipped_keys,
                        &head,
                        &resultaat,
                        &mut violations,
                    )?;
                    continue;
                }
                // Rows are written even when the message already broke a rule (the
                // savepoint is rolled back then): the store is what finds a key
                // that occurs twice in one message, without holding every key in memory.
                let state = AfnameState {
                    afname_key: resultaat.key.clone(),
                    leerlingid: head.leerlingid.clone(),
                    eckid: head.eckid.clone(),
                    resultaatverwerkerid: head.resultaatverwerkerid.clone(),
                    toets_id: definition.id,
                    toetscode: resultaat.toetscode.clone(),
                    versie: versie.clone(),
                    toetsonderdeelcode: resultaat.toetsonderdeelcode.clone(),
                    afnamedatum: resultaat.afnamedatum.clone(),
                    score: match resultaat.uitslag {
                        Uitslag::Score(Some(score)) => i64::try_from(score).ok(),
                        _ => None,
                    },
                    derived: false,
                    result: stored_result(&resultaat),
                };
                let skipped_twin =
                    skipped_keys && store_intake::is_skipped_key(&savepoint, &resultaat.key)?;
                let change = store_intake::upsert_afname(
                    &savepoint,
                    &write_for(quarantined),
                    &state,
                    &mut change_seq,
                )?;
                // A key skipped earlier in this message (for another rule) is a duplicate too.
                let change = if skipped_twin {
                    AfnameChange::DuplicateInMessage
                } else {
                    change
                };
                // The sitting is that of the stored afname: an update keeps its first afnamedatum.
                let sitting_date = match &change {
                    AfnameChange::Created | AfnameChange::DuplicateInMessage => {
                        resultaat.afnamedatum.clone()
                    }
                    AfnameChange::Updated { afnamedatum }
                    | AfnameChange::Unchanged { afnamedatum } => afnamedatum.clone(),
                };
                sums.entry((pin_key.0.clone(), pin_key.1.clone(), sitting_date))
                    .or_default()
                    .add(&resultaat);
                match change {
                    AfnameChange::DuplicateInMessage => {
                        violations.push(duplicate_key_violation(&head, &resultaat))
                    }
                    change => count_change(&mut counts, change, quarantined),
                }
            }
            Parsed::ToetsafnameEnd => {
                let quarantined = leerling_state == Some(false);
                for ((toetscode, versie, afnamedatum), sum) in std::mem::take(&mut sums) {
                    let Some(Some(definition)) =
                        pinned.get(&(toetscode.clone(), versie.clone())).cloned()
                    else {
                        continue;
                    };
                    // Without a toetsnormering nothing is summed: the onderdelen are stored as sent.
                    let Some(normering) = sum.normering(&definition.definition) else {
                        continue;
                    };
                    // The sitting's onderdelen may come in several messages: the total is
                    // that of every onderdeel stored so far, and only once all are there.
                    let (stored, reported) = store_intake::sitting_results(
                        &savepoint,
                        owner,
                        &head.leerlingid,
                        definition.id,
                        &afnamedatum,
                    )?;
                    if reported {
                        continue;
                    }
                    let Some(sum) = rules::complete_sum(&definition.definition, &stored) else {
                        continue;
                    };
                    if let Some(violation) = sum.check(&head.leerlingid, &toetscode, normering) {
                        violations.push(violation.at_offset(head.offset));
                        continue;
                    }
                    let mut keys = sum.keys.clone();
                    keys.sort();
                    // One key per sitting (leerling, toets version, afnamedatum), so a recomputed
                    // total is a correction of the earlier one, which the publisher voids.
                    let sitting =
                        format!("{}\n{toetscode}\n{versie}\n{afnamedatum}", head.leerlingid);
                    let state = AfnameState {
                        afname_key: format!("~som:{}", &sha256_hex(sitting.as_bytes())[..32]),
                        leerlingid: head.leerlingid.clone(),
                        eckid: head.eckid.clone(),
                        resultaatverwerkerid: head.resultaatverwerkerid.clone(),
                        toets_id: definition.id,
                        toetscode: toetscode.clone(),
                        versie: versie.clone(),
                        toetsonderdeelcode: None,
                        afnamedatum: sum.latest_afnamedatum.clone(),
                        score: i64::try_from(sum.total).ok(),
                        derived: true,
                        result: serde_json::json!({"uitslag": {"score": sum.total}, "afgeleid_uit": keys}).to_string(),
                    };
                    match store_intake::upsert_afname(
                        &savepoint,
                        &write_for(quarantined),
                        &state,
                        &mut change_seq,
                    )? {
                        // Its onderdeel keys were reported already.
                        AfnameChange::DuplicateInMessage => {}
                        change => count_change(&mut counts, change, quarantined),
                    }
                }
            }
        }
    }
    let store_pass = started.elapsed();
    if let Some(pending) = pending_validation {
        let waited = Instant::now();
        let verdict = pending
            .recv()
            .map_err(|_| IntakeError::Worker("the schema check stopped".into()))??;
        tracing::debug!(
            store_pass_ms = store_pass.as_millis() as u64,
            schema_wait_ms = waited.elapsed().as_millis() as u64,
            "store pass done"
        );
        if !verdict.is_empty() {
            // As in phase 1: on a schema-invalid message only the schema findings count.
            violations = verdict;
            if let Some(violation) = rules::check_xsdversie(&school, &config.xsd_versions) {
                violations.push(violation);
            }
        }
    }
    receipt.counts = counts.clone();
    receipt.duration_ms = started.elapsed().as_millis() as u64;
    if violations.is_empty() {
        store_intake::write_change_seq(&savepoint, change_seq)?;
        store_intake::write_feed_seq(&savepoint, sender.school_id, change_seq, feed_offset)?;
        let micros = aanmaakdatum_us.unwrap_or_default();
        store_intake::set_last_aanmaakdatum(
            &savepoint,
            sender.client_id,
            sender.school_id,
            micros,
            &school.aanmaakdatum,
            &receipt.id,
        )?;
        let receipt = finish_receipt(receipt, violations, &unknown_vocabularies);
        store_intake::insert_receipt(&savepoint, &receipt)?;
        // The outbox is the change feed itself: every created or corrected afname got a
        // change_seq in this transaction, and the bridge's publisher turns those into
        // statements after the commit (bridge::publish), so a batch is not slowed by them.
        savepoint.commit()?;
        Ok(Outcome::Accepted {
            receipt_id: receipt.id,
            counts,
            replay: false,
            klantcode: sender.klantcode.clone(),
        })
    } else {
        // Roll back everything but the receipt, which must not claim the writes that were undone.
        drop(savepoint);
        receipt.counts = Counts {
            created: 0,
            updated: 0,
            unchanged: 0,
            quarantined: 0,
            ..receipt.counts
        };
        fill_positions(body, &mut violations);
        let receipt = finish_receipt(receipt, violations, &unknown_vocabularies);
        store_intake::insert_receipt(connection, &receipt)?;
        Ok(Outcome::Rejected {
            receipt_id: Some(receipt.id.clone()),
            violations: receipt.violations,
            klantcode: Some(sender.klantcode),
        })
    }
}

/// The resultaat as stored: `{"infourl":…,"uitslag":…}`, the text `json!` gave before (its
/// map sorts the keys), written without building a `serde_json::Value` first (issue 19).
fn stored_result(resultaat: &Resultaat) -> String {
    #[derive(serde::Serialize)]
    struct StoredResult<'a> {
        infourl: &'a Option<String>,
        uitslag: &'a Uitslag,
    }
    serde_json::to_string(&StoredResult {
        infourl: &resultaat.infourl,
        uitslag: &resultaat.uitslag,
    })
    .unwrap_or_default()
}

fn count_change(counts: &mut Counts, change: AfnameChange, quarantined: bool) {
    match change {
        AfnameChange::Created => counts.created += 1,
        AfnameChange::Updated { .. } => counts.updated += 1,
        AfnameChange::Unchanged { .. } => counts.unchanged += 1,
        AfnameChange::DuplicateInMessage => {}
    }
    if quarantined {
        counts.quarantined += 1;
    }
}

/// Places a violation about a school field at that field (or the school block).
fn at_child(violation: Violation, node: &Node, child: &str) -> Violation {
    let offset = node.child(child).map_or(node.offset, |child| child.offset);
    violation.at_offset(offset)
}

/// Turns byte offsets into 1-based line and column numbers with one read of the file.
pub fn fill_positions(body: &Body, violations: &mut Violations) {
    if let Ok(reader) = body.reader() {
        fill_positions_from(reader, violations);
    }
}

/// Turns byte offsets into lines and columns, reading the message from `file`.
fn fill_positions_from(mut file: impl Read, violations: &mut Violations) {
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
    'read: loop {
        let Ok(read) = file.read(&mut buffer) else {
            break;
        };
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

/// What `uwlr-gateway validate` learned about one file.
#[derive(Debug, Default)]
pub struct OfflineVerdict {
    /// Every rule broken that needs no store, with the gateway's own rule functions.
    pub violations: Violations,
    /// Toets versions that results are pinned to but this message does not define
    /// (at most [`OfflineVerdict::VERSIONS_LISTED`]): only the gateway knows whether an
    /// earlier message did, so UWLR-TOETSVERSIE, and UWLR-ONDERDEEL and UWLR-SCORE for
    /// those results, were not checked.
    pub unchecked_versions: std::collections::BTreeSet<(String, String)>,
    /// How many results are pinned to such versions.
    pub unchecked_resultaten: u64,
}

impl OfflineVerdict {
    pub const VERSIONS_LISTED: usize = 20;
}

/// Checks a file offline (no store), with the same rule functions as the intake:
/// size, envelope (with a complete autorisatie header) or bare verzoek, the full schema (every identity constraint included),
/// xsdversie, aanmaakdatum (its form, and not beyond now plus `aanmaakdatum_max_skew`), vocabularies, normeringen, and each result against a toets
/// version the message defines (onderdeel, score, derived sums). Used by `uwlr-gateway validate`.
pub fn validate_offline(
    path: &std::path::Path,
    schemas: &SchemaSet,
    vocabularies: &Vocabularies,
    xsd_versions: &[String],
    max_body_bytes: u64,
    aanmaakdatum_max_skew: chrono::Duration,
) -> Result<OfflineVerdict, IntakeError> {
    let mut verdict = OfflineVerdict::default();
    // The gateway refuses a larger body before reading it.
    if std::fs::metadata(path)?.len() > max_body_bytes {
        verdict.violations.push(rules::too_large(max_body_bytes));
        return Ok(verdict);
    }
    let body = Body::Path(path.to_path_buf());
    let Some(OfflineDefinitions { school, toetsen }) =
        offline_definitions(&body, &mut verdict.violations)?
    else {
        fill_positions(&body, &mut verdict.violations);
        return Ok(verdict);
    };
    let violations = &mut verdict.violations;
    // Offline files are checked with the full schema: libxml2 checks the keys itself.
    violations.extend(crate::schema::validate(&schemas.full, &body)?.items);
    if let Some((school, node)) = &school {
        if let Some(violation) = rules::check_xsdversie(school, xsd_versions) {
            violations.push(at_child(violation, node, "xsdversie"));
        }
    }
    // As in the intake, content rules run only on schema-valid messages.
    if violations.is_empty() {
        if let Some((school, node)) = &school {
            match rules::read_aanmaakdatum(school) {
                Err(violation) => violations.push(at_child(violation, node, "aanmaakdatum")),
                Ok(micros) => {
                    if let Some(violation) = crate::domain::aanmaakdatum::check_not_future(
                        &school.aanmaakdatum,
                        micros,
                        Clock::System.now(),
                        aanmaakdatum_max_skew,
                    ) {
                        violations.push(at_child(violation, node, "aanmaakdatum"));
                    }
                }
            }
        }
        let mut unknown = UnknownVocabularies::new();
        for toets in &toetsen {
            violations.extend(rules::check_toets(toets, vocabularies, &mut unknown));
        }
        check_results_offline(&body, &toetsen, vocabularies, &mut unknown, &mut verdict)?;
    }
    fill_positions(&body, &mut verdict.violations);
    Ok(verdict)
}

/// What the definitions pass of `validate_offline` read.
struct OfflineDefinitions {
    /// The school block with its subtree (for positions).
    school: Option<(School, Node)>,
    toetsen: Vec<Toets>,
}

/// The definitions pass of `validate_offline`: envelope, school and toetsen; None when
/// the file is not a well-formed envelope or verzoek (the violation says why).
fn offline_definitions(
    body: &Body,
    violations: &mut Violations,
) -> Result<Option<OfflineDefinitions>, IntakeError> {
    let mut scanner = Scanner::new(body.reader()?, Pass::SkipToetsafnames);
    let (mut root, mut body_element, mut school, mut toetsen) = (None, None, None, Vec::new());
    let mut body_offset = None;
    let mut headers: Vec<Node> = Vec::new();
    loop {
        match scanner.next() {
            Ok(Some(Item::Root(found))) => root = Some(found),
            Ok(Some(Item::HeaderElement(node))) => {
                if headers.len() < 16 {
                    headers.push(node);
                }
            }
            Ok(Some(Item::BodyElement {
                namespace,
                name,
                offset,
            })) => {
                body_element = Some((namespace, name));
                body_offset = Some(offset);
            }
            Ok(Some(Item::School(node))) => school = Some((School::from_node(&node), node)),
            Ok(Some(Item::UnknownHeader {
                namespace,
                name,
                must_understand: true,
                offset,
            })) => violations
                .push(envelope::not_understood(namespace.as_deref(), &name).at_offset(offset)),
            Ok(Some(Item::Toets(node))) => {
                if toetsen.len() == MAX_TOETSEN {
                    violations.push(too_many_toetsen().at_offset(node.offset));
                    return Ok(None);
                }
                toetsen.push(Toets::from_node(&node));
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error) => {
                violations.push(
                    Violation::new(Rule::Bericht, error.error.to_string()).at_offset(error.offset),
                );
                return Ok(None);
            }
        }
    }
    let root_offset = scanner.root_offset();
    if let Err(violation) = envelope::check_root(
        root.as_ref(),
        body_element
            .as_ref()
            .map(|(namespace, name)| (namespace, name.as_str())),
        Framing::SoapOrBare,
    ) {
        // Envelope problems are reported where the Body's element or the root element is.
        violations.push(match body_offset.or(root_offset) {
            Some(offset) => violation.at_offset(offset),
            None => violation,
        });
        return Ok(None);
    }
    // An envelope must carry a complete autorisatie header (only the key check needs
    // the store); as in the intake, a sender problem ends the checks. A bare verzoek
    // gets its header from whoever sends it (`replay --key`).
    if root == Some(Root::Soap11Envelope) {
        if let Err(found) = envelope::autorisatie(&headers) {
            violations.extend(found.into_iter().map(|violation| match violation.offset {
                None => violation.at_offset(root_offset.unwrap_or(0)),
                Some(_) => violation,
            }));
            return Ok(None);
        }
    }
    Ok(Some(OfflineDefinitions { school, toetsen }))
}

/// The results pass of `validate_offline`: phase 2's store-free checks, in the same order.
fn check_results_offline(
    body: &Body,
    toetsen: &[Toets],
    vocabularies: &Vocabularies,
    unknown: &mut UnknownVocabularies,
    verdict: &mut OfflineVerdict,
) -> Result<(), IntakeError> {
    let message_versions: HashMap<String, String> = toetsen
        .iter()
        .map(|toets| {
            (
                toets.toetscode.waarde.clone(),
                toets.versie_text().to_string(),
            )
        })
        .collect();
    let definitions: HashMap<(String, String), &Toets> = toetsen
        .iter()
        .map(|toets| {
            let key = (
                toets.toetscode.waarde.clone(),
                toets.versie_text().to_string(),
            );
            (key, toets)
        })
        .collect();
    let mut head = ToetsafnameHead::default();
    let mut sums: BTreeMap<(String, String), rules::DerivedSum> = BTreeMap::new();
    for parsed in ResultStream::open(body, false)? {
        match parsed {
            Parsed::Failed(error) => {
                verdict.violations.push(
                    Violation::new(Rule::Bericht, error.error.to_string()).at_offset(error.offset),
                );
                break;
            }
            Parsed::ToetsafnameStart { offset } => {
                head = ToetsafnameHead {
                    offset,
                    ..ToetsafnameHead::default()
                };
                sums.clear();
            }
            Parsed::AfnameField(node) => head.set_field(&node),
            Parsed::Resultaat(resultaat) => {
                // A toetscode the message does not define broke keyref krAfnameToets,
                // which the full schema reported already.
                if !message_versions.contains_key(&resultaat.toetscode) {
                    continue;
                }
                let versie = rules::pinned_versie(&resultaat, &message_versions);
                let pin_key = (resultaat.toetscode.clone(), versie);
                let Some(definition) = definitions.get(&pin_key) else {
                    verdict.unchecked_resultaten += 1;
                    if verdict.unchecked_versions.len() < OfflineVerdict::VERSIONS_LISTED {
                        verdict.unchecked_versions.insert(pin_key);
                    }
                    continue;
                };
                let found = rules::check_resultaat(
                    &head.leerlingid,
                    &resultaat,
                    definition,
                    vocabularies,
                    unknown,
                );
                if !found.is_empty() {
                    verdict.violations.extend(found);
                    continue;
                }
                sums.entry(pin_key).or_default().add(&resultaat);
            }
            Parsed::ToetsafnameEnd => {
                for ((toetscode, versie), sum) in std::mem::take(&mut sums) {
                    let Some(definition) = definitions.get(&(toetscode.clone(), versie)) else {
                        continue;
                    };
                    let Some(normering) = sum.normering(definition) else {
                        continue;
                    };
                    if let Some(violation) = sum.check(&head.leerlingid, &toetscode, normering) {
                        verdict.violations.push(violation.at_offset(head.offset));
                    }
                }
            }
        }
    }
    Ok(())
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
        fill_positions(&Body::Path(file.path().to_path_buf()), &mut violations);
        let positions: Vec<_> = violations
            .items
            .iter()
            .map(|v| (v.line.unwrap(), v.column.unwrap()))
            .collect();
        assert_eq!(positions, [(1, 1), (2, 2), (3, 1), (4, 2), (4, 3)]);
    }

    /// The stored text is hashed into `content_sha256`: a byte of difference would turn
    /// every identical resend after an upgrade into a correction.
    #[test]
    fn stored_result_is_the_text_json_gave() {
        let uitslagen = [
            Uitslag::Score(Some(7)),
            Uitslag::Score(None),
            Uitslag::Osoresultaat(serde_json::json!({"z": "\"é\n", "a": [1, {"y": null, "b": 2}]})),
            Uitslag::Anderresultaat(serde_json::json!({"resultaat": "goed", "label": "<&>"})),
        ];
        for uitslag in uitslagen {
            for infourl in [None, Some("https://example.org/a?b=\"c\"".to_string())] {
                let resultaat = Resultaat {
                    key: "K".into(),
                    afnamedatum: "2026-10-01".into(),
                    toetscode: "T".into(),
                    versie: None,
                    toetsonderdeelcode: None,
                    uitslag: uitslag.clone(),
                    infourl,
                    unread_score: None,
                    offset: 0,
                };
                let before =
                    serde_json::json!({"uitslag": resultaat.uitslag, "infourl": resultaat.infourl})
                        .to_string();
                assert_eq!(stored_result(&resultaat), before);
            }
        }
    }
}
