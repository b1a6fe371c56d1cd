//! The UWLR rules that need no store: version, ordering input, vocabularies, normering, onderdelen, scores.

use super::aanmaakdatum::{parse_datetime, to_micros};
use super::{Rule, Violation};
use crate::uwlr::{Normering, Resultaat, School, Toets, Uitslag, VocabulaireWaarde};
use crate::vdex::{TermCheck, Vocabularies};
use std::collections::BTreeSet;

/// Vocabulary identifiers met in a message that are not known here (accepted as is).
pub type UnknownVocabularies = BTreeSet<String>;

/// A body may not be larger than the gateway's `max_body_bytes`.
pub fn too_large(limit: u64) -> Violation {
    Violation::new(
        Rule::Grootte,
        format!("the message is larger than this gateway's limit of {limit} bytes; split it into several messages"),
    )
}

/// `xsdversie` must be one of the supported versions.
pub fn check_xsdversie(school: &School, supported: &[String]) -> Option<Violation> {
    let version = school.xsdversie.trim();
    (!supported.iter().any(|supported| supported == version)).then(|| {
        Violation::new(
            Rule::XsdVersie,
            format!(
                "xsdversie {version} is not supported; supported: {}",
                supported.join(", ")
            ),
        )
        .at_path("school/xsdversie")
        .with_value(version)
    })
}

/// Reads the aanmaakdatum as an instant (µs since the epoch) for the ordering rule.
pub fn read_aanmaakdatum(school: &School) -> Result<i64, Violation> {
    parse_datetime(&school.aanmaakdatum)
        .map(to_micros)
        .map_err(|reason| {
            Violation::new(Rule::Xsd, format!("aanmaakdatum {reason}"))
                .at_path("school/aanmaakdatum")
                .with_value(&school.aanmaakdatum)
        })
}

/// Checks one vocabulary-bound value; unknown vocabularies are noted, not refused.
pub fn check_term(
    vocabularies: &Vocabularies,
    path: &str,
    value: &VocabulaireWaarde,
    unknown: &mut UnknownVocabularies,
) -> Option<Violation> {
    match vocabularies.check(value.vocabulaire.as_deref(), &value.waarde) {
        TermCheck::Unbound | TermCheck::Valid => None,
        TermCheck::UnknownVocabulary => {
            if let Some(vocabulaire) = &value.vocabulaire {
                if unknown.len() < 100 {
                    unknown.insert(vocabulaire.clone());
                }
            }
            None
        }
        TermCheck::Invalid => Some(
            Violation::new(
                Rule::Vdex,
                format!(
                    "not a term of vocabulary {}",
                    value.vocabulaire.as_deref().unwrap_or_default()
                ),
            )
            .at_path(path)
            .with_value(&value.waarde),
        ),
    }
}

fn check_normering(
    path: &str,
    normering: &Normering,
    vocabularies: &Vocabularies,
    unknown: &mut UnknownVocabularies,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for norm in &normering.norms {
        if norm.beginnormwaarde > norm.eindnormwaarde {
            violations.push(
                Violation::new(
                    Rule::Normering,
                    format!(
                        "norm '{}' begins at {} after it ends at {}",
                        norm.term, norm.beginnormwaarde, norm.eindnormwaarde
                    ),
                )
                .at_path(format!("{path}/norm[{}]", norm.term))
                .with_value(format!("{}..{}", norm.beginnormwaarde, norm.eindnormwaarde))
                .at_offset(norm.offset),
            );
        }
        // A normering bound to a known vocabulary constrains its norm terms.
        if let Some(vocabulaire) = &normering.vocabulaire {
            let term = VocabulaireWaarde {
                waarde: norm.term.clone(),
                vocabulaire: Some(vocabulaire.clone()),
                vocabulairelocatie: None,
            };
            violations.extend(check_term(
                vocabularies,
                &format!("{path}/norm/term"),
                &term,
                unknown,
            ));
        }
    }
    violations
}

/// Checks a toets definition on its own: vocabulary terms and consistent normeringen.
pub fn check_toets(
    toets: &Toets,
    vocabularies: &Vocabularies,
    unknown: &mut UnknownVocabularies,
) -> Vec<Violation> {
    let prefix = format!("toets[{}]", toets.toetscode.waarde);
    let mut violations: Vec<Violation> = toets
        .vocabulary_values()
        .into_iter()
        .filter_map(|(path, value)| {
            check_term(vocabularies, &format!("{prefix}/{path}"), value, unknown)
        })
        .map(|violation| violation.at_offset(toets.offset))
        .collect();
    if let Some(normering) = &toets.toetsnormering {
        violations.extend(check_normering(
            &format!("{prefix}/toetsnormering"),
            normering,
            vocabularies,
            unknown,
        ));
    }
    for onderdeel in &toets.toetsonderdelen {
        if let Some(normering) = &onderdeel.toetsonderdeelnormering {
            let path = format!(
                "{prefix}/toetsonderdeel[{}]/toetsonderdeelnormering",
                onderdeel.toetsonderdeelcode.waarde
            );
            violations.extend(check_normering(&path, normering, vocabularies, unknown));
        }
    }
    violations
}

/// The identity constraints on toetsen that the streaming schema leaves to us:
/// kToetscode (toetscode unique in the message) and uOnderdeelVolgnummer (volgnummer unique per toets).
pub fn check_toetsen_identity(toetsen: &[Toets]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut codes = std::collections::HashSet::new();
    for toets in toetsen {
        if !codes.insert(toets.toetscode.waarde.as_str()) {
            violations.push(
                Violation::new(
                    Rule::Xsd,
                    format!(
                        "key kToetscode: toetscode {} is defined more than once",
                        toets.toetscode.waarde
                    ),
                )
                .at_path(format!("toets[{}]", toets.toetscode.waarde))
                .with_value(&toets.toetscode.waarde)
                .at_offset(toets.offset),
            );
        }
        let mut volgnummers = std::collections::HashSet::new();
        for onderdeel in &toets.toetsonderdelen {
            if !volgnummers.insert(onderdeel.toetsonderdeelvolgnummer.trim()) {
                violations.push(
                    Violation::new(
                        Rule::Xsd,
                        format!(
                            "unique uOnderdeelVolgnummer: toetsonderdeelvolgnummer {} occurs more than once in toets {}",
                            onderdeel.toetsonderdeelvolgnummer, toets.toetscode.waarde
                        ),
                    )
                    .at_path(format!("toets[{}]/toetsonderdelen", toets.toetscode.waarde))
                    .with_value(&onderdeel.toetsonderdeelvolgnummer)
                    .at_offset(toets.offset),
                );
            }
        }
    }
    violations
}

/// Where a resultaat sits, for violation paths.
pub fn resultaat_path(leerlingid: &str, resultaat: &Resultaat) -> String {
    format!(
        "toetsafname[leerlingid={leerlingid}]/resultaat[key={}]",
        resultaat.key
    )
}

/// Checks a resultaat against the toets version it is pinned to: the onderdeel must
/// be one the definition lists, and a score must lie within the applicable normering.
pub fn check_resultaat(
    leerlingid: &str,
    resultaat: &Resultaat,
    definition: &Toets,
    vocabularies: &Vocabularies,
    unknown: &mut UnknownVocabularies,
) -> Vec<Violation> {
    let path = resultaat_path(leerlingid, resultaat);
    let mut violations = Vec::new();
    if let Some(versie) = &resultaat.versie {
        violations.extend(check_term(
            vocabularies,
            &format!("{path}/versie"),
            versie,
            unknown,
        ));
    }
    let normering = match &resultaat.toetsonderdeelcode {
        Some(code) => match definition.onderdeel(code) {
            Some(onderdeel) => onderdeel.toetsonderdeelnormering.as_ref(),
            None => {
                violations.push(
                    Violation::new(
                        Rule::Onderdeel,
                        format!(
                            "toets {} versie '{}' has no toetsonderdeel {code}; send the complete toets with all its onderdelen",
                            definition.toetscode.waarde,
                            definition.versie_text()
                        ),
                    )
                    .at_path(format!("{path}/toetsonderdeelcode"))
                    .with_value(code),
                );
                None
            }
        },
        None => definition.toetsnormering.as_ref(),
    };
    match &resultaat.uitslag {
        Uitslag::Score(None) => violations.push(
            Violation::new(
                Rule::Score,
                "score is not a non-negative whole number that fits 64 bits",
            )
            .at_path(format!("{path}/score")),
        ),
        Uitslag::Score(Some(score)) => {
            if let Some(violation) = check_score(*score, normering, &format!("{path}/score")) {
                violations.push(violation);
            }
        }
        Uitslag::Osoresultaat(_) | Uitslag::Anderresultaat(_) => {}
    }
    violations
        .into_iter()
        .map(|violation| violation.at_offset(resultaat.offset))
        .collect()
}

/// The toets version a resultaat is read against: its own `versie` when given, else
/// that of its toets in the same message, else empty (README "Version pinning").
pub fn pinned_versie(
    resultaat: &Resultaat,
    message_versions: &std::collections::HashMap<String, String>,
) -> String {
    resultaat
        .versie
        .as_ref()
        .map(|versie| versie.waarde.clone())
        .or_else(|| message_versions.get(&resultaat.toetscode).cloned())
        .unwrap_or_default()
}

/// The onderdeel scores of one toets version within one toetsafname: without a
/// toets-level result their sum is the toets score (README "Derived sums").
#[derive(Debug, Default)]
pub struct DerivedSum {
    pub total: u64,
    /// The keys of the onderdeel results summed.
    pub keys: Vec<String>,
    pub latest_afnamedatum: String,
    pub has_toets_score: bool,
}

impl DerivedSum {
    /// Counts a resultaat that passed `check_resultaat`.
    pub fn add(&mut self, resultaat: &Resultaat) {
        match (&resultaat.toetsonderdeelcode, &resultaat.uitslag) {
            (None, _) => self.has_toets_score = true,
            (Some(_), Uitslag::Score(Some(score))) => {
                self.total = self.total.saturating_add(*score);
                self.keys.push(resultaat.key.clone());
                if resultaat.afnamedatum > self.latest_afnamedatum {
                    self.latest_afnamedatum = resultaat.afnamedatum.clone();
                }
            }
            _ => {}
        }
    }

    /// The toetsnormering a sum is derived under; none when the toetsafname has a
    /// toets-level result, no onderdeel scores, or the toets no toetsnormering.
    pub fn normering<'a>(&self, definition: &'a Toets) -> Option<&'a Normering> {
        if self.has_toets_score || self.keys.is_empty() {
            return None;
        }
        definition.toetsnormering.as_ref()
    }

    /// The sum must lie within the toetsnormering, as a toets-level score would.
    pub fn check(
        &self,
        leerlingid: &str,
        toetscode: &str,
        normering: &Normering,
    ) -> Option<Violation> {
        check_score(
            self.total,
            Some(normering),
            &format!("toetsafname[leerlingid={leerlingid}]/toets[{toetscode}]/afgeleide score"),
        )
        .map(|violation| Violation {
            message: format!("the sum of the onderdeel scores: {}", violation.message),
            ..violation
        })
    }
}

/// A score must lie between the lowest beginnormwaarde and the highest eindnormwaarde.
pub fn check_score(score: u64, normering: Option<&Normering>, path: &str) -> Option<Violation> {
    let (low, high) = normering?.range()?;
    (score < low || score > high).then(|| {
        Violation::new(
            Rule::Score,
            format!("score {score} lies outside the normering {low}..{high}"),
        )
        .at_path(path)
        .with_value(score.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uwlr::{Norm, Toetsonderdeel};

    fn normering(low: u64, high: u64) -> Normering {
        Normering {
            norms: vec![
                Norm {
                    term: "laag".into(),
                    beginnormwaarde: low,
                    eindnormwaarde: (low + high) / 2,
                    ..Default::default()
                },
                Norm {
                    term: "hoog".into(),
                    beginnormwaarde: (low + high) / 2 + 1,
                    eindnormwaarde: high,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn toets() -> Toets {
        Toets {
            toetscode: VocabulaireWaarde {
                waarde: "T".into(),
                ..Default::default()
            },
            toetsnormering: Some(normering(0, 20)),
            toetsonderdelen: vec![Toetsonderdeel {
                toetsonderdeelvolgnummer: "1".into(),
                toetsonderdeelcode: VocabulaireWaarde {
                    waarde: "A".into(),
                    ..Default::default()
                },
                toetsonderdeelnaam: None,
                toetsonderdeelnormering: Some(normering(0, 10)),
            }],
            ..Default::default()
        }
    }

    fn resultaat(onderdeel: Option<&str>, score: Option<u64>) -> Resultaat {
        Resultaat {
            key: "k".into(),
            afnamedatum: "2026-10-01".into(),
            toetscode: "T".into(),
            versie: None,
            toetsonderdeelcode: onderdeel.map(str::to_string),
            uitslag: Uitslag::Score(score),
            infourl: None,
            offset: 0,
        }
    }

    fn check(onderdeel: Option<&str>, score: Option<u64>) -> Vec<Rule> {
        let vocabularies = Vocabularies::default();
        check_resultaat(
            "L1",
            &resultaat(onderdeel, score),
            &toets(),
            &vocabularies,
            &mut Default::default(),
        )
        .into_iter()
        .map(|violation| violation.rule)
        .collect()
    }

    #[test]
    fn scores_are_read_against_the_right_normering() {
        assert_eq!(check(None, Some(20)), []);
        assert_eq!(check(None, Some(21)), [Rule::Score]);
        assert_eq!(check(Some("A"), Some(10)), []);
        assert_eq!(check(Some("A"), Some(11)), [Rule::Score]);
        assert_eq!(check(Some("B"), Some(1)), [Rule::Onderdeel]);
        assert_eq!(check(None, None), [Rule::Score]);
    }

    #[test]
    fn inconsistent_normering_is_reported() {
        let mut definition = toets();
        definition.toetsnormering.as_mut().unwrap().norms[0].beginnormwaarde = 15;
        let rules: Vec<Rule> = check_toets(
            &definition,
            &Vocabularies::default(),
            &mut Default::default(),
        )
        .into_iter()
        .map(|violation| violation.rule)
        .collect();
        assert_eq!(rules, [Rule::Normering]);
    }

    #[test]
    fn xsdversie_must_be_supported() {
        let school = School {
            xsdversie: "2.1".into(),
            ..Default::default()
        };
        assert_eq!(
            check_xsdversie(&school, &["2.2".into()]).unwrap().rule,
            Rule::XsdVersie
        );
        let school = School {
            xsdversie: "2.2".into(),
            ..Default::default()
        };
        assert!(check_xsdversie(&school, &["2.2".into()]).is_none());
    }
}
