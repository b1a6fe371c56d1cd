//! Rule codes and violations: what a sender did wrong, in a form every boundary shares.

use serde::{Deserialize, Serialize};

/// One of our stable, fine-grained rule codes. Each maps to exactly one UWLR
/// faultcode and Edu-V status code, so the table in README.md is this enum.
/// It is serialised as its code (`UWLR-XSD`), the form receipts show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// The body is not a well-formed SOAP 1.1 envelope carrying BrengLeerresultaten.
    Bericht,
    /// A SOAP header block addressed to us with `mustUnderstand="1"` that the gateway
    /// does not understand (SOAP 1.1 section 4.2.3; faultcode `MustUnderstand`, 4.4.1).
    MustUnderstand,
    /// The body is larger than the configured limit.
    Grootte,
    /// The autorisatie header is missing, incomplete, or the key is wrong.
    Autorisatie,
    /// The klantcode is unknown or the klantnaam does not match it.
    Klant,
    /// The client is not activated (or no longer mandated) for the school.
    Activatie,
    /// The message is not valid against the UWLR schemas.
    Xsd,
    /// A schema-valid value lies beyond what the gateway stores (an integer above
    /// `i64::MAX`, a year outside chrono's range): refused under its own code, never as UWLR-XSD.
    Bereik,
    /// The xsdversie is not one we support.
    XsdVersie,
    /// The aanmaakdatum is not later than that of the last accepted message.
    Volgorde,
    /// The aanmaakdatum lies further ahead of the gateway's clock than the allowed skew.
    Toekomst,
    /// A vocabulary-bound value is not a term of its (known) vocabulary.
    Vdex,
    /// The leerling is not known for the school.
    Leerling,
    /// A score lies outside the normering of the toets version it is read against.
    Score,
    /// A normering is inconsistent (a norm that begins after it ends).
    Normering,
    /// A result names a toetsonderdeel its toets does not define (toets incomplete).
    Onderdeel,
    /// A result names a toets version that neither the message nor the store defines.
    ToetsVersie,
    /// Something failed on our side.
    Intern,
}

impl Rule {
    /// Every rule, in the order faults report them and README lists them.
    pub const ALL: [Rule; 18] = [
        Rule::Bericht,
        Rule::MustUnderstand,
        Rule::Grootte,
        Rule::Autorisatie,
        Rule::Klant,
        Rule::Activatie,
        Rule::Xsd,
        Rule::Bereik,
        Rule::XsdVersie,
        Rule::Volgorde,
        Rule::Toekomst,
        Rule::Vdex,
        Rule::Leerling,
        Rule::Score,
        Rule::Normering,
        Rule::Onderdeel,
        Rule::ToetsVersie,
        Rule::Intern,
    ];

    /// The stable code that appears in fault details, receipts and logs.
    pub fn code(self) -> &'static str {
        match self {
            Rule::Bericht => "UWLR-BERICHT",
            Rule::MustUnderstand => "UWLR-MUSTUNDERSTAND",
            Rule::Grootte => "UWLR-GROOTTE",
            Rule::Autorisatie => "UWLR-AUTORISATIE",
            Rule::Klant => "UWLR-KLANT",
            Rule::Activatie => "UWLR-ACTIVATIE",
            Rule::Xsd => "UWLR-XSD",
            Rule::Bereik => "UWLR-BEREIK",
            Rule::XsdVersie => "UWLR-XSDVERSIE",
            Rule::Volgorde => "UWLR-VOLGORDE",
            Rule::Toekomst => "UWLR-TOEKOMST",
            Rule::Vdex => "UWLR-VDEX",
            Rule::Leerling => "UWLR-LEERLING",
            Rule::Score => "UWLR-SCORE",
            Rule::Normering => "UWLR-NORMERING",
            Rule::Onderdeel => "UWLR-ONDERDEEL",
            Rule::ToetsVersie => "UWLR-TOETSVERSIE",
            Rule::Intern => "UWLR-INTERN",
        }
    }

    /// The UWLR faultcode (local part) that existing EA clients already understand.
    pub fn faultcode(self) -> &'static str {
        match self {
            Rule::Bericht
            | Rule::Grootte
            | Rule::Xsd
            | Rule::Bereik
            | Rule::Volgorde
            | Rule::Toekomst
            | Rule::Onderdeel
            | Rule::ToetsVersie => "Client.OngeldigBericht",
            Rule::Autorisatie | Rule::Activatie => "Client.AutorisatieOngeldig",
            Rule::Klant => "Client.OngeldigeKlantIdentificatie",
            Rule::XsdVersie => "Client.XsdVersieOngeldig",
            Rule::Vdex => "Client.VocabulaireTermOngeldig",
            Rule::Leerling => "Client.LeerlingOngeldig",
            Rule::Score => "Client.ScoreOngeldig",
            Rule::Normering => "Client.ToetsNormeringOngeldig",
            Rule::Intern => "Server.InterneFout",
            Rule::MustUnderstand => "MustUnderstand",
        }
    }

    /// The Edu-V status code: 0011 schema, 0012 version, 0021/0023 access/school, 0099 other.
    pub fn eduv_code(self) -> &'static str {
        match self {
            Rule::Xsd => "0011",
            Rule::XsdVersie => "0012",
            Rule::Autorisatie | Rule::Klant => "0021",
            Rule::Activatie => "0023",
            _ => "0099",
        }
    }

    /// The plain-language faultstring for a fault led by this rule (Dutch, as LAS send it).
    pub(crate) fn faultstring(self) -> &'static str {
        match self.faultcode() {
            "Client.OngeldigBericht" => "Inhoud van het bericht is ongeldig",
            "Client.AutorisatieOngeldig" => "Autorisatie is ongeldig",
            "Client.OngeldigeKlantIdentificatie" => "Klantidentificatie onjuist",
            "Client.XsdVersieOngeldig" => "De opgegeven XSD-versie is onjuist",
            "Client.VocabulaireTermOngeldig" => "Vocabulairterm ongeldig",
            "Client.LeerlingOngeldig" => "Leerling ongeldig",
            "Client.ScoreOngeldig" => "Score ongeldig",
            "Client.ToetsNormeringOngeldig" => "Toetsnormering ongeldig",
            "MustUnderstand" => "Een verplichte SOAP-header wordt niet begrepen",
            _ => "Er is een interne fout opgetreden",
        }
    }

    /// Whether checking this rule needs the gateway's store (clients, activations,
    /// learners, the last aanmaakdatum, earlier toets versions), so that
    /// `uwlr-gateway validate` cannot check it offline (of UWLR-AUTORISATIE it checks
    /// only that an envelope's header is there and complete).
    pub fn needs_store(self) -> bool {
        matches!(
            self,
            Rule::Autorisatie
                | Rule::Klant
                | Rule::Activatie
                | Rule::Volgorde
                | Rule::Leerling
                | Rule::ToetsVersie
        )
    }

    /// Parses a code such as `UWLR-XSD` back into its rule.
    pub fn from_code(code: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|rule| rule.code() == code)
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Rule::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown rule code {code}")))
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// One problem found in a message, with everything a sender needs to find it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Violation {
    pub(crate) rule: Rule,
    /// 1-based line in the request body, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) column: Option<u64>,
    /// Byte offset in the request body; turned into line/column before reporting.
    #[serde(skip)]
    pub(crate) offset: Option<u64>,
    /// Where in the message: an element path, or the afname key and field.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) path: Option<String>,
    /// The offending value, shortened to at most 256 characters.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) value: Option<String>,
    pub(crate) message: String,
}

impl Violation {
    pub(crate) fn new(rule: Rule, message: impl Into<String>) -> Self {
        Violation {
            rule,
            line: None,
            column: None,
            offset: None,
            path: None,
            value: None,
            message: message.into(),
        }
    }

    pub(crate) fn at_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub(crate) fn with_value(mut self, value: impl AsRef<str>) -> Self {
        self.value = Some(shorten(value.as_ref(), 256));
        self
    }

    pub(crate) fn at_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    pub(crate) fn at_line(mut self, line: Option<u64>, column: Option<u64>) -> Self {
        self.line = line;
        self.column = column;
        self
    }
}

/// Cuts a string to at most `max` characters, marking the cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The violations of a rejected message, capped so a hostile batch cannot blow up the fault.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Violations {
    pub(crate) items: Vec<Violation>,
    /// How many more were found but not kept.
    pub(crate) omitted: u64,
}

impl Violations {
    /// How many violations one fault reports at most.
    pub(crate) const LIMIT: usize = 1000;

    pub(crate) fn push(&mut self, violation: Violation) {
        if self.items.len() < Self::LIMIT {
            self.items.push(violation);
        } else {
            self.omitted += 1;
        }
    }

    pub(crate) fn extend(&mut self, violations: impl IntoIterator<Item = Violation>) {
        for violation in violations {
            self.push(violation);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty() && self.omitted == 0
    }

    pub(crate) fn total(&self) -> u64 {
        self.items.len() as u64 + self.omitted
    }

    /// The rule that names the fault: the first in `Rule::ALL` order among those found.
    pub(crate) fn leading_rule(&self) -> Rule {
        self.items
            .iter()
            .map(|violation| violation.rule)
            .min()
            .unwrap_or(Rule::Intern)
    }

    pub(crate) fn single(violation: Violation) -> Self {
        Violations {
            items: vec![violation],
            omitted: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_round_trips_through_its_code() {
        for rule in Rule::ALL {
            assert_eq!(Rule::from_code(rule.code()), Some(rule));
            assert!(
                rule.faultcode().starts_with("Client.")
                    || matches!(rule, Rule::Intern | Rule::MustUnderstand)
            );
        }
    }

    #[test]
    fn rules_serialise_as_their_codes() {
        for rule in Rule::ALL {
            let json = serde_json::to_string(&rule).unwrap();
            assert_eq!(json, format!("\"{}\"", rule.code()));
            assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
        }
        let violation = Violation::new(Rule::Score, "te hoog");
        assert_eq!(
            serde_json::to_value(&violation).unwrap()["rule"],
            "UWLR-SCORE"
        );
        assert!(serde_json::from_str::<Rule>("\"Score\"").is_err());
    }

    #[test]
    fn leading_rule_follows_rule_order() {
        let mut violations = Violations::default();
        violations.push(Violation::new(Rule::Score, "x"));
        violations.push(Violation::new(Rule::Xsd, "y"));
        assert_eq!(violations.leading_rule(), Rule::Xsd);
    }

    #[test]
    fn violations_are_capped() {
        let mut violations = Violations::default();
        for _ in 0..Violations::LIMIT + 5 {
            violations.push(Violation::new(Rule::Score, "x"));
        }
        assert_eq!(violations.items.len(), Violations::LIMIT);
        assert_eq!(violations.omitted, 5);
        assert_eq!(violations.total(), Violations::LIMIT as u64 + 5);
    }

    #[test]
    fn shorten_marks_the_cut() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
