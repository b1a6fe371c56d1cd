//! Wire types shaped like the UWLR 2.2 XSD, read from streamed subtrees.
//!
//! The schema check runs before these are built, so a missing required element
//! here means the sender bypassed it (offline tools) and is reported, not assumed.

pub mod results;
pub mod scan;
pub mod xmltree;

use serde::{Deserialize, Serialize};
use xmltree::Node;

pub const NS_SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS_SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const NS_LEERRESULTATEN: &str = "http://www.edustandaard.nl/leerresultaten/2/leerresultaten";
pub const NS_AUTORISATIE: &str = "http://www.edustandaard.nl/leerresultaten/2/autorisatie";
pub const NS_OSO: &str = "http://www.edustandaard.nl/oso_gegevensset/1.2/dossier";

/// The `autorisatie` SOAP header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Autorisatie {
    pub autorisatiesleutel: String,
    pub klantcode: String,
    pub klantnaam: String,
}

impl Autorisatie {
    /// Reads the header exactly as sent (no trimming: a key with a stray space is
    /// another key); `None` fields (absent or blank) are reported by the caller as missing.
    pub fn from_node(node: &Node) -> (Option<String>, Option<String>, Option<String>) {
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct School {
    pub schooljaar: String,
    pub brincode: Option<String>,
    pub dependancecode: Option<String>,
    pub schoolkey: Option<String>,
    pub aanmaakdatum: String,
    pub auteur: Option<String>,
    pub xsdversie: String,
    pub commentaar: Option<String>,
}

impl School {
    pub fn from_node(node: &Node) -> School {
        let text = |name: &str| node.child_text(name).map(str::to_string);
        School {
            schooljaar: text("schooljaar").unwrap_or_default(),
            brincode: text("brincode"),
            dependancecode: text("dependancecode"),
            schoolkey: text("schoolkey"),
            aanmaakdatum: text("aanmaakdatum").unwrap_or_default(),
            auteur: text("auteur"),
            xsdversie: text("xsdversie").unwrap_or_default(),
            commentaar: text("commentaar"),
        }
    }
}

/// A value of ctpVocabulaireGebondenVeld: text bound to an optional vocabulary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VocabulaireWaarde {
    pub waarde: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vocabulaire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vocabulairelocatie: Option<String>,
}

impl VocabulaireWaarde {
    pub fn from_node(node: &Node) -> VocabulaireWaarde {
        VocabulaireWaarde {
            waarde: node.text.trim().to_string(),
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
pub struct Norm {
    pub term: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub omschrijving: Option<String>,
    pub beginnormwaarde: u64,
    pub eindnormwaarde: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub normkleur: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub schoolcijfer_vanaf: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub schoolcijfer_totenmet: Option<String>,
    #[serde(skip)]
    pub offset: u64,
}

/// ctpNormering: the scale a score is read against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Normering {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vocabulaire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vocabulairelocatie: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub toetscategorie: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub toetsniveau: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wegingsfactor: Option<String>,
    pub norms: Vec<Norm>,
}

impl Normering {
    pub fn from_node(node: &Node) -> Normering {
        Normering {
            vocabulaire: node.attribute("vocabulaire").map(str::to_string),
            vocabulairelocatie: node.attribute("vocabulairelocatie").map(str::to_string),
            toetscategorie: vocab(node, "toetscategorie"),
            toetsniveau: vocab(node, "toetsniveau"),
            wegingsfactor: node.child_text("wegingsfactor").map(str::to_string),
            norms: node
                .children_named("norm")
                .map(|norm| Norm {
                    term: norm.child_text("term").unwrap_or_default().to_string(),
                    omschrijving: norm.child_text("omschrijving").map(str::to_string),
                    beginnormwaarde: parse_score(norm.child_text("beginnormwaarde")),
                    eindnormwaarde: parse_score(norm.child_text("eindnormwaarde")),
                    normkleur: norm.child("normkleur").map(Node::to_json),
                    schoolcijfer_vanaf: norm.child_text("schoolcijfer_vanaf").map(str::to_string),
                    schoolcijfer_totenmet: norm
                        .child_text("schoolcijfer_totenmet")
                        .map(str::to_string),
                    offset: norm.offset,
                })
                .collect(),
        }
    }

    /// The lowest and highest score the norms cover, if any norm is given.
    pub fn range(&self) -> Option<(u64, u64)> {
        let low = self.norms.iter().map(|norm| norm.beginnormwaarde).min()?;
        let high = self.norms.iter().map(|norm| norm.eindnormwaarde).max()?;
        Some((low, high))
    }
}

/// Schema-valid scores are non-negative integers; anything else saturates and is caught by the range check.
fn parse_score(text: Option<&str>) -> u64 {
    text.and_then(|text| text.parse().ok()).unwrap_or(u64::MAX)
}

/// ctpToetsOnderdeel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toetsonderdeel {
    pub toetsonderdeelvolgnummer: String,
    pub toetsonderdeelcode: VocabulaireWaarde,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub toetsonderdeelnaam: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub toetsonderdeelnormering: Option<Normering>,
}

/// ctpToets: a test definition as the message sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toets {
    pub toetscode: VocabulaireWaarde,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub versie: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub toetsnaam: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub leerjaar: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vakgebied: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub toetsnormering: Option<Normering>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub toetshierarchie: Vec<Ingang>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub toetsonderdelen: Vec<Toetsonderdeel>,
    #[serde(skip)]
    pub offset: u64,
}

/// One `ingang` of a toetshierarchie.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingang {
    pub niveau: String,
    #[serde(flatten)]
    pub waarde: VocabulaireWaarde,
}

impl Toets {
    pub fn from_node(node: &Node) -> Toets {
        Toets {
            toetscode: vocab(node, "toetscode").unwrap_or_default(),
            versie: vocab(node, "versie"),
            toetsnaam: node.child_text("toetsnaam").map(str::to_string),
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
                            toetsonderdeelvolgnummer: onderdeel
                                .child_text("toetsonderdeelvolgnummer")
                                .unwrap_or_default()
                                .to_string(),
                            toetsonderdeelcode: vocab(onderdeel, "toetsonderdeelcode")
                                .unwrap_or_default(),
                            toetsonderdeelnaam: onderdeel
                                .child_text("toetsonderdeelnaam")
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
    pub fn versie_text(&self) -> &str {
        self.versie
            .as_ref()
            .map(|versie| versie.waarde.as_str())
            .unwrap_or("")
    }

    pub fn onderdeel(&self, code: &str) -> Option<&Toetsonderdeel> {
        self.toetsonderdelen
            .iter()
            .find(|onderdeel| onderdeel.toetsonderdeelcode.waarde == code)
    }

    /// Every vocabulary-bound value of the definition, with a path for reporting.
    pub fn vocabulary_values(&self) -> Vec<(String, &VocabulaireWaarde)> {
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
pub enum Uitslag {
    /// A scoregetal; `None` when the text is not a number that fits (reported as a score violation).
    Score(Option<u64>),
    Osoresultaat(serde_json::Value),
    Anderresultaat(serde_json::Value),
}

/// ctpResultaat: one toets(onderdeel)afname, identified by its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resultaat {
    pub key: String,
    pub afnamedatum: String,
    pub toetscode: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub versie: Option<VocabulaireWaarde>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub toetsonderdeelcode: Option<String>,
    pub uitslag: Uitslag,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub infourl: Option<String>,
    #[serde(skip)]
    pub offset: u64,
}

impl Resultaat {
    pub fn from_node(node: &Node) -> Resultaat {
        let uitslag = if let Some(score) = node.child_text("score") {
            Uitslag::Score(score.parse().ok())
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
            toetscode: node.child_text("toetscode").unwrap_or_default().to_string(),
            versie: vocab(node, "versie"),
            toetsonderdeelcode: node
                .child_text("toetsonderdeelcode")
                .filter(|code| !code.is_empty())
                .map(str::to_string),
            uitslag,
            infourl: node.child_text("infourl").map(str::to_string),
            offset: node.offset,
        }
    }
}

/// The leerling fields of a toetsafname, read before its results stream by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToetsafnameHead {
    pub leerlingid: String,
    pub eckid: Option<String>,
    pub resultaatverwerkerid: Option<String>,
    pub offset: u64,
}

impl ToetsafnameHead {
    pub fn set_field(&mut self, node: &Node) {
        let text = node.text.trim().to_string();
        match node.name.as_str() {
            "leerlingid" => self.leerlingid = text,
            "eckid" => self.eckid = Some(text),
            "resultaatverwerkerid" => self.resultaatverwerkerid = Some(text),
            _ => {}
        }
    }
}
