//! Offline validate (`uwlr-gateway validate`): the store-free checks of every intake stage on a file, through the same head scan, school checks, rule functions and derived score as the gateway, with the full schema.

use super::derived::{self, MessageSittings, Sitting, Sittings, Total};
use super::head::scan_head;
use super::sender::check_school;
use super::{broken_off, place, too_many_toetsen, IntakeError, MAX_TOETSEN};
use crate::domain::rules::{self, UnknownVocabularies};
use crate::domain::violation::Violations;
use crate::domain::Clock;
use crate::http::body::Body;
use crate::schema::SchemaSet;
use crate::soap::envelope::{self, Framing};
use crate::uwlr::results::{Parsed, ResultStream};
use crate::uwlr::scan::{Item, Pass, Root, Scanner};
use crate::uwlr::xmltree::Node;
use crate::uwlr::{School, Toets, ToetsafnameHead};
use crate::vdex::Vocabularies;
use std::collections::HashMap;

/// What `uwlr-gateway validate` learned about one file.
#[derive(Debug, Default)]
pub(crate) struct OfflineVerdict {
    /// Every rule broken that needs no store, with the gateway's own rule functions.
    pub(crate) violations: Violations,
    /// Toets versions that results are pinned to but this message does not define
    /// (at most [`OfflineVerdict::VERSIONS_LISTED`]): only the gateway knows whether an
    /// earlier message did, so UWLR-TOETSVERSIE, and UWLR-ONDERDEEL and UWLR-SCORE for
    /// those results, were not checked.
    pub(crate) unchecked_versions: std::collections::BTreeSet<(String, String)>,
    /// How many results are pinned to such versions.
    pub(crate) unchecked_resultaten: u64,
}

impl OfflineVerdict {
    pub(crate) const VERSIONS_LISTED: usize = 20;
}

/// Checks a file offline (no store), with the same rule functions as the intake:
/// size, envelope (with a complete autorisatie header) or bare verzoek, the full schema (every identity constraint included),
/// xsdversie, aanmaakdatum (its form, and not beyond now plus `aanmaakdatum_max_skew`), vocabularies, normeringen, and each result against a toets
/// version the message defines (onderdeel, score, derived sums per sitting). Used by `uwlr-gateway validate`.
pub(crate) fn validate_offline(
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
    if let Some(OfflineDefinitions { school, toetsen }) =
        offline_definitions(&body, &mut verdict.violations)?
    {
        // Offline files are checked with the full schema: libxml2 checks the keys itself.
        let schema = crate::schema::validate(&schemas.full, &body)?;
        verdict.violations.extend(schema.items);
        let checks = school.as_ref().map(|(school, node)| {
            let now = Clock::System.now();
            check_school(school, node, xsd_versions, now, aanmaakdatum_max_skew)
        });
        let checks = checks.unwrap_or_default();
        verdict.violations.extend(checks.xsdversie.clone());
        // As in the intake, content rules run only on schema-valid messages.
        if verdict.violations.is_empty() {
            verdict.violations.extend(checks.aanmaakdatum.clone());
            let mut unknown = UnknownVocabularies::new();
            for toets in &toetsen {
                let found = rules::check_toets(toets, vocabularies, &mut unknown);
                verdict.violations.extend(found);
            }
            check_results_offline(&body, &toetsen, vocabularies, &mut unknown, &mut verdict)?;
        }
    }
    verdict.violations = place(&body, std::mem::take(&mut verdict.violations));
    Ok(verdict)
}

/// What the definitions pass of `validate_offline` read.
struct OfflineDefinitions {
    /// The school block with its subtree (for positions).
    school: Option<(School, Node)>,
    toetsen: Vec<Toets>,
}

/// The definitions pass of `validate_offline`: the gateway's head scan, then the toetsen;
/// None when the file is not a well-formed envelope or verzoek, or its head already
/// refuses it as the gateway would (the violations say why).
fn offline_definitions(
    body: &Body,
    violations: &mut Violations,
) -> Result<Option<OfflineDefinitions>, IntakeError> {
    let mut scanner = Scanner::new(body.reader()?, Pass::SkipToetsafnames);
    let head = scan_head(&mut scanner, Framing::SoapOrBare);
    if let Some(error) = &head.error {
        violations.push(broken_off(error));
        return Ok(None);
    }
    if let Some(violation) = head.root_violation(Framing::SoapOrBare) {
        violations.push(violation);
        return Ok(None);
    }
    // As in the intake, a header block not understood ends the checks (each is named).
    if !head.not_understood.is_empty() {
        violations.extend(head.not_understood);
        return Ok(None);
    }
    // An envelope must carry a complete autorisatie header (only the key check needs
    // the store); as in the intake, a sender problem ends the checks. A bare verzoek
    // gets its header from whoever sends it (`replay --key`).
    if head.root == Some(Root::Soap11Envelope) {
        if let Err(found) = envelope::autorisatie(&head.headers) {
            let root_offset = head.root_offset.unwrap_or(0);
            violations.extend(found.into_iter().map(|violation| match violation.offset {
                None => violation.at_offset(root_offset),
                Some(_) => violation,
            }));
            return Ok(None);
        }
    }
    let school = head.school.map(|node| (School::from_node(&node), node));
    let mut toetsen = Vec::new();
    loop {
        match scanner.next() {
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
                violations.push(broken_off(&error));
                return Ok(None);
            }
        }
    }
    Ok(Some(OfflineDefinitions { school, toetsen }))
}

/// The results pass of `validate_offline`: phase 2's store-free checks, in the same order,
/// and the derived total of every sitting from the results this message holds.
fn check_results_offline(
    body: &Body,
    toetsen: &[Toets],
    vocabularies: &Vocabularies,
    unknown: &mut UnknownVocabularies,
    verdict: &mut OfflineVerdict,
) -> Result<(), IntakeError> {
    let mut message_versions: HashMap<String, String> = HashMap::new();
    let mut definitions: HashMap<(String, String), &Toets> = HashMap::new();
    for toets in toetsen {
        let (code, versie) = (toets.toetscode.waarde.clone(), toets.versie_text());
        message_versions.insert(code.clone(), versie.to_string());
        definitions.insert((code, versie.to_string()), toets);
    }
    let mut head = ToetsafnameHead::default();
    let mut sittings = Sittings::default();
    let mut message_sittings = MessageSittings::default();
    for parsed in ResultStream::open(body, false)? {
        match parsed {
            Parsed::Failed(error) => {
                verdict.violations.push(broken_off(&error));
                break;
            }
            Parsed::ToetsafnameStart { offset } => {
                head = ToetsafnameHead {
                    offset,
                    ..ToetsafnameHead::default()
                };
                sittings.clear();
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
                // Each result is a new afname here: its sitting is its own afnamedatum.
                let sitting = Sitting {
                    toetscode: pin_key.0,
                    versie: pin_key.1,
                    afnamedatum: resultaat.afnamedatum.clone(),
                };
                message_sittings.record(&head.leerlingid, &sitting, definition, &resultaat);
                sittings.add(sitting, &resultaat);
            }
            Parsed::ToetsafnameEnd => {
                for (sitting, sum) in sittings.take() {
                    let key = (sitting.toetscode.clone(), sitting.versie.clone());
                    let Some(definition) = definitions.get(&key) else {
                        continue;
                    };
                    let total = derived::sitting_total::<std::convert::Infallible>(
                        definition,
                        &sum,
                        &head,
                        &sitting.toetscode,
                        || Ok(message_sittings.results(&head.leerlingid, &sitting)),
                    );
                    if let Ok(Total::Refused(violation)) = total {
                        verdict.violations.push(violation);
                    }
                }
            }
        }
    }
    Ok(())
}
