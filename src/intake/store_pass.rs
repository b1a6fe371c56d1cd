//! The store pass (phase 2): on the store's writer thread, inside one savepoint, the ordering rule (a message out of order leaves before its results are read), toets versioning, and one streaming pass over the results that checks each rule and upserts each afname; then commit, or roll back and keep only the receipt.

use super::definitions::{PendingVerdict, Prepared};
use super::derived::{self, Sitting, Sittings, Total};
use super::sender::check_ordering;
use super::{
    broken_off, finish_receipt, rejected_receipt, IntakeConfig, IntakeError, Outcome,
    UnknownLeerlingPolicy, INLINE_VALIDATION_BYTES,
};
use crate::domain::rules::{self, UnknownVocabularies};
use crate::domain::violation::Violations;
use crate::domain::{Rule, Violation};
use crate::http::body::Body;
use crate::store::intake::{
    AfnameChange, AfnameState, Counts, MessageContext, MessagePass, MessageWriter, Owner,
    StoredToets, ToetsDefinition,
};
use crate::store::StoreError;
use crate::uwlr::results::{Parsed, ResultStream};
use crate::uwlr::{Resultaat, ToetsafnameHead, Uitslag};
use crate::vdex::Vocabularies;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// How the store pass ended.
pub(super) enum Pass {
    Done(Outcome),
    /// Refused by the ordering rule before a result was read: nothing was written, and the
    /// caller completes the violations off the writer (`Intake::refuse_before_store_pass`)
    /// and writes the receipt, so a batch sent out of order holds the writer for one query.
    OutOfOrder(Box<Prepared>, Violation),
}

/// Phase 2, on the writer thread inside the group transaction.
pub(super) fn run(
    writer: &mut MessageWriter,
    prepared: Prepared,
    body: &Body,
    vocabularies: &Vocabularies,
    config: &IntakeConfig,
    started: Instant,
) -> Result<Pass, IntakeError> {
    // Toetsen and afnames belong to the sender: another client's rows are never looked at.
    let pass = writer.begin(MessageContext {
        owner: Owner {
            school_id: prepared.sender.school_id,
            client_id: prepared.sender.client_id,
        },
        receipt_id: prepared.receipt.id.clone(),
        aanmaakdatum: prepared.school.aanmaakdatum.clone(),
    })?;
    // A twin of this message may have been accepted while this one waited. Asked after
    // `begin`, which on PostgreSQL locks the school's row: a twin another instance is
    // storing right now has committed by then, and is found.
    if let Some(receipt_id) =
        pass.accepted_duplicate(prepared.sender.client_id, &prepared.receipt.sha256)?
    {
        return Ok(Pass::Done(Outcome::Accepted {
            receipt_id,
            counts: Counts::default(),
            replay: true,
            klantcode: prepared.sender.klantcode.clone(),
        }));
    }
    if let Some(out_of_order) = check_ordering(&pass, &prepared.school, prepared.aanmaakdatum_us)? {
        return Ok(Pass::OutOfOrder(Box::new(prepared), out_of_order));
    }
    let Prepared {
        pending_validation,
        sender,
        school: _,
        aanmaakdatum_us,
        xsdversie,
        toetsen,
        parsed_results,
        violations,
        unknown_vocabularies,
        mut receipt,
    } = prepared;
    let counts = Counts {
        toetsen: toetsen.len() as u64,
        ..Counts::default()
    };
    let toetsen = PinnedToetsen::store(&pass, toetsen)?;
    let stream = match parsed_results {
        Some(parsed) => ResultStream::Parsed(parsed.into_iter()),
        None => ResultStream::open(body, body.len()? > INLINE_VALIDATION_BYTES)?,
    };
    let mut results = ResultsPass {
        pass,
        toetsen,
        vocabularies,
        unknown_leerling: config.unknown_leerling,
        head: ToetsafnameHead::default(),
        leerling_known: None,
        sittings: Sittings::default(),
        counts,
        violations,
        unknown_vocabularies,
    };
    for parsed in stream {
        if !results.step(parsed)? {
            break;
        }
    }
    let (pass, counts, violations, unknown_vocabularies) = results.finish();
    let violations = with_late_verdict(violations, pending_validation, xsdversie, started)?;
    receipt.counts = counts.clone();
    receipt.duration_ms = started.elapsed().as_millis() as u64;
    if violations.is_empty() {
        let receipt = finish_receipt(receipt, violations, &unknown_vocabularies);
        // The outbox is the change feed itself: every created or corrected afname got a
        // change_seq in this transaction, and the bridge's publisher turns those into
        // statements after the commit (bridge::publish), so a batch is not slowed by them.
        pass.commit(aanmaakdatum_us.unwrap_or_default(), &receipt)?;
        return Ok(Pass::Done(Outcome::Accepted {
            receipt_id: receipt.id,
            counts,
            replay: false,
            klantcode: sender.klantcode,
        }));
    }
    // Roll back everything but the receipt, which must not claim the writes that were undone.
    drop(pass);
    receipt.counts = Counts {
        created: 0,
        updated: 0,
        unchanged: 0,
        quarantined: 0,
        ..receipt.counts
    };
    let receipt = rejected_receipt(receipt, violations, &unknown_vocabularies, body);
    writer.insert_receipt(&receipt)?;
    Ok(Pass::Done(Outcome::Rejected {
        receipt_id: Some(receipt.id.clone()),
        violations: receipt.violations,
        klantcode: Some(sender.klantcode),
    }))
}

/// Waits for the schema verdict of a large message, computed beside the store pass. As
/// in phase 1, on a schema-invalid message only the schema findings count, and UWLR-XSDVERSIE.
fn with_late_verdict(
    violations: Violations,
    pending: Option<PendingVerdict>,
    xsdversie: Option<Violation>,
    started: Instant,
) -> Result<Violations, IntakeError> {
    let Some(pending) = pending else {
        return Ok(violations);
    };
    let store_pass = started.elapsed();
    let waited = Instant::now();
    let mut verdict = Prepared::wait_for_verdict(pending)?;
    tracing::debug!(
        store_pass_ms = store_pass.as_millis() as u64,
        schema_wait_ms = waited.elapsed().as_millis() as u64,
        "store pass done"
    );
    if verdict.is_empty() {
        return Ok(violations);
    }
    verdict.extend(xsdversie);
    Ok(verdict)
}

/// The toets versions results are read against: the message's own (UWLR step 6, each
/// pinning its version) and, loaded once each, versions stored by earlier messages.
struct PinnedToetsen {
    /// The versie this message defines per toetscode.
    message_versions: HashMap<String, String>,
    /// Per (toetscode, versie); `None` when no message defined it.
    pinned: HashMap<(String, String), Option<Arc<StoredToets>>>,
}

impl PinnedToetsen {
    /// At most this many versions are remembered; beyond it each lookup reads the store.
    const REMEMBERED: usize = 100_000;

    fn store(pass: &MessagePass, toetsen: Vec<ToetsDefinition>) -> Result<Self, StoreError> {
        let mut pinned_toetsen = PinnedToetsen {
            message_versions: HashMap::new(),
            pinned: HashMap::new(),
        };
        for definition in toetsen {
            let (id, _change) = pass.upsert_toets(&definition)?;
            let code = definition.toets.toetscode.waarde.clone();
            let versie = definition.toets.versie_text().to_string();
            pinned_toetsen
                .message_versions
                .insert(code.clone(), versie.clone());
            let stored = StoredToets {
                id,
                definition: definition.toets,
            };
            pinned_toetsen
                .pinned
                .insert((code, versie), Some(Arc::new(stored)));
        }
        Ok(pinned_toetsen)
    }

    fn get(
        &mut self,
        pass: &MessagePass,
        key: &(String, String),
    ) -> Result<Option<Arc<StoredToets>>, StoreError> {
        if let Some(found) = self.pinned.get(key) {
            return Ok(found.clone());
        }
        let loaded = pass.load_toets(&key.0, &key.1)?.map(Arc::new);
        if self.pinned.len() < Self::REMEMBERED {
            self.pinned.insert(key.clone(), loaded.clone());
        }
        Ok(loaded)
    }
}

/// The streaming pass over the results (UWLR steps 4 and 7) and what it has found so far.
struct ResultsPass<'p, 'v> {
    pass: MessagePass<'p>,
    toetsen: PinnedToetsen,
    vocabularies: &'v Vocabularies,
    unknown_leerling: UnknownLeerlingPolicy,
    /// The leerling fields of the current toetsafname element.
    head: ToetsafnameHead,
    /// Whether the school knows the current leerling, once a result asked.
    leerling_known: Option<bool>,
    sittings: Sittings,
    counts: Counts,
    violations: Violations,
    unknown_vocabularies: UnknownVocabularies,
}

impl<'p> ResultsPass<'p, '_> {
    /// The savepoint and what the pass found.
    fn finish(self) -> (MessagePass<'p>, Counts, Violations, UnknownVocabularies) {
        (
            self.pass,
            self.counts,
            self.violations,
            self.unknown_vocabularies,
        )
    }

    /// Takes one item of the stream; false when the message broke off.
    fn step(&mut self, parsed: Parsed) -> Result<bool, IntakeError> {
        match parsed {
            Parsed::Failed(error) => {
                self.violations.push(broken_off(&error));
                return Ok(false);
            }
            Parsed::ToetsafnameStart { offset } => {
                self.head = ToetsafnameHead {
                    offset,
                    ..ToetsafnameHead::default()
                };
                self.leerling_known = None;
                self.sittings.clear();
                self.counts.toetsafnames += 1;
            }
            Parsed::AfnameField(node) => self.head.set_field(&node),
            Parsed::Resultaat(resultaat) => self.resultaat(resultaat)?,
            Parsed::ToetsafnameEnd => self.end_toetsafname()?,
        }
        Ok(true)
    }

    /// Whether the current leerling's results are quarantined; the first result asks the
    /// store, and under the Reject policy an unknown leerling is UWLR-LEERLING.
    fn quarantined(&mut self) -> Result<bool, StoreError> {
        if let Some(known) = self.leerling_known {
            return Ok(!known);
        }
        let head = &self.head;
        let known = self
            .pass
            .leerling_known(&head.leerlingid, head.eckid.as_deref())?;
        self.leerling_known = Some(known);
        if !known && self.unknown_leerling == UnknownLeerlingPolicy::Reject {
            self.violations.push(
                Violation::new(Rule::Leerling, "leerling is not known for this school")
                    .at_path(format!(
                        "toetsafname[leerlingid={}]/leerlingid",
                        head.leerlingid
                    ))
                    .with_value(&head.leerlingid)
                    .at_offset(head.offset),
            );
        }
        Ok(!known)
    }

    /// Checks one result against its pinned toets version; skips it on a broken rule.
    fn resultaat(&mut self, resultaat: Resultaat) -> Result<(), IntakeError> {
        self.counts.resultaten += 1;
        let quarantined = self.quarantined()?;
        if !self
            .toetsen
            .message_versions
            .contains_key(&resultaat.toetscode)
        {
            let violation = Violation::new(
                Rule::Xsd,
                format!(
                    "keyref krAfnameToets: toetscode {} is not defined in the toetsen of this message",
                    resultaat.toetscode
                ),
            )
            .at_path(format!(
                "{}/toetscode",
                rules::resultaat_path(&self.head.leerlingid, &resultaat)
            ))
            .with_value(&resultaat.toetscode)
            .at_offset(resultaat.offset);
            self.violations.push(violation);
            // kResultaat must not depend on the other rules: its key still counts.
            return self.note_skipped(&resultaat);
        }
        let versie = rules::pinned_versie(&resultaat, &self.toetsen.message_versions);
        let pin_key = (resultaat.toetscode.clone(), versie);
        let Some(definition) = self.toetsen.get(&self.pass, &pin_key)? else {
            self.note_skipped(&resultaat)?;
            let violation = Violation::new(
                Rule::ToetsVersie,
                format!(
                    "toets {} has no versie '{}' in this message or in earlier ones",
                    resultaat.toetscode, pin_key.1
                ),
            )
            .at_path(format!(
                "{}/versie",
                rules::resultaat_path(&self.head.leerlingid, &resultaat)
            ))
            .with_value(&pin_key.1)
            .at_offset(resultaat.offset);
            self.violations.push(violation);
            return Ok(());
        };
        let found = rules::check_resultaat(
            &self.head.leerlingid,
            &resultaat,
            &definition.definition,
            self.vocabularies,
            &mut self.unknown_vocabularies,
        );
        if !found.is_empty() {
            self.violations.extend(found);
            return self.note_skipped(&resultaat);
        }
        self.store_resultaat(resultaat, &definition, pin_key, quarantined)
    }

    /// Upserts a result that broke no rule of its own. Rows are written even when the
    /// message already broke a rule (the savepoint is rolled back then): the store is what
    /// finds a key that occurs twice in one message, without holding every key in memory.
    fn store_resultaat(
        &mut self,
        resultaat: Resultaat,
        definition: &StoredToets,
        (toetscode, versie): (String, String),
        quarantined: bool,
    ) -> Result<(), IntakeError> {
        let head = &self.head;
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
            result: crate::store::afname_result::AfnameResult::Reported {
                infourl: resultaat.infourl.clone(),
                uitslag: resultaat.uitslag.clone(),
            }
            .to_json(),
        };
        let skipped_twin = self.pass.is_skipped_key(&resultaat.key)?;
        let change = self.pass.upsert_afname(&state, quarantined)?;
        // A key skipped earlier in this message (for another rule) is a duplicate too.
        let change = if skipped_twin {
            AfnameChange::DuplicateInMessage
        } else {
            change
        };
        // The sitting is that of the stored afname: an update keeps its first afnamedatum.
        let afnamedatum = match &change {
            AfnameChange::Created | AfnameChange::DuplicateInMessage => state.afnamedatum,
            AfnameChange::Updated { afnamedatum } | AfnameChange::Unchanged { afnamedatum } => {
                afnamedatum.clone()
            }
        };
        let sitting = Sitting {
            toetscode,
            versie,
            afnamedatum,
        };
        self.sittings.add(sitting, &resultaat);
        match change {
            AfnameChange::DuplicateInMessage => self
                .violations
                .push(duplicate_key_violation(&self.head, &resultaat)),
            change => count_change(&mut self.counts, change, quarantined),
        }
        Ok(())
    }

    /// Notes the key of a result skipped for a rule it broke, and reports it when the
    /// message holds that key already (kResultaat must not depend on the other rules).
    fn note_skipped(&mut self, resultaat: &Resultaat) -> Result<(), IntakeError> {
        if self.pass.note_skipped_key(&resultaat.key)? {
            self.violations
                .push(duplicate_key_violation(&self.head, resultaat));
        }
        Ok(())
    }

    /// Derives the total of every sitting the toetsafname element touched.
    fn end_toetsafname(&mut self) -> Result<(), IntakeError> {
        let quarantined = self.leerling_known == Some(false);
        for (sitting, sum) in self.sittings.take() {
            let key = (sitting.toetscode.clone(), sitting.versie.clone());
            let Some(Some(definition)) = self.toetsen.pinned.get(&key).cloned() else {
                continue;
            };
            // The sitting's onderdelen may come in several messages: the total is
            // that of every onderdeel stored so far, and only once all are there.
            let total = derived::sitting_total(
                &definition.definition,
                &sum,
                &self.head,
                &sitting.toetscode,
                || {
                    self.pass.sitting_results(
                        &self.head.leerlingid,
                        definition.id,
                        &sitting.afnamedatum,
                    )
                },
            )?;
            match total {
                Total::None => {}
                Total::Refused(violation) => self.violations.push(violation),
                Total::Derived(total) => {
                    let state =
                        derived::derived_afname(&self.head, &sitting, definition.id, &total);
                    match self.pass.upsert_afname(&state, quarantined)? {
                        // Its onderdeel keys were reported already.
                        AfnameChange::DuplicateInMessage => {}
                        change => count_change(&mut self.counts, change, quarantined),
                    }
                }
            }
        }
        Ok(())
    }
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
