//! The UWLR rules that need no store: version, ordering input, vocabularies, normering, onderdelen, scores.

use super::aanmaakdatum::{parse_datetime, to_micros};
use super::xsd::{XsdDate, XsdInteger, XsdValueError};
use super::{Rule, Violation};
use crate::uwlr::{Normering, Resultaat, School, Toets, Uitslag, UnreadValue, VocabulaireWaarde};
use crate::vdex::{TermCheck, Vocabularies};
use std::collections::BTreeSet;

/// Vocabulary identifiers met in a message that are not known here (accepted as is).
pub(crate) type UnknownVocabularies = BTreeSet<String>;

/// A body may not be larger than the gateway's `max_body_bytes`.
pub(crate) fn too_large(limit: u64) -> Violation {
    Violation::new(
        Rule::Grootte,
        format!("the message is larger than this gateway's limit of {limit} bytes; split it into several messages"),
    )
}

/// `xsdversie` must be one of the supported versions.
pub(crate) fn check_xsdversie(school: &School, supported: &[String]) -> Option<Violation> {
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
// A Violation is this rule's answer, built once per message: boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn read_aanmaakdatum(school: &School) -> Result<i64, Violation> {
    parse_datetime(&school.aanmaakdatum)
        .map(to_micros)
        .map_err(|error| {
            value_violation(&error, "aanmaakdatum")
                .at_path("school/aanmaakdatum")
                .with_value(&school.aanmaakdatum)
        })
}

/// A value that could not be used: UWLR-BEREIK when XSD allows it but the gateway
/// cannot hold it, UWLR-XSD when it is not a value of its type at all (only offline
/// tools that skip the schema get here: libxml2 refuses those first).
pub(crate) fn value_violation(error: &XsdValueError, element: &str) -> Violation {
    let rule = match error {
        XsdValueError::Beyond { .. } => Rule::Bereik,
        XsdValueError::Lexical { .. } => Rule::Xsd,
    };
    Violation::new(rule, format!("{element}: {error}"))
}

fn unread_violation(unread: &UnreadValue, path: &str) -> Violation {
    value_violation(&unread.error, unread.element)
        .at_path(format!("{path}/{}", unread.element))
        .with_value(&unread.text)
}

/// Checks one vocabulary-bound value; unknown vocabularies are noted, not refused.
pub(crate) fn check_term(
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
    let mut violations: Vec<Violation> = normering
        .unread
        .iter()
        .map(|unread| unread_violation(unread, &format!("{path}/norm")))
        .collect();
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
pub(crate) fn check_toets(
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
/// Each compares values of its field's type: toetscode as xs:string (every character,
/// whitespace included), toetsonderdeelvolgnummer as xs:positiveInteger (`1` is `01` is `+1`).
pub(crate) fn check_toetsen_identity(toetsen: &[Toets]) -> Vec<Violation> {
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
            // A volgnummer that is no integer is the schema check's to report.
            let value = XsdInteger::parse(&onderdeel.toetsonderdeelvolgnummer)
                .map(|value| value.to_string())
                .unwrap_or_else(|_| onderdeel.toetsonderdeelvolgnummer.clone());
            if !volgnummers.insert(value) {
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
pub(crate) fn resultaat_path(leerlingid: &str, resultaat: &Resultaat) -> String {
    format!(
        "toetsafname[leerlingid={leerlingid}]/resultaat[key={}]",
        resultaat.key
    )
}

/// Checks a resultaat against the toets version it is pinned to: the onderdeel must
/// be one the definition lists, and a score must lie within the applicable normering.
pub(crate) fn check_resultaat(
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
    if let Err(error) = XsdDate::parse(&resultaat.afnamedatum).and_then(|date| date.naive()) {
        violations.push(
            value_violation(&error, "afnamedatum")
                .at_path(format!("{path}/afnamedatum"))
                .with_value(&resultaat.afnamedatum),
        );
    }
    match &resultaat.uitslag {
        Uitslag::Score(None) => violations.push(match &resultaat.unread_score {
            Some(unread) => unread_violation(unread, &path),
            None => Violation::new(Rule::Xsd, "score: no score").at_path(format!("{path}/score")),
        }),
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
pub(crate) fn pinned_versie(
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
pub(crate) struct DerivedSum {
    pub(crate) total: u64,
    /// The keys of the onderdeel results summed.
    pub(crate) keys: Vec<String>,
    pub(crate) latest_afnamedatum: String,
    /// `latest_afnamedatum` as a calendar key: dates compare as dates, not as text.
    latest_date: Option<(i64, u8, u8)>,
    pub(crate) has_toets_score: bool,
}

impl DerivedSum {
    /// Counts a resultaat that passed `check_resultaat`.
    pub(crate) fn add(&mut self, resultaat: &Resultaat) {
        match (&resultaat.toetsonderdeelcode, &resultaat.uitslag) {
            (None, _) => self.has_toets_score = true,
            (Some(_), Uitslag::Score(Some(score))) => {
                self.total = self.total.saturating_add(*score);
                self.keys.push(resultaat.key.clone());
                // check_resultaat has read the date; compare as dates, not as text.
                let date = XsdDate::parse(&resultaat.afnamedatum)
                    .ok()
                    .map(|date| date.calendar_key());
                if self.latest_afnamedatum.is_empty() || date > self.latest_date {
                    self.latest_date = date;
                    self.latest_afnamedatum = resultaat.afnamedatum.clone();
                }
            }
            _ => {}
        }
    }

    /// The toetsnormering a sum is derived under; none when the toetsafname has a
    /// toets-level result, no onderdeel scores, or the toets no toetsnormering.
    pub(crate) fn normering<'a>(&self, definition: &'a Toets) -> Option<&'a Normering> {
        if self.has_toets_score || self.keys.is_empty() {
            return None;
        }
        definition.toetsnormering.as_ref()
    }

    /// The sum must lie within the toetsnormering, as a toets-level score would.
    pub(crate) fn check(
        &self,
        leerlingid: &str,
        toetscode: &str,
        normering: &Normering,
    ) -> Option<Violation> {
        let path =
            format!("toetsafname[leerlingid={leerlingid}]/toets[{toetscode}]/afgeleide score");
        if i64::try_from(self.total).is_err() {
            return Some(
                Violation::new(
                    Rule::Bereik,
                    format!(
                        "the sum of the onderdeel scores of toets {toetscode} lies beyond what the gateway stores ({})",
                        super::xsd::INTEGER_LIMIT
                    ),
                )
                .at_path(path),
            );
        }
        check_score(self.total, Some(normering), &path).map(|violation| Violation {
            message: format!("the sum of the onderdeel scores: {}", violation.message),
            ..violation
        })
    }
}

/// One onderdeel result of a leerling for a toets version, as stored (from any message).
#[derive(Clone, Debug)]
pub(crate) struct OnderdeelScore {
    pub(crate) toetsonderdeelcode: String,
    pub(crate) key: String,
    pub(crate) afnamedatum: String,
    /// `None` for an osoresultaat or anderresultaat: no number to add.
    pub(crate) score: Option<u64>,
}

/// The toets score a sitting adds up to: for every onderdeel the toets version defines, its
/// latest result (by afnamedatum, then the one stored last; `results` in store order).
/// `None` while an onderdeel has no result or no score, so no total is published for part
/// of a toets (issue 17: two messages with 8/30 and 16/30 gave two totals).
pub(crate) fn complete_sum(definition: &Toets, results: &[OnderdeelScore]) -> Option<DerivedSum> {
    if definition.toetsonderdelen.is_empty() {
        return None;
    }
    let mut sum = DerivedSum::default();
    for onderdeel in &definition.toetsonderdelen {
        let code = onderdeel.toetsonderdeelcode.waarde.as_str();
        let latest = results
            .iter()
            .filter(|result| result.toetsonderdeelcode == code)
            .max_by_key(|result| {
                XsdDate::parse(&result.afnamedatum)
                    .ok()
                    .map(|date| date.calendar_key())
            })?;
        // max_by_key keeps the last of equal dates: the one stored last.
        let score = latest.score?;
        sum.total = sum.total.saturating_add(score);
        sum.keys.push(latest.key.clone());
        let date = XsdDate::parse(&latest.afnamedatum)
            .ok()
            .map(|date| date.calendar_key());
        if sum.latest_afnamedatum.is_empty() || date > sum.latest_date {
            sum.latest_date = date;
            sum.latest_afnamedatum = latest.afnamedatum.clone();
        }
    }
    Some(sum)
}

/// A score must lie between the lowest beginnormwaarde and the highest eindnormwaarde.
pub(crate) fn check_score(
    score: u64,
    normering: Option<&Normering>,
    path: &str,
) -> Option<Violation> {
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
            unread_score: None,
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
        assert_eq!(check(None, None), [Rule::Xsd]);
    }

    fn rules_of(violations: Vec<Violation>) -> Vec<Rule> {
        violations
            .into_iter()
            .map(|violation| violation.rule)
            .collect()
    }

    fn check_resultaat_xml(resultaat_xml: &str) -> Vec<Rule> {
        use crate::uwlr::xmltree::read_subtree;
        let mut reader = quick_xml::NsReader::from_reader(resultaat_xml.as_bytes());
        let mut buf = Vec::new();
        let start = loop {
            if let quick_xml::events::Event::Start(start) =
                reader.read_event_into(&mut buf).unwrap()
            {
                break start.into_owned();
            }
        };
        let node = read_subtree(&mut reader, &mut Vec::new(), &start, false).unwrap();
        let mut definition = toets();
        definition.toetsnormering = Some(normering(0, i64::MAX as u64));
        rules_of(check_resultaat(
            "L1",
            &Resultaat::from_node(&node),
            &definition,
            &Vocabularies::default(),
            &mut Default::default(),
        ))
    }

    #[test]
    fn scores_and_dates_are_read_as_xsd_values() {
        let resultaat = |afnamedatum: &str, score: &str| {
            check_resultaat_xml(&format!(
                "<resultaat key=\"k\"><afnamedatum>{afnamedatum}</afnamedatum><toetscode>T</toetscode><score>{score}</score></resultaat>"
            ))
        };
        for valid in ["-0", "+7", "007", " 12 ", "9223372036854775807"] {
            assert_eq!(resultaat("2026-10-01", valid), [], "{valid}");
        }
        // Valid XSD, but beyond the store: a rule of its own, never UWLR-XSD or UWLR-SCORE.
        assert_eq!(
            resultaat("2026-10-01", "9223372036854775808"),
            [Rule::Bereik]
        );
        assert_eq!(resultaat("2026-10-01", &"9".repeat(40)), [Rule::Bereik]);
        for valid in [
            "12026-10-01",
            "-0044-03-15",
            "2026-10-01+14:00",
            "2026-10-01Z",
        ] {
            assert_eq!(resultaat(valid, "1"), [], "{valid}");
        }
        assert_eq!(resultaat("999999-10-01", "1"), [Rule::Bereik]);
    }

    #[test]
    fn norm_bounds_compare_by_value_and_refuse_what_the_store_cannot_hold() {
        let normering = |begin: &str, eind: &str| {
            let xml = format!(
                "<n><norm><term>t</term><beginnormwaarde>{begin}</beginnormwaarde><eindnormwaarde>{eind}</eindnormwaarde></norm></n>"
            );
            let mut reader = quick_xml::NsReader::from_reader(xml.as_bytes());
            let mut buf = Vec::new();
            let start = loop {
                if let quick_xml::events::Event::Start(start) =
                    reader.read_event_into(&mut buf).unwrap()
                {
                    break start.into_owned();
                }
            };
            let node =
                crate::uwlr::xmltree::read_subtree(&mut reader, &mut Vec::new(), &start, false)
                    .unwrap();
            Normering::from_node(&node)
        };
        let read = normering("-0", "+0010");
        assert_eq!(read.range(), Some((0, 10)));
        let rules = rules_of(check_normering(
            "p",
            &read,
            &Vocabularies::default(),
            &mut Default::default(),
        ));
        assert_eq!(rules, []);
        let rules = rules_of(check_normering(
            "p",
            &normering("0", "99999999999999999999"),
            &Vocabularies::default(),
            &mut Default::default(),
        ));
        assert_eq!(rules, [Rule::Bereik]);
    }

    #[test]
    fn toets_keys_compare_as_their_xsd_types() {
        let with_code = |code: &str, volgnummers: &[&str]| {
            let mut definition = toets();
            definition.toetscode.waarde = code.into();
            definition.toetsonderdelen = volgnummers
                .iter()
                .map(|volgnummer| Toetsonderdeel {
                    toetsonderdeelvolgnummer: volgnummer.to_string(),
                    ..definition.toetsonderdelen[0].clone()
                })
                .collect();
            definition
        };
        // xs:string: every character counts.
        assert_eq!(
            rules_of(check_toetsen_identity(&[
                with_code("HO-C", &[]),
                with_code(" HO-C", &[])
            ])),
            []
        );
        assert_eq!(
            rules_of(check_toetsen_identity(&[
                with_code("HO-C", &[]),
                with_code("HO-C", &[])
            ])),
            [Rule::Xsd]
        );
        // xs:positiveInteger: by value.
        assert_eq!(
            rules_of(check_toetsen_identity(&[with_code("T", &["1", "01"])])),
            [Rule::Xsd]
        );
        assert_eq!(
            rules_of(check_toetsen_identity(&[with_code("T", &["+2", "2"])])),
            [Rule::Xsd]
        );
        assert_eq!(
            rules_of(check_toetsen_identity(&[with_code("T", &["1", "2", "10"])])),
            []
        );
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

    /// Issue 17: a total only over every onderdeel of the version, each at its latest result.
    #[test]
    fn a_sum_needs_every_onderdeel_and_takes_the_latest_of_each() {
        let mut definition = toets();
        let mut second = definition.toetsonderdelen[0].clone();
        second.toetsonderdeelcode.waarde = "B".into();
        definition.toetsonderdelen.push(second);
        let result = |code: &str, key: &str, date: &str, score: Option<u64>| OnderdeelScore {
            toetsonderdeelcode: code.into(),
            key: key.into(),
            afnamedatum: date.into(),
            score,
        };
        let check = |results: &[OnderdeelScore], expected: Option<(u64, &[&str], &str)>| {
            let sum = complete_sum(&definition, results);
            assert_eq!(
                sum.as_ref().map(|sum| (
                    sum.total,
                    sum.keys.clone(),
                    sum.latest_afnamedatum.clone()
                )),
                expected.map(|(total, keys, date)| (
                    total,
                    keys.iter().map(|key| key.to_string()).collect(),
                    date.to_string()
                ))
            );
        };
        check(&[result("A", "a1", "2026-10-01", Some(8))], None);
        check(
            &[
                result("A", "a1", "2026-10-01", Some(8)),
                result("B", "b1", "2026-10-02", Some(16)),
            ],
            Some((24, &["a1", "b1"], "2026-10-02")),
        );
        // A later sitting of A counts, not the earlier one; equal dates: the last stored.
        check(
            &[
                result("A", "a2", "2026-11-01", Some(3)),
                result("A", "a1", "2026-10-01", Some(8)),
                result("B", "b1", "2026-10-02", Some(16)),
                result("B", "b2", "2026-10-02", Some(10)),
            ],
            Some((13, &["a2", "b2"], "2026-11-01")),
        );
        // An onderdeel without a score (osoresultaat, anderresultaat): no total.
        check(
            &[
                result("A", "a1", "2026-10-01", Some(8)),
                result("B", "b1", "2026-10-02", None),
            ],
            None,
        );
    }
}
