//! Wire types shaped like the UWLR 2.2 XSD, read from streamed subtrees.
//!
//! The schema check runs before these are built, so a missing required element
//! here means the sender bypassed it (offline tools) and is reported, not assumed.

pub(crate) mod results;
pub(crate) mod scan;
pub(crate) mod xmltree;

use crate::domain::xsd::{parse_stored_count, XsdInteger, XsdValueError};
use serde::{Deserialize, Serialize};
use xmltree::Node;
use yaserde::YaSerialize;

pub(crate) const NS_SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const NS_SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
pub(crate) const NS_LEERRESULTATEN: &str =
    "http://www.edustandaard.nl/leerresultaten/2/leerresultaten";
pub(crate) const NS_AUTORISATIE: &str = "http://www.edustandaard.nl/leerresultaten/2/autorisatie";

/// The `autorisatie` SOAP header.
#[derive(Clone, Debug, PartialEq, Eq, YaSerialize)]
#[yaserde(rename = "autorisatie", prefix = "aut", namespaces = { "aut" = "http://www.edustandaard.nl/leerresultaten/2/autorisatie" })]
pub(crate) struct Autorisatie {
    #[yaserde(prefix = "aut")]
    pub(crate) autorisatiesleutel: String,
    #[yaserde(prefix = "aut")]
    pub(crate) klantcode: String,
    #[yaserde(prefix = "aut")]
    pub(crate) klantnaam: String,
}

impl Autorisatie {
    /// Reads the header exactly as sent (no trimming: a key with a stray space is
    /// another key); `None` fields (absent or blank) are reported by the caller as missing.
    pub(crate) fn from_node(node: &Node) -> (Option<String>, Option<String>, Option<String>) {
        let field = |name: &str| {
            node.child(name)
                .map(|child| child.text.as_str())
                .filter(|text| !text.trim().is_empty())
                .map(str::to_string)
        };
        (
            field("autorisatiesleutel"),
            field("klantcode"),
            field("klantnaam"),
        )
    }
}

/// The `school` block of a verzoek.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, YaSerialize)]
#[yaserde(rename = "school", prefix = "lr", namespaces = { "lr" = "http://www.edustandaard.nl/leerresultaten/2/leerresultaten" })]
pub(crate) struct School {
    #[yaserde(prefix = "lr")]
    pub(crate) schooljaar: String,
    #[yaserde(prefix = "lr")]
    pub(crate) brincode: Option<String>,
    #[yaserde(prefix = "lr")]
    pub(crate) dependancecode: Option<String>,
    #[yaserde(prefix = "lr")]
    pub(crate) schoolkey: Option<String>,
    #[yaserde(prefix = "lr")]
    pub(crate) aanmaakdatum: String,
    #[yaserde(prefix = "lr")]
    pub(crate) auteur: Option<String>,
    #[yaserde(prefix = "lr")]
    pub(crate) xsdversie: String,
    #[yaserde(prefix = "lr")]
    pub(crate) commentaar: Option<String>,
}

impl School {
    pub(crate) fn from_node(node: &Node) -> School {
        // Pattern-bound and collapsed fields are trimmed (whitespace never makes them
        // valid, and trimming lets the schema check name the problem); xs:string fields are kept exactly.
        let text = |name: &str| node.child_text(name).map(str::to_string);
        let string = |name: &str| node.child_string(name).map(str::to_string);
        School {
            schooljaar: text("schooljaar").unwrap_or_default(),
            brincode: text("brincode"),
            dependancecode: text("dependancecode"),
            schoolkey: string("schoolkey"),
            aanmaakdatum: text("aanmaakdatum").unwrap_or_default(),
            auteur: string("auteur"),
            xsdversie: string("xsdversie").unwrap_or_default(),
            commentaar: string("commentaar"),
        }
    }
}

/// A value of ctpVocabulaireGebondenVeld: text bound to an optional vocabulary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VocabulaireWaarde {
    pub(crate) waarde: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) vocabulaire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) vocabulairelocatie: Option<String>,
}

impl VocabulaireWaarde {
    pub(crate) fn from_node(node: &Node) -> VocabulaireWaarde {
        VocabulaireWaarde {
            // tpString256: every character counts, whitespace included (kToetscode, krAfnameToets).
            waarde: node.text.clone(),
            vocabulaire: node.attribute("vocabulaire").map(str::to_string),
            vocabulairelocatie: node.attribute("vocabulairelocatie").map(str::to_string),
        }
    }
}

fn vocab(node: &Node, name: &str) -> Option<VocabulaireWaarde> {
    node.child(name).map(VocabulaireWaarde::from_node)
}

/// One `norm` of a normering.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Norm {
    pub(crate) term: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) omschrijving: Option<String>,
    pub(crate) beginnormwaarde: u64,
    pub(crate) eindnormwaarde: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) normkleur: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) schoolcijfer_vanaf: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) schoolcijfer_totenmet: Option<String>,
    #[serde(skip)]
    pub(crate) offset: u64,
}

/// A tpScore text that is valid XSD but no `u64` the store holds, or no integer at all
/// (offline tools that skip the schema): which element, what was sent, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UnreadValue {
    pub(crate) element: &'static str,
    pub(crate) text: String,
    pub(crate) error: XsdValueError,
}

/// ctpNormering: the scale a score is read against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Normering {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) vocabulaire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) vocabulairelocatie: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) toetscategorie: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) toetsniveau: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) wegingsfactor: Option<String>,
    pub(crate) norms: Vec<Norm>,
    /// Norm bounds that could not be read (reported by the rules; such a normering is never stored).
    #[serde(skip)]
    pub(crate) unread: Vec<UnreadValue>,
}

impl Normering {
    pub(crate) fn from_node(node: &Node) -> Normering {
        let mut unread = Vec::new();
        let mut bound = |norm: &Node, element: &'static str| {
            let text = norm.child_text(element).unwrap_or_default();
            parse_stored_count(text).unwrap_or_else(|error| {
                unread.push(UnreadValue {
                    element,
                    text: text.to_string(),
                    error,
                });
                0
            })
        };
        let norms = node
            .children_named("norm")
            .map(|norm| Norm {
                term: norm.child_string("term").unwrap_or_default().to_string(),
                omschrijving: norm.child_string("omschrijving").map(str::to_string),
                beginnormwaarde: bound(norm, "beginnormwaarde"),
                eindnormwaarde: bound(norm, "eindnormwaarde"),
                normkleur: norm.child("normkleur").map(Node::to_json),
                schoolcijfer_vanaf: norm.child_text("schoolcijfer_vanaf").map(str::to_string),
                schoolcijfer_totenmet: norm.child_text("schoolcijfer_totenmet").map(str::to_string),
                offset: norm.offset,
            })
            .collect();
        Normering {
            vocabulaire: node.attribute("vocabulaire").map(str::to_string),
            vocabulairelocatie: node.attribute("vocabulairelocatie").map(str::to_string),
            toetscategorie: vocab(node, "toetscategorie"),
            toetsniveau: vocab(node, "toetsniveau"),
            wegingsfactor: node.child_text("wegingsfactor").map(str::to_string),
            norms,
            unread,
        }
    }

    /// The lowest and highest score the norms cover, if any norm is given.
    pub(crate) fn range(&self) -> Option<(u64, u64)> {
        let low = self.norms.iter().map(|norm| norm.beginnormwaarde).min()?;
        let high = self.norms.iter().map(|norm| norm.eindnormwaarde).max()?;
        Some((low, high))
    }
}

/// An xs:integer in its canonical form (`+01` is stored as `1`); text that is no
/// integer is kept for the schema check to name.
fn canonical_integer(text: &str) -> String {
    XsdInteger::parse(text)
        .map(|value| value.to_string())
        .unwrap_or_else(|_| text.to_string())
}

/// ctpToetsOnderdeel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Toetsonderdeel {
    pub(crate) toetsonderdeelvolgnummer: String,
    pub(crate) toetsonderdeelcode: VocabulaireWaarde,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) toetsonderdeelnaam: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) toetsonderdeelnormering: Option<Normering>,
}

/// ctpToets: a test definition as the message sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Toets {
    pub(crate) toetscode: VocabulaireWaarde,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) versie: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) toetsnaam: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) leerjaar: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) vakgebied: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) toetsnormering: Option<Normering>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub(crate) toetshierarchie: Vec<Ingang>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub(crate) toetsonderdelen: Vec<Toetsonderdeel>,
    #[serde(skip)]
    pub(crate) offset: u64,
}

/// One `ingang` of a toetshierarchie.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ingang {
    pub(crate) niveau: String,
    #[serde(flatten)]
    pub(crate) waarde: VocabulaireWaarde,
}

impl Toets {
    pub(crate) fn from_node(node: &Node) -> Toets {
        Toets {
            toetscode: vocab(node, "toetscode").unwrap_or_default(),
            versie: vocab(node, "versie"),
            toetsnaam: node.child_string("toetsnaam").map(str::to_string),
            leerjaar: vocab(node, "leerjaar"),
            vakgebied: vocab(node, "vakgebied"),
            toetsnormering: node.child("toetsnormering").map(Normering::from_node),
            toetshierarchie: node
                .child("toetshierarchie")
                .map(|hierarchie| {
                    hierarchie
                        .children_named("ingang")
                        .map(|ingang| Ingang {
                            niveau: ingang.attribute("niveau").unwrap_or_default().to_string(),
                            waarde: VocabulaireWaarde::from_node(ingang),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            toetsonderdelen: node
                .child("toetsonderdelen")
                .map(|onderdelen| {
                    onderdelen
                        .children_named("toetsonderdeel")
                        .map(|onderdeel| Toetsonderdeel {
                            toetsonderdeelvolgnummer: canonical_integer(
                                onderdeel
                                    .child_text("toetsonderdeelvolgnummer")
                                    .unwrap_or_default(),
                            ),
                            toetsonderdeelcode: vocab(onderdeel, "toetsonderdeelcode")
                                .unwrap_or_default(),
                            toetsonderdeelnaam: onderdeel
                                .child_string("toetsonderdeelnaam")
                                .map(str::to_string),
                            toetsonderdeelnormering: onderdeel
                                .child("toetsonderdeelnormering")
                                .map(Normering::from_node),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            offset: node.offset,
        }
    }

    /// The version this definition carries; absent is the empty version.
    pub(crate) fn versie_text(&self) -> &str {
        self.versie
            .as_ref()
            .map(|versie| versie.waarde.as_str())
            .unwrap_or("")
    }

    pub(crate) fn onderdeel(&self, code: &str) -> Option<&Toetsonderdeel> {
        self.toetsonderdelen
            .iter()
            .find(|onderdeel| onderdeel.toetsonderdeelcode.waarde == code)
    }

    /// Every vocabulary-bound value of the definition, with a path for reporting.
    pub(crate) fn vocabulary_values(&self) -> Vec<(String, &VocabulaireWaarde)> {
        let mut values: Vec<(String, &VocabulaireWaarde)> =
            vec![("toetscode".into(), &self.toetscode)];
        let optional = [
            ("versie", &self.versie),
            ("leerjaar", &self.leerjaar),
            ("vakgebied", &self.vakgebied),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                values.push((name.into(), value));
            }
        }
        for ingang in &self.toetshierarchie {
            values.push(("toetshierarchie/ingang".into(), &ingang.waarde));
        }
        fn normering_values(
            prefix: String,
            normering: &Option<Normering>,
        ) -> Vec<(String, &VocabulaireWaarde)> {
            let mut found = Vec::new();
            if let Some(normering) = normering {
                if let Some(value) = &normering.toetscategorie {
                    found.push((format!("{prefix}/toetscategorie"), value));
                }
                if let Some(value) = &normering.toetsniveau {
                    found.push((format!("{prefix}/toetsniveau"), value));
                }
            }
            found
        }
        let mut extra = normering_values("toetsnormering".into(), &self.toetsnormering);
        for onderdeel in &self.toetsonderdelen {
            let code = &onderdeel.toetsonderdeelcode.waarde;
            extra.push((
                format!("toetsonderdeel[{code}]/toetsonderdeelcode"),
                &onderdeel.toetsonderdeelcode,
            ));
            extra.extend(normering_values(
                format!("toetsonderdeel[{code}]/toetsonderdeelnormering"),
                &onderdeel.toetsonderdeelnormering,
            ));
        }
        values.extend(extra);
        values
    }
}

/// The outcome a resultaat carries: exactly one of the XSD's choice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Uitslag {
    /// A scoregetal by value (`007`, `+7` and `7` alike); `None` when it could not be
    /// read, with the reason in `Resultaat::unread_score`.
    Score(Option<u64>),
    Osoresultaat(serde_json::Value),
    Anderresultaat(serde_json::Value),
}

/// ctpResultaat: one toets(onderdeel)afname, identified by its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Resultaat {
    pub(crate) key: String,
    pub(crate) afnamedatum: String,
    pub(crate) toetscode: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) versie: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) toetsonderdeelcode: Option<String>,
    pub(crate) uitslag: Uitslag,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) infourl: Option<String>,
    /// Why the score could not be read, when `uitslag` is `Score(None)`.
    #[serde(skip)]
    pub(crate) unread_score: Option<UnreadValue>,
    #[serde(skip)]
    pub(crate) offset: u64,
}

impl Resultaat {
    pub(crate) fn from_node(node: &Node) -> Resultaat {
        let mut unread_score = None;
        let uitslag = if let Some(score) = node.child_text("score") {
            match parse_stored_count(score) {
                Ok(value) => Uitslag::Score(Some(value)),
                Err(error) => {
                    unread_score = Some(UnreadValue {
                        element: "score",
                        text: score.to_string(),
                        error,
                    });
                    Uitslag::Score(None)
                }
            }
        } else if let Some(oso) = node.child("osoresultaat") {
            Uitslag::Osoresultaat(oso.to_json())
        } else if let Some(ander) = node.child("anderresultaat") {
            Uitslag::Anderresultaat(ander.to_json())
        } else {
            Uitslag::Score(None)
        };
        Resultaat {
            key: node.attribute("key").unwrap_or_default().to_string(),
            afnamedatum: node
                .child_text("afnamedatum")
                .unwrap_or_default()
                .to_string(),
            // tpKey (xs:string): `HO-C ` is not `HO-C`, so no trimming.
            toetscode: node
                .child_string("toetscode")
                .unwrap_or_default()
                .to_string(),
            versie: vocab(node, "versie"),
            toetsonderdeelcode: node
                .child_string("toetsonderdeelcode")
                .filter(|code| !code.is_empty())
                .map(str::to_string),
            uitslag,
            infourl: node.child_string("infourl").map(str::to_string),
            unread_score,
            offset: node.offset,
        }
    }
}

/// The leerling fields of a toetsafname, read before its results stream by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ToetsafnameHead {
    pub(crate) leerlingid: String,
    pub(crate) eckid: Option<String>,
    pub(crate) resultaatverwerkerid: Option<String>,
    pub(crate) offset: u64,
}

impl ToetsafnameHead {
    pub(crate) fn set_field(&mut self, node: &Node) {
        // tpKey (xs:string): kept exactly as sent.
        let text = node.text.clone();
        match node.name.as_str() {
            "leerlingid" => self.leerlingid = text,
            "eckid" => self.eckid = Some(text),
            "resultaatverwerkerid" => self.resultaatverwerkerid = Some(text),
            _ => {}
        }
    }
}
